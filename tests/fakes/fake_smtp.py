#!/usr/bin/python3
"""fake_smtp.py - a real (RFC 5321) SMTP server for kairan's integration tests.

Python 3.11 stdlib only, asyncio: hundreds of concurrent sessions, thousands of
messages per second.  Listens on 127.0.0.1 (--host: another address of this
machine, a relay that is "not on this host" for kairan).

Protocol: 220 greeting, EHLO/HELO, STARTTLS (RFC 3207), AUTH PLAIN (initial
response or 334 continuation) and AUTH LOGIN, MAIL FROM (SIZE=, BODY=, any
other parameter accepted and recorded), RCPT TO (quoted local parts such as
<"taro..yamada."@docomo.ne.jp> are unquoted for storage), DATA with
dot-unstuffing, RSET, NOOP, VRFY, HELP, QUIT, many transactions per session,
PIPELINING (commands are simply answered in order).

Store (--store DIR):
  DIR/messages.jsonl  one line per accepted message:
      {"mail_from", "rcpt": [unquoted], "rcpt_raw": [as on the wire, without <>],
       "mail_params": {...}, "data": str (CRLF kept, dot-unstuffed, decoded
       UTF-8 with surrogateescape: data.encode("utf-8", "surrogateescape") gives
       the exact bytes), "size": bytes, "max_line": longest line in octets
       without CRLF, "bare_lf": bool, "conn": id, "tls": bool, "auth": user|null,
       "helo": str, "ts": float}
  DIR/events.jsonl    one line per event, for tests that count attempts:
      {"ev":"connect","conn","active","ts"}  (active = concurrent sessions incl. this one)
      {"ev":"refused","conn","reason","ts"}  (down / max-conn / connect rule)
      {"ev":"tls","conn","ok":bool,"error"?,"ts"}
      {"ev":"auth","conn","ok":bool,"user","ts"}
      {"ev":"mail","conn","from","code","ts"}
      {"ev":"rcpt","conn","rcpt","rcpt_raw","code","action"?,"ts"}
      {"ev":"data","conn","rcpt":[...],"code","action"?,"ts"}
      {"ev":"close","conn","msgs","ts"}
  Every line is flushed when written.

Fault injection (--control FILE, JSON, re-read whenever it changes: checked on
every connection, MAIL, RCPT and end of DATA, and polled every 50 ms; missing
or unparsable file = no faults).  Counters of "times" restart whenever the
file changes.
  {"down": false | true | "refuse",
   "rules": [{"match": "substring", "action": "4xx"|"5xx"|"stall"|"drop"|"reset"|"delay",
              "stage": "rcpt" (default) | "mail" | "data" | "connect",
              "times": N, "code": 451, "text": "...", "seconds": 1.5, "prob": 1.0}]}
  down true      new connections get "421 4.3.2 Service not available" and are
                 closed; open sessions get the same 421 at their next MAIL.
  down "refuse"  the listening socket is closed (connection refused) until
                 down is cleared; open sessions as above.
  stage rcpt     match against the (unquoted) recipient; replaces the RCPT reply.
  stage mail     match against the (unquoted) sender; replaces the MAIL reply.
  stage data     match against any accepted recipient of the transaction;
                 replaces the reply after the final "." (message not stored).
  stage connect  match ignored; replaces the greeting (4xx/5xx reply then close).
  4xx / 5xx      reply code (default 451 "4.3.0 Temporary failure, try again" /
                 550 "5.1.1 User unknown"); code 421 also closes the session.
  stall          never reply; the session is held until the client closes it.
  drop           close the connection without a reply (FIN).
  reset          abort the connection without a reply (RST).
  delay          wait "seconds" (default 1) then answer normally.
  times          apply only N times per exact address (sender/recipient;
                 for stage data: per first matching recipient; connect: global).
  prob           apply with this probability (default 1).
  The first rule whose stage and match fit (and whose times are not used up)
  wins.

SIGTERM/SIGINT: stop listening, close sessions, flush, (--stats) print
counters to stderr, exit 0.
"""

import argparse
import asyncio
import base64
import binascii
import json
import os
import random
import signal
import socket
import ssl
import struct
import sys
import time

CRLF = b"\r\n"


def log(msg):
    sys.stderr.write("fake_smtp: %s\n" % msg)
    sys.stderr.flush()


# ---------------------------------------------------------------- addresses

class AddrError(ValueError):
    pass


def parse_path(s):
    """Parse '<path> params' (text after 'FROM:' / 'TO:').

    Returns (raw, unquoted, params) where raw is the text inside <> and
    unquoted has a quoted local part unquoted."""
    s = s.lstrip(" ")
    if not s.startswith("<"):
        # Some clients omit the brackets; accept "addr params".
        parts = s.split(" ")
        raw = parts[0]
        rest = parts[1:]
    else:
        i = 1
        inq = False
        while i < len(s):
            c = s[i]
            if inq:
                if c == "\\":
                    i += 2
                    continue
                if c == '"':
                    inq = False
            else:
                if c == '"':
                    inq = True
                elif c == ">":
                    break
            i += 1
        if i >= len(s):
            raise AddrError("unterminated path")
        raw = s[1:i]
        rest = s[i + 1:].split(" ")
    params = {}
    for p in rest:
        if not p:
            continue
        k, eq, v = p.partition("=")
        params[k.upper()] = v if eq else True
    # Source route "@a,@b:user@dom" (obsolete) - drop it.
    if raw.startswith("@") and ":" in raw:
        raw = raw.split(":", 1)[1]
    return raw, unquote_addr(raw), params


def unquote_addr(raw):
    if raw == "":
        return ""
    if raw.startswith('"'):
        out = []
        i = 1
        while i < len(raw):
            c = raw[i]
            if c == "\\" and i + 1 < len(raw):
                out.append(raw[i + 1])
                i += 2
                continue
            if c == '"':
                break
            out.append(c)
            i += 1
        else:
            raise AddrError("unterminated quoted local part")
        rest = raw[i + 1:]
        if not rest.startswith("@") or len(rest) < 2:
            raise AddrError("missing domain")
        return "".join(out) + rest
    if "@" not in raw:
        raise AddrError("missing domain")
    local, _, dom = raw.rpartition("@")
    if not local or not dom or " " in raw or '"' in local:
        raise AddrError("bad address")
    return raw


def strict_dot_atom_ok(raw):
    """True when the local part is a quoted string or a valid dot-atom."""
    if raw == "" or raw.startswith('"'):
        return True
    local = raw.rpartition("@")[0]
    return not (local.startswith(".") or local.endswith(".") or ".." in local)


# ---------------------------------------------------------------- control

class Control:
    def __init__(self, path):
        self.path = path
        self.sig = None
        self.data = {}
        self.counts = {}
        self.rng = random.Random(1234)

    def refresh(self):
        if not self.path:
            return
        try:
            st = os.stat(self.path)
            sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            sig = None
        if sig == self.sig:
            return
        self.sig = sig
        self.counts = {}
        if sig is None:
            self.data = {}
            return
        try:
            with open(self.path, "rb") as f:
                d = json.loads(f.read() or b"{}")
            if not isinstance(d, dict):
                raise ValueError("not an object")
            self.data = d
        except (OSError, ValueError) as e:
            log("control file %s unreadable (%s): no faults" % (self.path, e))
            self.data = {}

    @property
    def down(self):
        return self.data.get("down", False)

    def find(self, stage, keys):
        """First applicable rule for stage; keys = candidate addresses.
        Returns (rule_index, rule) or None; consumes one 'times' credit."""
        self.refresh()
        rules = self.data.get("rules") or []
        for idx, r in enumerate(rules):
            if not isinstance(r, dict):
                continue
            if r.get("stage", "rcpt") != stage:
                continue
            m = r.get("match", "")
            if stage == "connect":
                hit = ""
            else:
                hit = next((k for k in keys if m in k), None)
                if hit is None:
                    continue
            times = r.get("times")
            ck = (idx, hit)
            if times is not None and self.counts.get(ck, 0) >= int(times):
                continue
            prob = r.get("prob")
            if prob is not None and self.rng.random() >= float(prob):
                continue
            self.counts[ck] = self.counts.get(ck, 0) + 1
            return idx, r
        return None


# ---------------------------------------------------------------- server

class Closed(Exception):
    """Session ends (reply already sent or deliberately none)."""


class Server:
    def __init__(self, args):
        self.args = args
        self.ctl = Control(args.control)
        self.tls_ctx = None
        if args.tls != "none":
            if not args.cert or not args.key:
                raise SystemExit("fake_smtp: --tls needs --cert and --key")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if args.tls_max_version is not None:
                # An outdated relay: offer only TLS <= this version.  Debian's
                # OpenSSL refuses TLS 1.0/1.1 at its default security level,
                # so the server side must go down to level 0 to even offer it.
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = {
                    "1.0": ssl.TLSVersion.TLSv1,
                    "1.1": ssl.TLSVersion.TLSv1_1,
                    "1.2": ssl.TLSVersion.TLSv1_2}[args.tls_max_version]
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.load_cert_chain(args.cert, args.key)
            self.tls_ctx = ctx
        self.users = {}
        for a in args.auth or []:
            u, sep, p = a.partition(":")
            if not sep:
                raise SystemExit("fake_smtp: --auth wants USER:PASS")
            self.users[u] = p
        self.msgs_f = self.events_f = None
        if args.store:
            os.makedirs(args.store, exist_ok=True)
            self.msgs_f = open(os.path.join(args.store, "messages.jsonl"), "a",
                               encoding="utf-8")
            self.events_f = open(os.path.join(args.store, "events.jsonl"), "a",
                                 encoding="utf-8")
        self.conn_seq = 0
        self.active = 0
        self.sessions = set()
        self.server = None
        self.port = args.port
        self.listening = False
        self.stats = {"connections": 0, "refused": 0, "peak_active": 0,
                      "messages": 0, "rcpt_ok": 0, "rcpt_fail": 0,
                      "tls_ok": 0, "tls_fail": 0, "auth_ok": 0, "auth_fail": 0,
                      "faults": 0}
        self.stopping = asyncio.Event()

    # -- records
    def event(self, ev, **kw):
        if self.events_f:
            kw = dict({"ev": ev}, **kw)
            kw["ts"] = time.time()
            self.events_f.write(json.dumps(kw) + "\n")
            self.events_f.flush()

    def store(self, rec):
        if self.msgs_f:
            self.msgs_f.write(json.dumps(rec) + "\n")
            self.msgs_f.flush()

    # -- listening
    async def listen(self):
        # Implicit TLS: the handshake must be done by the listener (the client
        # speaks first; a later start_tls() would race with its ClientHello).
        # Handshake failures there are silent and not in events.jsonl.
        implicit = self.args.tls == "implicit"
        self.server = await asyncio.start_server(
            self.handle, self.args.host, self.port, limit=1 << 20,
            reuse_address=True, backlog=1024,
            ssl=self.tls_ctx if implicit else None,
            ssl_handshake_timeout=30 if implicit else None)
        self.port = self.server.sockets[0].getsockname()[1]
        self.listening = True

    async def unlisten(self):
        if self.server:
            self.server.close()
            # Do not wait_closed(): in 3.11 it would wait for live sessions.
            self.server = None
        self.listening = False

    async def watch_control(self):
        while not self.stopping.is_set():
            self.ctl.refresh()
            want_refuse = self.ctl.down == "refuse"
            try:
                if want_refuse and self.listening:
                    await self.unlisten()
                    log("down: not listening")
                elif not want_refuse and not self.listening:
                    await self.listen()
                    log("up: listening again on %d" % self.port)
            except OSError as e:
                log("relisten failed: %s" % e)
            try:
                await asyncio.wait_for(self.stopping.wait(), 0.05)
            except asyncio.TimeoutError:
                pass

    async def handle(self, reader, writer):
        self.conn_seq += 1
        s = Session(self, self.conn_seq, reader, writer)
        task = asyncio.current_task()
        self.sessions.add(task)
        try:
            await s.run()
        finally:
            self.sessions.discard(task)


class Session:
    def __init__(self, srv, cid, reader, writer):
        self.srv = srv
        self.args = srv.args
        self.cid = cid
        self.r = reader
        self.w = writer
        self.tls = False
        self.helo = None
        self.esmtp = False
        self.user = None
        self.msgs = 0
        self.reset_tx()

    def reset_tx(self):
        self.mail_from = None
        self.mail_raw = None
        self.mail_params = {}
        self.rcpts = []
        self.rcpts_raw = []
        self.n_rcpt_cmds = 0

    # -- I/O
    async def reply(self, code, text):
        lines = text.split("\n") if isinstance(text, str) else list(text)
        out = []
        for i, ln in enumerate(lines):
            sep = "-" if i < len(lines) - 1 else " "
            out.append("%d%s%s\r\n" % (code, sep, ln))
        data = "".join(out).encode("utf-8")
        if self.args.verbose:
            log("[%d] S: %r" % (self.cid, data))
        self.w.write(data)
        await self.w.drain()

    async def readline(self):
        try:
            line = await asyncio.wait_for(self.r.readline(), self.args.idle_timeout)
        except asyncio.TimeoutError:
            await self.reply(421, "4.4.2 Idle timeout, closing connection")
            raise Closed()
        except (ValueError, asyncio.LimitOverrunError):
            await self.reply(500, "5.5.6 Line too long")
            raise Closed()
        if not line:
            raise Closed()
        return line

    async def stall(self):
        # Hold the connection, answer nothing, until the client gives up.
        while await self.r.read(65536):
            pass
        raise Closed()

    def abort(self, rst):
        if rst:
            sock = self.w.get_extra_info("socket")
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            except (OSError, AttributeError):
                pass
            self.w.transport.abort()
        else:
            self.w.close()
        raise Closed()

    async def apply_fault(self, rule, default4, default5):
        """Apply a fault rule: returns None to continue normally (delay),
        or (code, text) for a replacement reply; may raise Closed."""
        self.srv.stats["faults"] += 1
        act = rule.get("action", "4xx")
        if act == "delay":
            await asyncio.sleep(float(rule.get("seconds", 1)))
            return None
        if act == "stall":
            await self.stall()
        if act in ("drop", "reset"):
            self.abort(act == "reset")
        if act == "5xx":
            code = int(rule.get("code", 550))
            text = rule.get("text", default5)
        else:
            code = int(rule.get("code", 451))
            text = rule.get("text", default4)
        return code, text

    # -- main loop
    async def run(self):
        srv = self.srv
        srv.stats["connections"] += 1
        srv.active += 1
        srv.stats["peak_active"] = max(srv.stats["peak_active"], srv.active)
        try:
            await self.session()
        except (Closed, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as e:  # a bug in the fake: show it, keep serving
            log("[%d] internal error: %r" % (self.cid, e))
            try:
                await self.reply(451, "4.3.0 Internal fake error")
            except Exception:
                pass
        finally:
            srv.active -= 1
            srv.event("close", conn=self.cid, msgs=self.msgs)
            try:
                self.w.close()
            except Exception:
                pass

    async def session(self):
        srv = self.srv
        srv.ctl.refresh()
        srv.event("connect", conn=self.cid, active=srv.active)
        if srv.ctl.down:
            srv.stats["refused"] += 1
            srv.event("refused", conn=self.cid, reason="down")
            await self.reply(421, "4.3.2 Service not available")
            raise Closed()
        if self.args.max_conn and srv.active > self.args.max_conn:
            srv.stats["refused"] += 1
            srv.event("refused", conn=self.cid, reason="max-conn")
            await self.reply(421, "4.7.0 Too many connections, try again later")
            raise Closed()
        if self.args.tls == "implicit":
            self.tls = True
            self.srv.stats["tls_ok"] += 1
            self.srv.event("tls", conn=self.cid, ok=True)
        hit = srv.ctl.find("connect", [])
        if hit:
            res = await self.apply_fault(hit[1], "4.3.2 Service not available",
                                         "5.7.1 Access denied")
            if res:
                srv.stats["refused"] += 1
                srv.event("refused", conn=self.cid, reason="rule")
                await self.reply(*res)
                raise Closed()
        await self.reply(220, "%s ESMTP kairan fake_smtp ready" % self.args.hostname)
        while True:
            line = await self.readline()
            if self.args.verbose:
                log("[%d] C: %r" % (self.cid, line))
            text = line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            fn = getattr(self, "cmd_" + verb, None) if verb.isalpha() else None
            if fn is None:
                await self.reply(500, "5.5.2 Command unrecognized")
                continue
            await fn(arg)

    # -- commands
    def ehlo_lines(self):
        lines = ["%s greets %s" % (self.args.hostname, self.helo),
                 "PIPELINING", "SIZE %d" % self.args.max_size, "8BITMIME",
                 "ENHANCEDSTATUSCODES"]
        if self.srv.tls_ctx and self.args.tls == "starttls" and not self.tls:
            lines.append("STARTTLS")
        if self.srv.users and (self.tls or self.args.tls != "starttls"):
            lines.append("AUTH PLAIN LOGIN")
        return lines

    async def cmd_EHLO(self, arg):
        if not arg.strip():
            await self.reply(501, "5.5.4 Syntax: EHLO hostname")
            return
        self.helo = arg.strip()
        self.esmtp = True
        self.reset_tx()
        await self.reply(250, "\n".join(self.ehlo_lines()))

    async def cmd_HELO(self, arg):
        if not arg.strip():
            await self.reply(501, "5.5.4 Syntax: HELO hostname")
            return
        self.helo = arg.strip()
        self.esmtp = False
        self.reset_tx()
        await self.reply(250, "%s" % self.args.hostname)

    async def cmd_NOOP(self, arg):
        await self.reply(250, "2.0.0 OK")

    async def cmd_RSET(self, arg):
        self.reset_tx()
        await self.reply(250, "2.0.0 OK")

    async def cmd_QUIT(self, arg):
        await self.reply(221, "2.0.0 Bye")
        raise Closed()

    async def cmd_VRFY(self, arg):
        await self.reply(252, "2.5.2 Cannot VRFY user")

    async def cmd_EXPN(self, arg):
        await self.reply(502, "5.5.1 EXPN not implemented")

    async def cmd_HELP(self, arg):
        await self.reply(214, "2.0.0 See RFC 5321")

    async def cmd_STARTTLS(self, arg):
        if not self.srv.tls_ctx or self.args.tls != "starttls":
            await self.reply(502, "5.5.1 STARTTLS not available")
            return
        if self.tls:
            await self.reply(503, "5.5.1 TLS already active")
            return
        if arg.strip():
            await self.reply(501, "5.5.4 Syntax: STARTTLS")
            return
        await self.reply(220, "2.0.0 Ready to start TLS")
        # Anything pipelined after STARTTLS must be discarded (RFC 3207 §4.2,
        # CVE-2011-0411 style injection).
        buf = getattr(self.r, "_buffer", None)
        if buf:
            buf.clear()
        await self.start_tls()
        # Forget everything learned before TLS.
        self.helo = None
        self.esmtp = False
        self.user = None
        self.reset_tx()

    async def start_tls(self):
        try:
            await asyncio.wait_for(self.w.start_tls(self.srv.tls_ctx), 30)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as e:
            self.srv.stats["tls_fail"] += 1
            self.srv.event("tls", conn=self.cid, ok=False, error=str(e) or repr(e))
            if self.args.verbose:
                log("[%d] TLS handshake failed: %s" % (self.cid, e))
            self.w.transport.abort()
            raise Closed()
        self.tls = True
        self.srv.stats["tls_ok"] += 1
        self.srv.event("tls", conn=self.cid, ok=True)

    async def auth_fail(self, user):
        self.srv.stats["auth_fail"] += 1
        self.srv.event("auth", conn=self.cid, ok=False, user=user)
        await self.reply(535, "5.7.8 Authentication credentials invalid")

    async def read_b64(self):
        line = (await self.readline()).rstrip(b"\r\n")
        if line == b"*":
            await self.reply(501, "5.0.0 Authentication cancelled")
            return None
        try:
            return base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            await self.reply(501, "5.5.2 Bad base64")
            return None

    async def cmd_AUTH(self, arg):
        if not self.srv.users or (self.args.tls == "starttls" and not self.tls):
            if self.srv.users:
                await self.reply(530, "5.7.0 Must issue a STARTTLS command first")
            else:
                await self.reply(503, "5.5.1 AUTH not available")
            return
        if not self.esmtp:
            await self.reply(503, "5.5.1 EHLO first")
            return
        if self.user is not None:
            await self.reply(503, "5.5.1 Already authenticated")
            return
        if self.mail_from is not None:
            await self.reply(503, "5.5.1 AUTH not allowed during a transaction")
            return
        parts = arg.split()
        if not parts:
            await self.reply(501, "5.5.4 Syntax: AUTH mechanism")
            return
        mech = parts[0].upper()
        initial = parts[1] if len(parts) > 1 else None
        if mech == "PLAIN":
            if initial is None:
                await self.reply(334, "")
                raw = await self.read_b64()
                if raw is None:
                    return
            elif initial == "=":
                raw = b""
            else:
                try:
                    raw = base64.b64decode(initial, validate=True)
                except (binascii.Error, ValueError):
                    await self.reply(501, "5.5.2 Bad base64")
                    return
            fields = raw.split(b"\0")
            if len(fields) != 3:
                await self.auth_fail(None)
                return
            user = fields[1].decode("utf-8", "replace")
            pw = fields[2].decode("utf-8", "replace")
        elif mech == "LOGIN":
            if initial is not None:
                try:
                    ub = base64.b64decode(initial, validate=True)
                except (binascii.Error, ValueError):
                    await self.reply(501, "5.5.2 Bad base64")
                    return
            else:
                await self.reply(334, "VXNlcm5hbWU6")
                ub = await self.read_b64()
                if ub is None:
                    return
            await self.reply(334, "UGFzc3dvcmQ6")
            pb = await self.read_b64()
            if pb is None:
                return
            user = ub.decode("utf-8", "replace")
            pw = pb.decode("utf-8", "replace")
        else:
            await self.reply(504, "5.5.4 Unrecognized authentication type")
            return
        if self.srv.users.get(user) != pw or user not in self.srv.users:
            await self.auth_fail(user)
            return
        self.user = user
        self.srv.stats["auth_ok"] += 1
        self.srv.event("auth", conn=self.cid, ok=True, user=user)
        await self.reply(235, "2.7.0 Authentication successful")

    async def mail_gate(self):
        """Checks before MAIL; returns True when the command was answered."""
        srv = self.srv
        srv.ctl.refresh()
        if srv.ctl.down:
            await self.reply(421, "4.3.2 Service not available, closing channel")
            raise Closed()
        if self.helo is None:
            await self.reply(503, "5.5.1 Send EHLO/HELO first")
            return True
        if self.args.require_tls and not self.tls:
            await self.reply(530, "5.7.0 Must issue a STARTTLS command first")
            return True
        if srv.users and self.user is None:
            await self.reply(530, "5.7.0 Authentication required")
            return True
        if self.mail_from is not None:
            await self.reply(503, "5.5.1 Nested MAIL command")
            return True
        return False

    async def cmd_MAIL(self, arg):
        if await self.mail_gate():
            return
        if not arg.upper().startswith("FROM:"):
            await self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
            return
        try:
            raw, addr, params = parse_path(arg[5:])
        except AddrError as e:
            await self.reply(501, "5.1.7 Bad sender address syntax (%s)" % e)
            return
        size = params.get("SIZE")
        if size is not None and size is not True:
            try:
                if int(size) > self.args.max_size:
                    await self.reply(552, "5.3.4 Message size exceeds fixed limit")
                    self.srv.event("mail", conn=self.cid, **{"from": addr}, code=552)
                    return
            except ValueError:
                await self.reply(501, "5.5.4 Bad SIZE parameter")
                return
        body = params.get("BODY")
        if body is not None and str(body).upper() not in ("7BIT", "8BITMIME"):
            await self.reply(501, "5.5.4 Bad BODY parameter")
            return
        hit = self.srv.ctl.find("mail", [addr])
        if hit:
            res = await self.apply_fault(hit[1], "4.3.0 Temporary failure, try again",
                                         "5.7.1 Sender rejected")
            if res:
                self.srv.event("mail", conn=self.cid, **{"from": addr}, code=res[0],
                               action=hit[1].get("action"))
                await self.reply(*res)
                if res[0] == 421:
                    raise Closed()
                return
        self.mail_from = addr
        self.mail_raw = raw
        self.mail_params = {k: v for k, v in params.items()}
        self.srv.event("mail", conn=self.cid, **{"from": addr}, code=250)
        await self.reply(250, "2.1.0 Sender OK")

    async def cmd_RCPT(self, arg):
        if self.mail_from is None:
            await self.reply(503, "5.5.1 Need MAIL before RCPT")
            return
        if not arg.upper().startswith("TO:"):
            await self.reply(501, "5.5.4 Syntax: RCPT TO:<address>")
            return
        self.n_rcpt_cmds += 1
        if self.args.max_rcpt and self.n_rcpt_cmds > self.args.max_rcpt:
            # docomo: the 101st recipient fails the whole session.
            self.srv.event("rcpt", conn=self.cid, rcpt=None, rcpt_raw=None, code=554,
                           action="max-rcpt")
            await self.reply(554, "5.5.3 Transaction failed: too many recipients")
            self.w.close()
            raise Closed()
        try:
            raw, addr, params = parse_path(arg[3:])
        except AddrError as e:
            self.srv.stats["rcpt_fail"] += 1
            await self.reply(501, "5.1.3 Bad recipient address syntax (%s)" % e)
            return
        if not addr or (self.args.strict_addresses and not strict_dot_atom_ok(raw)):
            self.srv.stats["rcpt_fail"] += 1
            self.srv.event("rcpt", conn=self.cid, rcpt=addr, rcpt_raw=raw, code=501)
            await self.reply(501, "5.1.3 Bad recipient address syntax")
            return
        hit = self.srv.ctl.find("rcpt", [addr])
        if hit:
            rule = hit[1]
            act = rule.get("action", "4xx")
            if act in ("stall", "drop", "reset"):
                self.srv.event("rcpt", conn=self.cid, rcpt=addr, rcpt_raw=raw,
                               code=None, action=act)
            res = await self.apply_fault(rule, "4.3.0 Temporary failure, try again",
                                         "5.1.1 User unknown")
            if res:
                self.srv.stats["rcpt_fail"] += 1
                self.srv.event("rcpt", conn=self.cid, rcpt=addr, rcpt_raw=raw,
                               code=res[0], action=act)
                await self.reply(*res)
                if res[0] == 421:
                    raise Closed()
                return
        self.rcpts.append(addr)
        self.rcpts_raw.append(raw)
        self.srv.stats["rcpt_ok"] += 1
        self.srv.event("rcpt", conn=self.cid, rcpt=addr, rcpt_raw=raw, code=250)
        await self.reply(250, "2.1.5 Recipient OK")

    async def cmd_DATA(self, arg):
        if self.mail_from is None:
            await self.reply(503, "5.5.1 Need MAIL command")
            return
        if not self.rcpts:
            await self.reply(554, "5.5.1 No valid recipients")
            return
        await self.reply(354, "End data with <CR><LF>.<CR><LF>")
        chunks = []
        size = 0
        max_line = 0
        bare_lf = False
        too_big = False
        while True:
            line = await self.readline()
            if line == b".\r\n" or line == b".\n":
                if line == b".\n":
                    bare_lf = True
                break
            if line.startswith(b"."):
                line = line[1:]
            if not line.endswith(b"\r\n"):
                if line.endswith(b"\n"):
                    bare_lf = True
                ll = len(line.rstrip(b"\n"))
            else:
                ll = len(line) - 2
            if ll > max_line:
                max_line = ll
            size += len(line)
            if size > self.args.max_size:
                too_big = True
            elif not too_big:
                chunks.append(line)
        if too_big:
            self.reset_tx()
            await self.reply(552, "5.3.4 Message size exceeds fixed limit")
            return
        hit = self.srv.ctl.find("data", self.rcpts)
        if hit:
            rule = hit[1]
            res = await self.apply_fault(rule, "4.3.0 Temporary failure, try again",
                                         "5.6.0 Message rejected")
            if res:
                self.srv.event("data", conn=self.cid, rcpt=self.rcpts, code=res[0],
                               action=rule.get("action"))
                self.reset_tx()
                await self.reply(*res)
                if res[0] == 421:
                    raise Closed()
                return
        if self.args.fail_data_for and any(self.args.fail_data_for in r for r in self.rcpts):
            self.srv.event("data", conn=self.cid, rcpt=self.rcpts, code=451)
            self.reset_tx()
            await self.reply(451, "4.3.0 Temporary failure after DATA")
            return
        data = b"".join(chunks)
        rec = {"mail_from": self.mail_from, "rcpt": self.rcpts,
               "rcpt_raw": self.rcpts_raw, "mail_params": self.mail_params,
               "data": data.decode("utf-8", "surrogateescape"), "size": len(data),
               "max_line": max_line, "bare_lf": bare_lf, "conn": self.cid,
               "tls": self.tls, "auth": self.user, "helo": self.helo,
               "ts": time.time()}
        self.srv.store(rec)
        self.srv.event("data", conn=self.cid, rcpt=self.rcpts, code=250)
        self.srv.stats["messages"] += 1
        self.msgs += 1
        self.reset_tx()
        await self.reply(250, "2.0.0 OK queued as %d.%d" % (self.cid, self.msgs))

    async def cmd_BDAT(self, arg):
        await self.reply(502, "5.5.1 BDAT not supported")


# ---------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(description="fake SMTP server for kairan tests")
    ap.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--tls", choices=("none", "starttls", "implicit"), default="none")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--tls-max-version", choices=("1.0", "1.1", "1.2"),
                    help="offer only TLS versions up to this one (an outdated "
                         "relay; 1.0/1.1 also lower OpenSSL's security level)")
    ap.add_argument("--require-tls", action="store_true",
                    help="530 to MAIL before STARTTLS")
    ap.add_argument("--auth", action="append", metavar="USER:PASS",
                    help="require AUTH before MAIL (repeatable)")
    ap.add_argument("--store", metavar="DIR", help="messages.jsonl / events.jsonl here")
    ap.add_argument("--control", metavar="FILE", help="JSON fault-injection file")
    ap.add_argument("--max-rcpt", type=int, default=0,
                    help="RCPT number N+1 in a transaction: 554 and close (0 = no limit)")
    ap.add_argument("--max-conn", type=int, default=0,
                    help="more concurrent sessions than this: 421 at connect")
    ap.add_argument("--max-size", type=int, default=10 * 1024 * 1024)
    ap.add_argument("--fail-data-for", metavar="SUBSTR",
                    help="451 after DATA when a recipient contains SUBSTR")
    ap.add_argument("--strict-addresses", action="store_true",
                    help="501 for unquoted local parts that are not dot-atoms (a..b@, a.@)")
    ap.add_argument("--idle-timeout", type=float, default=300.0)
    ap.add_argument("--hostname", default="fake-smtp.test")
    ap.add_argument("--stats", action="store_true", help="print counters on exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every line")
    return ap.parse_args(argv)


async def amain(args):
    srv = Server(args)
    await srv.listen()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.port)
        os.replace(tmp, args.port_file)
    if args.port == 0:
        print(srv.port, flush=True)
    log("listening on %s:%d tls=%s auth=%s" %
        (args.host, srv.port, args.tls, "yes" if srv.users else "no"))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, srv.stopping.set)
    watcher = asyncio.create_task(srv.watch_control())
    await srv.stopping.wait()
    await watcher
    await srv.unlisten()
    for t in list(srv.sessions):
        t.cancel()
    if srv.sessions:
        await asyncio.wait(list(srv.sessions), timeout=2)
    for f in (srv.msgs_f, srv.events_f):
        if f:
            f.close()
    if args.stats:
        log("stats " + json.dumps(srv.stats, sort_keys=True))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        asyncio.run(amain(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
