#!/usr/bin/python3
"""test_smtp_client.py - kairand's own SMTP client (adapters/smtp_client.c,
adapters/smtp.c) against real servers started privately on loopback:

  [1] Postfix's smtp-sink (PIPELINING): every message arrives, one
      recipient each, nothing with a bare LF;
  [2] smtp-sink refusing every RCPT (5xx) while pipelined: permanent, one
      try each; and 421 at MAIL: temporary, retried;
  [3] aiosmtpd: STARTTLS required, AUTH only after TLS, no PIPELINING
      (the lock-step path): delivered over TLS, authenticated;
  [4] tests/fakes/fake_smtp.py: messages spread evenly over the
      connections; a refused RCPT / MAIL / end of DATA ends only that
      message's transaction (the others on the same connection deliver);
  [5] tests/fakes/bad_smtp.py, a misbehaving server: 421 greeting, garbage,
      EHLO refused, a reset in the middle of DATA (retried, delivered once),
      bytes injected after STARTTLS's 220 (refused before anything is sent);
      each reason names the problem;
  [6] Postfix's smtpd, a private instance with smtpd_forbid_unauth_pipelining
      and smtpd_forbid_bare_newline (with controls showing that it refuses
      a client breaking either): everything delivered over STARTTLS.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_smtp_client.py
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("smtpclient")
ca = mkca()
CA = os.path.join(ca, "ca.pem")
PY = "/usr/bin/python3"
SINK = "/usr/sbin/smtp-sink"
QUICK = {"max_attempts": "2", "retry_base_ms": "50", "retry_cap_ms": "100"}


def connectable(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


class Server:
    """A server process on a free port, as Kairan(smtp=) wants it."""

    def __init__(self, d, name, args_fn, tls="none", user=None):
        self.port = free_port()
        self.url = "smtp://127.0.0.1:%d" % self.port
        self.tls = tls
        self.ca = CA if tls != "none" else None
        self.user, self.password = (user.split(":", 1) if user
                                    else (None, None))
        self.store = os.path.join(d, name + ".jsonl")
        self.proc = Proc(args_fn(self), d, name=name)
        wait_for(lambda: connectable(self.port), 15, what=name)

    def records(self, suffix=""):
        try:
            with open(self.store + suffix) as f:
                return [json.loads(x) for x in f if x.strip()]
        except FileNotFoundError:
            return []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stop()


def run(d, server, n, conf=None, tag="x", timeout=60):
    """Submit n recipients through kairand to server; wait for the end.
    Returns (counts, reasons, kairand log)."""
    c = {"queue": dict(QUICK)}
    for k, v in (conf or {}).items():
        c.setdefault(k, {}).update(v)
    with Redis(d) as r:
        k = Kairan(d, r, smtp=server, conf=c)
        rc = [{"id": "r%04d" % i, "email": "%s%04d@example.jp" % (tag, i)}
              for i in range(n)]
        bid = k.submit({"tenant": "smtp-hs", "subject": "件名 %s" % tag,
                        "body": "本文\n行", "channels": ["email"],
                        "recipients": rc})
        p = k.start()
        try:
            k.wait_done(bid, timeout)
            cnt = k.counts(bid).get("email", {})
            st = r.call("HGETALL", "kairan:bc:%s:r" % bid)
            reasons = [v.decode("utf-8", "replace") for v in st[1::2]]
            dl = json.loads(k.ctl("dlq", "list", "--json").stdout or "[]")
            reasons += [str(e.get("reason", "")) for e in dl]
        finally:
            p.stop()
        return cnt, reasons, p.stderr_text()


def no_address(name, addrs_re, reasons, log):
    tap.ok(not re.search(addrs_re, " ".join(reasons) + log),
           "%s: no address in the reasons or the log" % name)


# [1] smtp-sink with PIPELINING
d = os.path.join(out, "sink")
# smtp-sink runs as nobody: its dump directory must be reachable by it.
dump = tempfile.mkdtemp(prefix="kairan-sink-")
os.chmod(dump, 0o777)
with Server(d, "sink", lambda s: [SINK, "-u", "nobody", "-d",
                                  os.path.join(dump, "%H%M%S."),
                                  "127.0.0.1:%d" % s.port, "64"]) as sink:
    N = 120
    cnt, reasons, log = run(d, sink, N, {"smtp": {"connections": "4"}},
                            tag="sink")
    files = glob.glob(os.path.join(dump, "*"))
    tap.eq(cnt.get("delivered", 0), N, "[1] smtp-sink: all %d delivered" % N)
    tap.eq(len(files), N, "[1] smtp-sink stored %d messages" % N)
    # smtp-sink's dump: its own headers first (LF line ends), with the
    # envelope and the EHLO argument.
    helo, rcpts = set(), []
    for f in files:
        with open(f, "rb") as fh:
            b = fh.read().decode("utf-8", "replace")
        helo |= set(re.findall(r"^X-Helo-Args: (.*)$", b, re.M))
        rcpts.append(len(re.findall(r"^X-Rcpt-Args: ", b, re.M)))
    tap.ok(rcpts and all(x == 1 for x in rcpts),
           "[1] one recipient per transaction")
    tap.eq(sorted(helo), [socket.gethostname()],
           "[1] EHLO names this host (smtp.helo unset), not the From domain")
    no_address("[1]", r"sink\d{4}@", reasons, log)
shutil.rmtree(dump, ignore_errors=True)

# [2] smtp-sink refusing: RCPT 5xx (pipelined), 421 at MAIL
d = os.path.join(out, "sink-refuse")
with Server(d, "sink-f", lambda s: [SINK, "-u", "nobody", "-f", "rcpt",
                                    "127.0.0.1:%d" % s.port, "64"]) as sink:
    cnt, reasons, log = run(d, sink, 10, {"smtp": {"connections": "2"}},
                            tag="rf")
    # a 5xx at RCPT is a bounce at once (issue 18), not a DLQ entry
    tap.eq(cnt.get("bounced", 0), 10, "[2] RCPT 5xx: all 10 bounced")
    tap.ok(all(re.search(r"\b5\d\d\b", x) for x in reasons if x)
           and reasons, "[2] RCPT 5xx: each reason has the 5xx code",
           str(reasons[:2]))
    tap.ok(not any("gave up after 2" in x for x in reasons),
           "[2] RCPT 5xx: permanent, never retried", str(reasons[:2]))
d = os.path.join(out, "sink-421")
with Server(d, "sink-q", lambda s: [SINK, "-u", "nobody", "-Q", "mail",
                                    "127.0.0.1:%d" % s.port, "64"]) as sink:
    cnt, reasons, log = run(d, sink, 4, {"smtp": {"connections": "2"}},
                            tag="q")
    tap.eq(cnt.get("failed", 0), 4, "[2] 421 at MAIL: all 4 failed")
    tap.ok(any("421" in x for x in reasons) and
           any("gave up after 2" in x for x in reasons),
           "[2] 421 at MAIL: temporary (retried), the reason names 421",
           str(reasons[:2]))

d = os.path.join(out, "sink-data")
with Server(d, "sink-r", lambda s: [SINK, "-u", "nobody", "-r", "data",
                                    "127.0.0.1:%d" % s.port, "64"]) as sink:
    cnt, reasons, log = run(d, sink, 4, {"smtp": {"connections": "2"}},
                            tag="rd")
    tap.eq(cnt.get("failed", 0), 4, "[2] DATA 4xx: all 4 failed")
    tap.ok(any(re.search(r"smtp 4\d\d: .*\(DATA\)", x) for x in reasons)
           and any("gave up after 2" in x for x in reasons),
           "[2] DATA 4xx: temporary (retried), the reason names DATA",
           str(reasons[:2]))

# [3] aiosmtpd: STARTTLS, AUTH, lock-step
d = os.path.join(out, "aio")
with Server(d, "aiosmtpd", lambda s: [
        PY, os.path.join(FAKES, "aio_smtp.py"), "--port", s.port,
        "--cert", os.path.join(ca, "server.pem"),
        "--key", os.path.join(ca, "server.key"), "--auth", "u:p",
        "--store", s.store], tls="starttls", user="u:p") as aio:
    cnt, reasons, log = run(d, aio, 12, {"smtp": {"connections": "3"}},
                            tag="aio")
    recs = aio.records()
    tap.eq(cnt.get("delivered", 0), 12, "[3] aiosmtpd: all 12 delivered")
    tap.eq(len(recs), 12, "[3] aiosmtpd stored 12")
    tap.ok(all(x["tls"] and x["auth"] == "u" for x in recs),
           "[3] every message over TLS and authenticated")
    tap.ok(all(len(x["rcpt"]) == 1 for x in recs),
           "[3] one recipient per transaction")
    tap.ok(not any(x["bare_lf"] for x in recs), "[3] no bare LF")

# [3] fake_smtp with implicit TLS (smtps://) and AUTH
d = os.path.join(out, "smtps")
os.makedirs(d, exist_ok=True)
with FakeSMTP(d, name="fake-smtps", tls="implicit", auth="u:p",
              cert=os.path.join(ca, "server.pem"),
              key=os.path.join(ca, "server.key")) as fake:
    fake.ca = CA
    cnt, reasons, log = run(d, fake, 6, {"smtp": {"connections": "2"}},
                            tag="ss")
    ms = fake.messages()
    tap.eq(cnt.get("delivered", 0), 6, "[3] smtps: all 6 delivered")
    tap.ok(len(ms) == 6 and all(m["tls"] and m["auth"] == "u" for m in ms),
           "[3] smtps: over TLS from the first byte, authenticated")

# [4] fake_smtp: spread, refusals per step on a shared connection
d = os.path.join(out, "fake")
os.makedirs(d, exist_ok=True)
with FakeSMTP(d, name="fake-spread") as fake:
    cnt, reasons, log = run(d, fake, 300, {"smtp": {"connections": "10"}},
                            tag="sp")
    per = {}
    for m in fake.messages():
        per[m["conn"]] = per.get(m["conn"], 0) + 1
    tap.diag("[4] messages per connection: %s" % sorted(per.values()))
    tap.eq(cnt.get("delivered", 0), 300, "[4] 300 delivered")
    tap.ok(not any(m["bare_lf"] or m["max_line"] > 998
                   for m in fake.messages()),
           "[4] CRLF only, lines at most 998 octets")
    tap.ok(len(per) == 10 and min(per.values()) >= 10,
           "[4] spread over the 10 connections, each at least 10 of 300",
           str(sorted(per.values())))
with FakeSMTP(d, name="fake-refuse") as fake:
    fake.set_control({"rules": [
        {"match": "rf0001@", "stage": "rcpt", "action": "5xx"},
        {"match": "rf0002@", "stage": "data", "action": "5xx", "code": 554},
        {"match": "rf0003@", "stage": "rcpt", "action": "4xx", "times": 1},
    ]})
    cnt, reasons, log = run(d, fake, 8, {"smtp": {"connections": "1"}},
                            tag="rf")
    got = sorted(r for m in fake.messages() for r in m["rcpt"])
    tap.eq(cnt.get("delivered", 0), 6, "[4] 6 of 8 delivered on one "
           "connection (RSET after each refusal)")
    tap.eq(cnt.get("failed", 0), 1, "[4] end-of-DATA 554 failed")
    tap.eq(cnt.get("bounced", 0), 1, "[4] RCPT 550 bounced at once "
           "(issue 18)")
    tap.eq(got.count("rf0003@example.jp"), 1,
           "[4] RCPT 4xx once: retried, delivered once")
    tap.ok(any("554" in x for x in reasons) and any("550" in x for x in reasons),
           "[4] the reasons carry 550 and 554", str(reasons))
    no_address("[4]", r"rf\d{4}@", reasons, log)

# [5] misbehaving servers
CASES = [
    ("banner421", [], r"421", 0),
    ("garbage", [], r"protocol error", 0),
    ("ehlo554", [], r"EHLO refused: 554|HELO refused: 554", 0),
    ("rst_data", ["--times", "1"], None, 1),
    ("tls454", [], r"STARTTLS refused: 454", 0),
    ("auth535", [], r"AUTH refused: 535", 0),
    ("inject", ["--cert", os.path.join(ca, "server.pem"),
                "--key", os.path.join(ca, "server.key")],
     r"after its 220 reply to STARTTLS", 0),
]
for mode, extra, pattern, want in CASES:
    d = os.path.join(out, "bad-" + mode)
    with Server(d, "bad-" + mode, lambda s: [
            PY, os.path.join(FAKES, "bad_smtp.py"), "--port", s.port,
            "--mode", mode, "--store", s.store] + extra,
            tls="starttls" if mode in ("inject", "tls454") else "none",
            user="u:p" if mode == "auth535" else None) as bad:
        cnt, reasons, log = run(d, bad, 1, {"smtp": {"connections": "1"}},
                                tag=mode)
        recs = bad.records()
        cmds = [e["cmd"] for e in bad.records(".events") if e["ev"] == "cmd"]
        if want:
            tap.eq(cnt.get("delivered", 0), 1,
                   "[5] %s once: retried and delivered" % mode)
            tap.eq(len(recs), 1, "[5] %s: stored exactly once" % mode)
        else:
            tap.ok(cnt.get("failed", 0) == 1 and not recs,
                   "[5] %s: failed, nothing delivered" % mode, str(cnt))
            tap.ok(any(re.search(pattern, x) for x in reasons),
                   "[5] %s: the reason names it (/%s/)" % (mode, pattern),
                   str(reasons))
        if mode == "inject":
            per = {}
            for e in bad.records(".events"):
                if e["ev"] == "cmd":
                    per.setdefault(e["conn"], []).append(e["cmd"])
            tap.ok(per and all(v == ["EHLO", "STARTTLS"] for v in per.values()),
                   "[5] inject: nothing after STARTTLS (no EHLO again, "
                   "no MAIL)", str(per))
        no_address("[5] " + mode, mode + r"\d{4}@", reasons, log)

# [5] a reused connection that dies before any reply to the next message:
# that message is taken again on a new connection, not failed nor retried
d = os.path.join(out, "drop-reuse")
with Server(d, "drop-reuse", lambda s: [
        PY, os.path.join(FAKES, "bad_smtp.py"), "--port", s.port,
        "--mode", "drop_reuse", "--times", "2", "--store", s.store]) as srv:
    cnt, reasons, log = run(d, srv, 3, {"smtp": {"connections": "1"}},
                            tag="dr")
    recs = srv.records()
    tap.eq(cnt.get("delivered", 0), 3, "[5] drop_reuse: all 3 delivered")
    tap.eq(sorted(r for x in recs for r in x["rcpt"]),
           ["dr%04d@example.jp" % i for i in range(3)],
           "[5] drop_reuse: each stored once")
    tap.ok("retry later" not in log,
           "[5] drop_reuse: taken again at once, no retry counted")

# [5] an idle connection is closed with QUIT (after 10 s), kairand running
d = os.path.join(out, "idle")
with Server(d, "idle", lambda s: [
        PY, os.path.join(FAKES, "bad_smtp.py"), "--port", s.port,
        "--mode", "ok", "--store", s.store]) as srv, Redis(d) as r:
    k = Kairan(d, r, smtp=srv, conf={"smtp": {"connections": "2"}})
    bid = k.submit({"tenant": "smtp-hs", "subject": "idle", "body": "b",
                    "channels": ["email"],
                    "recipients": [{"id": "r1", "email": "idle@example.jp"}]})
    p = k.start()
    try:
        k.wait_done(bid, 30)
        t = time.monotonic()
        wait_for(lambda: any(e.get("cmd") == "QUIT"
                             for e in srv.records(".events")), 30,
                 what="QUIT on the idle connection")
        tap.ok(p.returncode is None,
               "[5] idle connection closed with QUIT while kairand runs")
    finally:
        p.stop()

# [6] Postfix's own smtpd, a private instance (postfix -c DIR start-fg) on
# a loopback port, discarding what it accepts; it refuses a client that
# breaks RFC 2920 or sends a bare LF (smtpd_forbid_unauth_pipelining = yes,
# smtpd_forbid_bare_newline = reject, no exclusions).  No SASL (AUTH is
# [3]'s).
class Postfix:
    def __init__(self, name):
        # Postfix's daemons run as user postfix: the directory must be
        # reachable by it (test directories are 0700).
        self.dir = tempfile.mkdtemp(prefix="kairan-postfix-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.url = "smtp://127.0.0.1:%d" % self.port
        self.tls, self.ca, self.user = "starttls", CA, None
        spool, data = (os.path.join(self.dir, x) for x in ("spool", "data"))
        os.makedirs(spool)
        os.makedirs(data)
        shutil.chown(data, "postfix")
        conf = {
            "compatibility_level": "3.6", "queue_directory": spool,
            "data_directory": data, "mail_owner": "postfix",
            "setgid_group": "postdrop", "myhostname": "relay.test.example",
            "mydestination": "", "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4", "mynetworks": "127.0.0.0/8",
            "relay_domains": "example.jp",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "default_transport": "discard:test",
            "relay_transport": "discard:test",
            "local_transport": "discard:test", "alias_maps": "",
            "alias_database": "", "maillog_file": "/dev/stdout",
            "smtpd_forbid_unauth_pipelining": "yes",
            "smtpd_forbid_bare_newline": "reject",
            "smtpd_forbid_bare_newline_exclusions": "",
            "smtpd_tls_cert_file": os.path.join(ca, "server.pem"),
            "smtpd_tls_key_file": os.path.join(ca, "server.key"),
            "smtpd_tls_security_level": "may", "smtpd_tls_loglevel": "1",
        }
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.writelines("%s = %s\n" % kv for kv in conf.items())
        with open("/etc/postfix/master.cf") as f, \
                open(os.path.join(self.dir, "master.cf"), "w") as g:
            for line in f:
                w = line.split()
                if line[0] in "# \t\n" or len(w) < 8:
                    g.write(line)
                    continue
                if w[0] == "smtp" and w[1] == "inet":
                    w[0] = "127.0.0.1:%d" % self.port
                w[4] = "n"  # no chroot
                g.write(" ".join(w) + "\n")
        subprocess.run(["/usr/sbin/postfix", "-c", self.dir, "check"],
                       capture_output=True, timeout=60)
        self.proc = Proc(["/usr/sbin/postfix", "-c", self.dir, "start-fg"],
                         out, name=name, extra_env={"MAIL_CONFIG": self.dir})
        wait_for(lambda: connectable(self.port), 30, what="postfix smtpd")

    def log(self):
        with open(self.proc.stdout_path, errors="replace") as f:
            return f.read()

    def stop(self):
        subprocess.run(["/usr/sbin/postfix", "-c", self.dir, "stop"],
                       capture_output=True, timeout=60)
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def raw_session(port, chunks):
    """Send each chunk as one write, read what comes back."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), 10) as c:
        c.settimeout(5)
        got += c.recv(1000)
        for ch in chunks:
            try:
                c.sendall(ch)
                time.sleep(0.3)  # a deliberately bad client, not a wait
                got += c.recv(4000)
            except OSError:
                break
    return got.decode("latin-1")


pf = None
try:
    pf = Postfix("postfix")
    d = os.path.join(out, "postfix")
    N = 100
    cnt, reasons, log = run(d, pf, N, {"smtp": {"connections": "4"}},
                            tag="pf", timeout=120)
    wait_for(lambda: pf.log().count("status=sent") >= N, 30,
             what="postfix to log %d deliveries" % N)
    plog = pf.log()
    tap.eq(cnt.get("delivered", 0), N,
           "[6] Postfix smtpd: all %d delivered over STARTTLS" % N)
    tap.eq(plog.count("status=sent"), N, "[6] Postfix discarded %d" % N)
    tap.ok("improper command pipelining" not in plog and
           "bare <LF>" not in plog,
           "[6] no RFC 2920 or bare-LF complaint from Postfix")
    tap.ok(re.search(r"TLS connection established", plog) is not None,
           "[6] the sessions used TLS")
    # The controls: the same server does refuse a client that breaks them.
    raw_session(pf.port, [b"EHLO x\r\nMAIL FROM:<a@b.example>\r\n"])
    wait_for(lambda: "improper command pipelining" in pf.log(), 10,
             what="Postfix to log the bad pipelining")
    tap.ok(True, "[6] control: pipelining EHLO gets 'improper command "
           "pipelining' from this Postfix")
    bad = raw_session(pf.port, [b"HELO x\r\n", b"MAIL FROM:<a@b.example>\r\n",
                                b"RCPT TO:<c@example.jp>\r\n", b"DATA\r\n",
                                b"Subject: x\r\n\r\nbare\nLF\r\n.\r\n"])
    tap.ok(re.search(r"bare <LF>|5\d\d 5\.5\.\d", bad) is not None,
           "[6] control: a bare LF is refused by this Postfix", bad[-200:])
except Exception as e:  # noqa: BLE001 - reported as the failure detail
    tap.ok(False, "[6] private Postfix smtpd", repr(e))
finally:
    if pf is not None:
        pf.stop()

tap.diag("runtime %.1f s" % (time.monotonic() - T0))
tap.done()
