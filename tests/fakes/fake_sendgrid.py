#!/usr/bin/python3
"""fake_sendgrid.py - a fake SendGrid v3 Mail Send API for kairan's tests.

Python 3 stdlib only (http.server, ThreadingHTTPServer, HTTP/1.1 keep-alive).
Listens on 127.0.0.1, plain HTTP, or HTTPS with --cert/--key.  It checks
what SendGrid checks, from the official spec (specs/sendgrid/tsg_mail_v3.yaml,
PostMailSend) and the documented limits (PROVIDERS.md 5):

POST /v3/mail/send
  * Authorization: Bearer <--token>; else 401 {"errors": [...]}.
  * Content-Type: application/json; else 400.  Body <= --max-body (30 MB);
    else 413 "content too large".
  * Body: an object with only the spec's properties; "personalizations"
    (1..1000 objects: "to" required, 1..1000 MailTo; cc, bcc <= 1000;
    subject non-empty; headers / custom_args / substitutions objects of
    strings; send_at integer) and "from" (MailFrom) required; every address
    in the spec's `email` format: a dot-atom local part (so
    taro..yamada.@docomo.ne.jp fails the whole request, as the real service
    does) and a domain name; total recipients (to + cc + bcc over all
    personalizations) <= 1000; one address at most once per personalization;
    reply_to and reply_to_list not both; a subject (top level or in every
    personalization) and content (1.. {type, value} non-empty, text/plain
    first) unless template_id; headers must not set the protected ones
    (x-sg-id, x-sg-eid, received, dkim-signature, Content-Type,
    Content-Transfer-Encoding, To, From, Subject, Reply-To, CC, BCC);
    custom_args at most 10,000 bytes; categories <= 10, unique, <= 255
    characters; send_at at most 72 hours ahead.
    Errors: 400 {"errors": [{"message", "field", "help"}]}.
  * Success: 202, empty body, X-Message-Id.  Every answer carries
    X-RateLimit-Limit/-Remaining/-Reset (epoch seconds).
  * --rate N: requests per second; above: 429 with X-RateLimit-Reset.

Store (--store DIR):
  DIR/requests.jsonl  one line per accepted (202) request: the request body
      plus "message_id" and "ts".
  DIR/events.jsonl    one line per request: {"ev": "request", "status",
      "personalizations": n, "to": [addresses], "action", "reason", "ts"}

Fault injection (--control FILE, JSON, re-read when it changes; "times"
counters restart then):
  {"down": false|true, "rules": [{"action": A, "match": "substring of a
   recipient" (optional), "times": N, "prob": 1.0, "seconds": S,
   "reset_in": S (X-RateLimit-Reset = now + S, default 1),
   "retry_after": S}]}
  A: "400" "401" "403" "413" "429" ("429-rate", "429-quota" alike) "500"
     "502" "503" (not accepted, not stored), "500-accepted" (stored, then
     500), "202-cut" (stored, then 202 and its headers, and a TCP RST
     half-way through the body they announce), "stall", "reset" (TCP RST),
     "garbage" (not HTTP), "delay".
  Rules are checked after authentication and validation.

SIGTERM/SIGINT: stop, flush, (--stats) print counters to stderr, exit 0.
"""

import argparse
import json
import os
import random
import re
import secrets
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
PROTECTED = {"x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
             "content-transfer-encoding", "to", "from", "subject", "reply-to",
             "cc", "bcc"}
TOP_KEYS = {"personalizations", "from", "reply_to", "reply_to_list", "subject",
            "content", "attachments", "template_id", "headers", "categories",
            "custom_args", "send_at", "batch_id", "asm", "ip_pool_name",
            "mail_settings", "tracking_settings"}
PERS_KEYS = {"from", "to", "cc", "bcc", "subject", "headers", "substitutions",
             "dynamic_template_data", "custom_args", "send_at"}
ATEXT = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$")
LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def log(msg):
    sys.stderr.write("fake_sendgrid: %s\n" % msg)
    sys.stderr.flush()


def email_ok(s):
    """The `email` format: dot-atom local part @ a domain name."""
    if not isinstance(s, str) or len(s) > 254 or s.count("@") != 1:
        return False
    local, dom = s.split("@")
    if not 1 <= len(local) <= 64:
        return False
    if not all(ATEXT.match(a) for a in local.split(".")):
        return False          # also catches "a..b" and "a." (empty atoms)
    labels = dom.split(".")
    return len(labels) >= 2 and all(LABEL.match(x) for x in labels)


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
        self.data = {}
        if sig is None:
            return
        try:
            with open(self.path) as f:
                d = json.load(f)
            if isinstance(d, dict):
                self.data = d
        except (OSError, ValueError):
            self.data = {}

    def down(self):
        self.refresh()
        return bool(self.data.get("down"))

    def find(self, rcpts):
        self.refresh()
        for i, rule in enumerate(self.data.get("rules") or []):
            m = rule.get("match")
            if m and not any(m in x for x in rcpts):
                continue
            times = rule.get("times")
            if times is not None and self.counts.get(i, 0) >= times:
                continue
            if self.rng.random() >= float(rule.get("prob", 1.0)):
                continue
            self.counts[i] = self.counts.get(i, 0) + 1
            return rule
        return None


# ---------------------------------------------------------------- validation

class Errors(Exception):
    pass


def validate(body, now):
    """Returns the recipients (to + cc + bcc); raises Errors([(msg, field)])."""
    errs = []

    def err(msg, field):
        errs.append((msg, field))

    def mailbox(o, field, required=True):
        if not isinstance(o, dict):
            err("The %s must be an object with an email." % field, field)
            return None
        for k in o:
            if k not in ("email", "name"):
                err("Unknown property %s." % k, field + "." + k)
        if "name" in o and not isinstance(o["name"], str):
            err("The name must be a string.", field + ".name")
        if not email_ok(o.get("email")):
            err("Does not contain a valid address.", field + ".email")
            return None
        return o["email"]

    def string_map(o, field, protected=False):
        if not isinstance(o, dict):
            err("The %s must be an object." % field, field)
            return
        for k, v in o.items():
            if not isinstance(v, str):
                err("Values must be strings.", "%s.%s" % (field, k))
            if protected and k.lower() in PROTECTED:
                err("The %s header is reserved and cannot be set." % k,
                    "%s.%s" % (field, k))

    if not isinstance(body, dict):
        raise Errors([("The request body must be a JSON object.", None)])
    for k in body:
        if k not in TOP_KEYS:
            err("Unknown property %s." % k, k)
    ps = body.get("personalizations")
    rcpts = []
    if not isinstance(ps, list) or not ps:
        err("The personalizations field is required and must have at least "
            "one personalization.", "personalizations")
        ps = []
    elif len(ps) > 1000:
        err("The personalizations field must have at most 1000 items.",
            "personalizations")
    if "from" not in body:
        err("The from object must be provided for every email send.", "from")
    else:
        mailbox(body["from"], "from")
    if "reply_to" in body and "reply_to_list" in body:
        err("reply_to and reply_to_list cannot both be set.", "reply_to_list")
    if "reply_to" in body:
        mailbox(body["reply_to"], "reply_to")
    if "reply_to_list" in body:
        rl = body["reply_to_list"]
        if not isinstance(rl, list) or len(rl) > 1000:
            err("reply_to_list must be an array of at most 1000.", "reply_to_list")
        else:
            for i, o in enumerate(rl):
                mailbox(o, "reply_to_list.%d" % i)
    template = body.get("template_id")
    top_subject = body.get("subject")
    if top_subject is not None and (not isinstance(top_subject, str) or
                                    top_subject == ""):
        err("The subject must be a non-empty string.", "subject")
    for i, p in enumerate(ps):
        f = "personalizations.%d" % i
        if not isinstance(p, dict):
            err("A personalization must be an object.", f)
            continue
        for k in p:
            if k not in PERS_KEYS:
                err("Unknown property %s." % k, f + "." + k)
        seen = set()
        if not isinstance(p.get("to"), list) or not p["to"]:
            err("The to array is required for all personalization objects, and "
                "must have at least one email object with a valid email "
                "address.", f + ".to")
        for kind in ("to", "cc", "bcc"):
            lst = p.get(kind)
            if lst is None:
                continue
            if not isinstance(lst, list) or len(lst) > 1000:
                err("The %s array must hold at most 1000 items." % kind,
                    "%s.%s" % (f, kind))
                continue
            for j, o in enumerate(lst):
                a = mailbox(o, "%s.%s.%d" % (f, kind, j))
                if a is None:
                    continue
                if a.lower() in seen:
                    err("Each email address in the personalization block "
                        "should be unique between to, cc, and bcc.",
                        "%s.%s.%d.email" % (f, kind, j))
                seen.add(a.lower())
                rcpts.append(a)
        if "from" in p:
            mailbox(p["from"], f + ".from")
        if "subject" in p and (not isinstance(p["subject"], str) or
                               p["subject"] == ""):
            err("The subject must be a non-empty string.", f + ".subject")
        if top_subject is None and template is None and "subject" not in p:
            err("The subject is required. You can get around this requirement "
                "if you use a template with a subject defined or if every "
                "personalization has a subject defined.", "subject")
        if "headers" in p:
            string_map(p["headers"], f + ".headers", protected=True)
        for k in ("substitutions", "custom_args"):
            if k in p:
                string_map(p[k], "%s.%s" % (f, k))
        if "custom_args" in p and len(json.dumps(p["custom_args"]).encode()) > 10000:
            err("custom_args may not exceed 10,000 bytes.", f + ".custom_args")
        if "send_at" in p and (not isinstance(p["send_at"], int) or
                               p["send_at"] > now + 72 * 3600):
            err("send_at must be an integer at most 72 hours ahead.",
                f + ".send_at")
    if len(rcpts) > 1000:
        err("The total number of recipients must be no more than 1000.",
            "personalizations")
    content = body.get("content")
    if template is None:
        if not isinstance(content, list) or not content:
            err("Unless a valid template_id is provided, the content parameter "
                "is required. There must be at least one defined content block.",
                "content")
            content = []
    for i, c in enumerate(content or []):
        f = "content.%d" % i
        if not isinstance(c, dict):
            err("A content block must be an object.", f)
            continue
        if not isinstance(c.get("type"), str) or c["type"] == "":
            err("The content type cannot contain ';', or CRLF characters. "
                "The content type must also be at least one character in "
                "length.", f + ".type")
        if not isinstance(c.get("value"), str) or c["value"] == "":
            err("The content value must be a string at least one character in "
                "length.", f + ".value")
        if c.get("type") == "text/plain" and i != 0:
            err("If present, text/plain content must be first, followed by "
                "text/html.", f + ".type")
    if "headers" in body:
        string_map(body["headers"], "headers", protected=True)
    cats = body.get("categories")
    if cats is not None:
        if (not isinstance(cats, list) or len(cats) > 10 or
                len(set(map(str, cats))) != len(cats) or
                not all(isinstance(c, str) and len(c) <= 255 for c in cats)):
            err("categories: at most 10 unique strings of at most 255 "
                "characters.", "categories")
    if "send_at" in body and (not isinstance(body["send_at"], int) or
                              body["send_at"] > now + 72 * 3600):
        err("send_at must be an integer at most 72 hours ahead.", "send_at")
    if errs:
        raise Errors(errs)
    return rcpts


# ---------------------------------------------------------------- server

class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.ctl = Control(args.control)
        self.window = (0, 0)
        self.stats = {"requests": 0, "accepted": 0, "rejected": 0,
                      "personalizations": 0}
        self.stopping = threading.Event()
        self.req_f = self.ev_f = None
        if args.store:
            os.makedirs(args.store, exist_ok=True)
            self.req_f = open(os.path.join(args.store, "requests.jsonl"), "a")
            self.ev_f = open(os.path.join(args.store, "events.jsonl"), "a")

    def write(self, f, rec):
        if f is not None:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()

    def event(self, **kw):
        kw["ts"] = time.time()
        with self.lock:
            self.write(self.ev_f, kw)

    def take(self):
        """(allowed, remaining, reset epoch) for one more request now."""
        limit = self.args.rate
        now = int(time.time())
        with self.lock:
            sec, cnt = self.window
            if sec != now:
                sec, cnt = now, 0
            cnt += 1
            self.window = (sec, cnt)
        if not limit:
            return True, 600, now + 60
        return cnt <= limit, max(0, limit - cnt), now + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-sendgrid/1"

    def log_message(self, fmt, *args):
        if self.server.state.args.verbose:
            log(fmt % args)

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def answer(self, status, obj=None, headers=None):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def errors(self, status, errs, headers=None):
        self.answer(status, {"errors": [{"message": m, "field": f,
                                         "help": HELP if f else None}
                                        for m, f in errs]}, headers)

    def reset(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def stall(self, seconds):
        end = time.monotonic() + (seconds or self.server.state.args.stall_max)
        st = self.server.state
        while time.monotonic() < end and not st.stopping.is_set():
            try:
                r, _, _ = select.select([self.connection], [], [], 0.1)
            except (OSError, ValueError):
                break
            if r:
                break
        self.close_connection = True

    def read_body(self):
        n = self.headers.get("Content-Length")
        if n is None:
            return b""
        n = int(n)
        if n > self.server.state.args.max_body:
            self.errors(413, [("content too large", None)])
            self.close_connection = True
            return None
        return self.rfile.read(n)

    def do_GET(self):
        self.read_body()
        self.errors(404, [("not found", None)])

    def do_POST(self):
        st = self.server.state
        if st.ctl.down():
            self.reset()
            return
        raw = self.read_body()
        if raw is None:
            return
        if self.path.split("?")[0] != "/v3/mail/send":
            self.errors(404, [("not found", None)])
            return
        with st.lock:
            st.stats["requests"] += 1
        ok, remaining, reset = st.take()
        rl = {"X-RateLimit-Limit": str(st.args.rate or 600),
              "X-RateLimit-Remaining": str(remaining),
              "X-RateLimit-Reset": str(reset)}

        def reject(status, errs, rcpts=(), action=None, headers=None):
            with st.lock:
                st.stats["rejected"] += 1
            st.event(ev="request", status=status, personalizations=None,
                     to=list(rcpts), action=action, reason=errs[0][0])
            h = dict(rl)
            h.update(headers or {})
            self.errors(status, errs, h)

        auth = self.headers.get("Authorization") or ""
        if not (auth.startswith("Bearer ") and auth[7:] == st.args.token):
            return reject(401, [("The provided authorization grant is invalid, "
                                 "expired, or revoked", None)])
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype.lower() != "application/json":
            return reject(400, [("Content-Type should be application/json.",
                                 None)])
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return reject(400, [("Bad Request", None)])
        try:
            rcpts = validate(body, time.time())
        except Errors as e:
            return reject(400, e.args[0])
        if not ok:
            return reject(429, [("too many requests", None)], rcpts)
        rule = st.ctl.find(rcpts)
        action = str(rule.get("action")) if rule else None
        if action == "delay":
            time.sleep(float(rule.get("seconds", 1)))
            action = None
        if action is not None and action not in ("500-accepted", "202-cut"):
            st.event(ev="request", status=action, personalizations=len(
                body["personalizations"]), to=rcpts, action=action,
                reason="control rule")
            hdr = dict(rl)
            if rule.get("retry_after") is not None:
                hdr["Retry-After"] = str(rule["retry_after"])
            if action.startswith("429"):
                hdr["X-RateLimit-Remaining"] = "0"
                hdr["X-RateLimit-Reset"] = str(int(time.time()) +
                                               int(rule.get("reset_in", 1)))
                return self.errors(429, [("too many requests", None)], hdr)
            if action == "stall":
                return self.stall(rule.get("seconds"))
            if action == "reset":
                return self.reset()
            if action == "garbage":
                try:
                    self.wfile.write(b"\x00garbage, not HTTP\xff\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                return self.reset()
            msgs = {"400": "invalid request", "401": "authorization required",
                    "403": "access forbidden", "413": "content too large",
                    "500": "internal server error", "502": "bad gateway",
                    "503": "service unavailable"}
            if action in msgs:
                return self.errors(int(action), [(msgs[action], None)], hdr)
            log("unknown action %r ignored" % action)
        mid = secrets.token_urlsafe(16)[:22]
        rec = dict(body)
        rec["message_id"] = mid
        rec["ts"] = time.time()
        with st.lock:
            st.stats["accepted"] += 1
            st.stats["personalizations"] += len(body["personalizations"])
            st.write(st.req_f, rec)
        status = 500 if action == "500-accepted" else 202
        st.event(ev="request", status=status,
                 personalizations=len(body["personalizations"]), to=rcpts,
                 action=action, reason=None, message_id=mid)
        h = dict(rl)
        if status == 500:
            return self.errors(500, [("internal server error", None)], h)
        h["X-Message-Id"] = mid
        if action == "202-cut":
            # accepted, and the answer lost half-way: a proxy or a link
            # that dies after the status line
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "64")
            for k, v in h.items():
                self.send_header(k, v)
            self.end_headers()
            try:
                self.wfile.write(b'{"accepted":')
                self.wfile.flush()
            except OSError:
                pass
            time.sleep(0.2)
            return self.reset()
        self.answer(202, None, h)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ssl_ctx = None

    def finish_request(self, request, client_address):
        # TLS handshake in the connection's own thread, never in accept().
        if self.ssl_ctx is not None:
            try:
                request.settimeout(10)
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (OSError, ssl.SSLError):
                return
            try:
                super().finish_request(request, client_address)
            finally:
                try:
                    request.close()
                except OSError:
                    pass
            return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        if self.state.args.verbose:
            super().handle_error(request, client_address)


def parse_args(argv):
    ap = argparse.ArgumentParser(description="fake SendGrid v3 Mail Send")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--store", metavar="DIR")
    ap.add_argument("--control", metavar="FILE")
    ap.add_argument("--token", default="SG.fake-key", help="the API key accepted")
    ap.add_argument("--rate", type=int, default=0, help="requests per second")
    ap.add_argument("--max-body", type=int, default=30 * 1024 * 1024)
    ap.add_argument("--stall-max", type=float, default=600.0)
    ap.add_argument("--stats", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    state = State(args)
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = state
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.ssl_ctx = ctx
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    if args.port == 0:
        print(port, flush=True)
    log("listening on 127.0.0.1:%d tls=%s" % (port, "yes" if args.cert else "no"))
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True)
    t.start()
    while not done.wait(0.2):
        pass
    state.stopping.set()
    srv.shutdown()
    srv.server_close()
    for f in (state.req_f, state.ev_f):
        if f:
            f.close()
    if args.stats:
        log("stats " + json.dumps(state.stats, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
