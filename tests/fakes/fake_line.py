#!/usr/bin/python3
"""fake_line.py - a fake LINE Messaging API for kairan's integration tests.

Python 3 stdlib only (http.server, ThreadingHTTPServer, HTTP/1.1 keep-alive).
Listens on 127.0.0.1, plain HTTP, or HTTPS with --cert/--key.  It checks
what LINE checks, from the official spec (specs/line/messaging-api.yml) and
the retry-key documentation (PROVIDERS.md 1.4):

POST /v2/bot/message/push, POST /v2/bot/message/multicast
  * Authorization: Bearer <token>: a --token, or one issued by the token
    endpoint below and not expired; else 401.
  * Content-Type: application/json; else 415.  Body <= 2 MB; else 413.
  * X-Line-Retry-Key, if present, must be a UUID (hex 8-4-4-4-12); else 400.
  * Body (PushMessageRequest / MulticastRequest): an object with only the
    spec's properties; "to": push a string, multicast an array of 1..500;
    every id must match ^U[0-9a-f]{32}$ (kairan sends to users only);
    "messages": 1..5 Message objects; type "text" (TextMessage): "text" a
    non-empty string of at most 5,000 UTF-16 code units; notificationDisabled
    boolean; customAggregationUnits (multicast: at most 1, ^[a-zA-Z0-9_]{1,30}$).
    Errors: 400 {"message": "...", "details": [{"message", "property"}]}.
  * The same retry key again (after it was accepted) -> 409 with header
    X-Line-Accepted-Request-Id (the request id that was accepted) and, for
    push, the sentMessages of the first answer.  A key counts once.
  * Success: push 200 {"sentMessages": [{"id", "quoteToken"}...]}, multicast
    200 {}.  Every answer carries X-Line-Request-Id.
  * --quota N: monthly messages (one per recipient of each accepted request);
    past it: 429 {"message": "You have reached your monthly limit."}.
  * --push-rate / --multicast-rate N: requests per second (per endpoint,
    1-second window); above: 429 {"message": "The API rate limit has been
    exceeded. Try again later."} (LINE sends no Retry-After).

POST /v2/bot/message/reply (the Reply API)
  * Authorization and Content-Type as for push (401, 415).
  * Body (ReplyMessageRequest): only "replyToken" (a non-empty string),
    "messages" (1..5 text messages, text <= 5,000 UTF-16 code units) and
    "notificationDisabled"; else 400 with details.  LINE does not take
    X-Line-Retry-Key on a reply: present -> 400.
  * A reply token works once (LINE: "can be used only once"): the same
    token again -> 400 {"message": "Invalid reply token"}.
  * Success 200 {"sentMessages": [...]}; recorded in DIR/replies.jsonl:
    {"reply_token", "messages", "token": "static"|"issued", "request_id",
    "ts"}.

POST /oauth2/v2.1/token (channel access token v2.1)
  Form: grant_type=client_credentials, client_assertion_type=
  urn:ietf:params:oauth:client-assertion-type:jwt-bearer, client_assertion=
  a JWT: header alg RS256, typ JWT, kid (= --kid if given); payload iss =
  sub = --channel-id, aud "https://api.line.me/", exp in the future and at
  most 30 minutes ahead, token_exp 1..2592000; signature verified with
  --line-public-key (PEM, SubjectPublicKeyInfo or PKCS#1).  Answer
  {"access_token", "token_type": "Bearer", "expires_in": min(token_exp,
  --token-ttl), "key_id"}; errors 400 {"error", "error_description"}.
  The token is accepted until it expires.  A channel has at most
  --max-tokens (LINE: 30) valid v2.1 tokens: past it the issue is refused
  (400), as LINE does ("the API returns an error and no more can be
  issued").

POST /oauth2/v3/token (stateless channel access token)
  The same form and assertion (token_exp not needed); answer
  {"token_type": "Bearer", "access_token", "expires_in":
  min(900, --token-ttl)}; no cap on tokens.
  --token-expires-in N announces expires_in N instead (v2.1 and
  stateless), the token's real life unchanged: a broken endpoint.

Store (--store DIR):
  DIR/requests.jsonl  one line per accepted push/multicast request (a retry
      key counts once): {"endpoint": "push"|"multicast", "to": [ids],
      "messages": [...], "retry_key": str|null, "request_id", "token":
      "static"|"issued", "ts"}
  DIR/events.jsonl    one line per request, whatever its answer:
      {"ev": "request", "endpoint", "status", "retry_key", "to": [ids],
       "action": rule action|null, "reason": str|null, "request_id", "ts"}
      {"ev": "token", "status", "reason", "ts"}
  Lines are flushed when written.

Fault injection (--control FILE, JSON, re-read when it changes; the "times"
counters restart then):
  {"down": false|true,          true: every connection is reset
   "rules": [{"action": A, "endpoint": "push"|"multicast"|"token"|"message"
              (default "message" = push and multicast)|"*",
              "match": "substring of a 'to' id" (optional),
              "times": N (default unlimited), "prob": 1.0,
              "seconds": S (stall/delay), "retry_after": S (adds the header)}]}
  A: "400" "401" "403" "409" "413" "429-rate" "429-quota" "429-concurrent"
     "500" "503" (answered before the request is accepted: not stored),
     "500-accepted" (accepted and stored, then 500: the retry gets 409),
     "stall" (no answer until the client gives up), "stall-accepted",
     "reset" (TCP RST), "garbage" (bytes that are not HTTP), "delay" (wait S,
     then answer normally).
  Rules are checked after authentication and validation; the first rule
  that fits (and has times left) wins.

SIGTERM/SIGINT: stop, flush, (--stats) print counters to stderr, exit 0.
"""

import argparse
import base64
import hashlib
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
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER_ID = re.compile(r"^U[0-9a-f]{32}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
UNIT_RE = re.compile(r"^[a-zA-Z0-9_]{1,30}$")
MAX_BODY = 2 * 1024 * 1024
TEXT_MAX = 5000
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AUD = "https://api.line.me/"

MSG_RATE = "The API rate limit has been exceeded. Try again later."
MSG_QUOTA = "You have reached your monthly limit."
MSG_CONCURRENT = ("The number of concurrent requests has exceeded the limit. "
                  "Try again later.")
MSG_AUTH = ("Authentication failed. Confirm that the access token in the "
            "authorization header is valid.")


def log(msg):
    sys.stderr.write("fake_line: %s\n" % msg)
    sys.stderr.flush()


def utf16_len(s):
    return len(s.encode("utf-16-le")) // 2


# ---------------------------------------------------------------- RSA / JWT

def _der(buf, i):
    """(tag, content, next index) of the DER element at buf[i]."""
    tag = buf[i]
    ln = buf[i + 1]
    i += 2
    if ln & 0x80:
        nb = ln & 0x7F
        ln = int.from_bytes(buf[i:i + nb], "big")
        i += nb
    return tag, buf[i:i + ln], i + ln


def rsa_public_key(pem_text):
    """(n, e) from a PEM public key (SPKI "PUBLIC KEY" or "RSA PUBLIC KEY")."""
    b64 = "".join(ln.strip() for ln in pem_text.splitlines()
                  if ln.strip() and not ln.startswith("-----"))
    der = base64.b64decode(b64)
    _, body, _ = _der(der, 0)
    if "BEGIN RSA PUBLIC KEY" in pem_text:
        seq = body
    else:
        _, _alg, j = _der(body, 0)
        tag, bits, _ = _der(body, j)
        if tag != 0x03:
            raise ValueError("not a SubjectPublicKeyInfo")
        _, seq, _ = _der(bits[1:], 0)
    _, nb, j = _der(seq, 0)
    _, eb, _ = _der(seq, j)
    return int.from_bytes(nb, "big"), int.from_bytes(eb, "big")


SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def rs256_verify(key, signing_input, sig):
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 8.2.2)."""
    n, e = key
    k = (n.bit_length() + 7) // 8
    if len(sig) != k:
        return False
    m = pow(int.from_bytes(sig, "big"), e, n)
    em = m.to_bytes(k, "big")
    t = SHA256_PREFIX + hashlib.sha256(signing_input).digest()
    want = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return secrets.compare_digest(em, want)


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


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

    def find(self, endpoint, ids):
        """The first rule that fits (its times are counted), or None."""
        self.refresh()
        for i, rule in enumerate(self.data.get("rules") or []):
            ep = rule.get("endpoint", "message")
            if ep == "message":
                if endpoint not in ("push", "multicast"):
                    continue
            elif ep != "*" and ep != endpoint:
                continue
            m = rule.get("match")
            if m and not any(m in x for x in ids):
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

class Invalid(Exception):
    def __init__(self, details, message=None):
        super().__init__(message or "invalid")
        self.details = details
        self.message = message


def validate_messages(msgs, details):
    if not isinstance(msgs, list):
        details.append(("Must be an array", "messages"))
        return
    if not 1 <= len(msgs) <= 5:
        details.append(("Size must be between 1 and 5", "messages"))
    for i, m in enumerate(msgs):
        p = "messages[%d]" % i
        if not isinstance(m, dict):
            details.append(("Must be an object", p))
            continue
        t = m.get("type")
        if t != "text":
            details.append(("Must be one of the following values: [text] "
                            "(the fake supports text only)", p + ".type"))
            continue
        for k in m:
            if k not in ("type", "text", "emojis", "quoteToken", "quickReply",
                         "sender"):
                details.append(("Unknown property", p + "." + k))
        text = m.get("text")
        if not isinstance(text, str):
            details.append(("Must not be null", p + ".text"))
        elif text == "":
            details.append(("Must not be empty", p + ".text"))
        elif utf16_len(text) > TEXT_MAX:
            details.append(("Length must be between 0 and %d" % TEXT_MAX,
                            p + ".text"))


def validate(endpoint, body):
    """Returns the list of 'to' ids; raises Invalid."""
    details = []
    if not isinstance(body, dict):
        raise Invalid([], "The request body must be a JSON object")
    allowed = ("to", "messages", "notificationDisabled", "customAggregationUnits")
    for k in body:
        if k not in allowed:
            details.append(("Unknown property", k))
    if "to" not in body:
        details.append(("Must not be null", "to"))
    if "messages" not in body:
        details.append(("Must not be null", "messages"))
    to = body.get("to")
    ids = []
    if endpoint == "push":
        if "to" in body and not isinstance(to, str):
            details.append(("Must be a string", "to"))
        elif isinstance(to, str):
            ids = [to]
            if not USER_ID.match(to):
                details.append(("Invalid user id", "to"))
    else:
        if "to" in body and not isinstance(to, list):
            details.append(("Must be an array", "to"))
        elif isinstance(to, list):
            if not 1 <= len(to) <= 500:
                details.append(("Size must be between 1 and 500", "to"))
            for i, x in enumerate(to):
                if not isinstance(x, str) or not USER_ID.match(x):
                    details.append(("Invalid user id", "to[%d]" % i))
                else:
                    ids.append(x)
    if "messages" in body:
        validate_messages(body["messages"], details)
    nd = body.get("notificationDisabled")
    if nd is not None and not isinstance(nd, bool):
        details.append(("Must be a boolean", "notificationDisabled"))
    units = body.get("customAggregationUnits")
    if units is not None:
        if (not isinstance(units, list) or
                (endpoint == "multicast" and len(units) > 1) or
                not all(isinstance(u, str) and UNIT_RE.match(u) for u in units)):
            details.append(("Invalid aggregation unit", "customAggregationUnits"))
    if details:
        raise Invalid(details)
    return ids


# ---------------------------------------------------------------- server

class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.ctl = Control(args.control)
        self.keys = {}            # retry key -> (request id, sentMessages)
        self.tokens = {}          # issued token -> expiry (monotonic)
        self.stateless = set()    # those of them issued by /oauth2/v3/token
        self.static = set(args.token or [])
        self.used = 0             # messages this "month"
        self.windows = {}         # endpoint -> (second, count)
        self.stats = {"requests": 0, "accepted": 0, "tokens": 0,
                      "conflicts": 0, "rejected": 0}
        self.stopping = threading.Event()
        self.pubkey = None
        if args.line_public_key:
            with open(args.line_public_key) as f:
                self.pubkey = rsa_public_key(f.read())
        self.req_f = self.ev_f = self.rep_f = None
        self.reply_tokens = set()  # reply tokens used
        if args.store:
            os.makedirs(args.store, exist_ok=True)
            self.req_f = open(os.path.join(args.store, "requests.jsonl"), "a")
            self.ev_f = open(os.path.join(args.store, "events.jsonl"), "a")
            self.rep_f = open(os.path.join(args.store, "replies.jsonl"), "a")

    def write(self, f, rec):
        if f is not None:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()

    def event(self, **kw):
        kw["ts"] = time.time()
        with self.lock:
            self.write(self.ev_f, kw)

    def rate_ok(self, endpoint):
        limit = (self.args.push_rate if endpoint == "push"
                 else self.args.multicast_rate)
        if not limit:
            return True
        now = int(time.monotonic())
        sec, cnt = self.windows.get(endpoint, (now, 0))
        if sec != now:
            sec, cnt = now, 0
        cnt += 1
        self.windows[endpoint] = (sec, cnt)
        return cnt <= limit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-line/1"

    def log_message(self, fmt, *args):
        if self.server.state.args.verbose:
            log(fmt % args)

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    # -- answers

    def answer(self, status, obj=None, headers=None, raw=None):
        body = raw if raw is not None else (
            b"" if obj is None else json.dumps(obj, ensure_ascii=False).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def reset(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def garbage(self):
        try:
            self.wfile.write(b"\x00\x07 this is not HTTP at all \xff\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.reset()

    def stall(self, seconds):
        """Hold the request until the client gives up (or seconds pass)."""
        end = time.monotonic() + (seconds or self.server.state.args.stall_max)
        st = self.server.state
        while time.monotonic() < end and not st.stopping.is_set():
            try:
                r, _, _ = select.select([self.connection], [], [], 0.1)
            except (OSError, ValueError):
                break
            if r:   # the client sends nothing more: it closed
                break
        self.close_connection = True

    # -- dispatch

    def do_GET(self):
        self.read_body()
        self.answer(404, {"message": "Not found"})

    def do_POST(self):
        st = self.server.state
        if st.ctl.down():
            self.reset()
            return
        path = urllib.parse.urlsplit(self.path).path
        body = self.read_body()
        if body is None:
            return
        if path == "/oauth2/v2.1/token":
            self.token(body)
        elif path == "/oauth2/v3/token":
            self.token(body, stateless=True)
        elif path in ("/v2/bot/message/push", "/v2/bot/message/multicast"):
            self.message(path.rsplit("/", 1)[1], body)
        elif path == "/v2/bot/message/reply":
            self.reply(body)
        else:
            self.answer(404, {"message": "Not found"})

    def read_body(self):
        n = self.headers.get("Content-Length")
        if n is None:
            if self.headers.get("Transfer-Encoding"):
                self.answer(411, {"message": "Length Required"})
                self.close_connection = True
                return None
            return b""
        n = int(n)
        if n > MAX_BODY:
            self.answer(413, {"message": "Request Entity Too Large"})
            self.close_connection = True
            return None
        return self.rfile.read(n)

    def rid(self):
        return str(uuid.uuid4())

    # -- token endpoint

    def token(self, body, stateless=False):
        st = self.server.state
        rule = st.ctl.find("token", [])

        def refuse(status, err, desc):
            st.event(ev="token", status=status, reason=desc)
            self.answer(status, {"error": err, "error_description": desc})

        if rule is not None and self.fault(rule, "token", [], None):
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/x-www-form-urlencoded":
            return refuse(400, "invalid_request",
                          "Content-Type must be application/x-www-form-urlencoded")
        try:
            form = urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return refuse(400, "invalid_request", "malformed form body")
        form = {k: v[0] for k, v in form.items()}
        if form.get("grant_type") != "client_credentials":
            return refuse(400, "invalid_request", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return refuse(400, "invalid_request", "client_assertion_type is invalid")
        jwt = form.get("client_assertion", "")
        parts = jwt.split(".")
        if len(parts) != 3:
            return refuse(400, "invalid_request", "client_assertion is not a JWT")
        try:
            hdr = json.loads(b64url_decode(parts[0]))
            pl = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except (ValueError, UnicodeDecodeError):
            return refuse(400, "invalid_request", "client_assertion is not a JWT")
        now = time.time()
        if hdr.get("alg") != "RS256" or hdr.get("typ") != "JWT":
            return refuse(400, "invalid_client", "alg must be RS256 and typ JWT")
        if st.args.kid and hdr.get("kid") != st.args.kid:
            return refuse(400, "invalid_client", "unknown kid")
        if st.pubkey is None or not rs256_verify(
                st.pubkey, (parts[0] + "." + parts[1]).encode(), sig):
            return refuse(400, "invalid_client", "invalid signature")
        cid = st.args.channel_id
        if pl.get("iss") != cid or pl.get("sub") != cid:
            return refuse(400, "invalid_client", "iss and sub must be the channel id")
        if pl.get("aud") != AUD:
            return refuse(400, "invalid_client", "aud must be " + AUD)
        exp = pl.get("exp")
        if not isinstance(exp, int) or exp <= now or exp > now + 30 * 60 + 60:
            return refuse(400, "invalid_client",
                          "exp must be in the future and at most 30 minutes ahead")
        if stateless:
            ttl = min(900, st.args.token_ttl)
        else:
            texp = pl.get("token_exp")
            if not isinstance(texp, int) or not 1 <= texp <= 2592000:
                return refuse(400, "invalid_client", "token_exp must be 1..2592000")
            ttl = min(texp, st.args.token_ttl)
            with st.lock:
                mono = time.monotonic()
                valid = sum(1 for t, e in st.tokens.items()
                            if e > mono and t not in st.stateless)
            if valid >= st.args.max_tokens:
                return refuse(400, "invalid_request",
                              "the number of valid channel access tokens "
                              "v2.1 has reached the limit (%d)"
                              % st.args.max_tokens)
        tok = "fake-issued-" + secrets.token_urlsafe(24)
        with st.lock:
            st.tokens[tok] = time.monotonic() + ttl
            if stateless:
                st.stateless.add(tok)
            st.stats["tokens"] += 1
        said = ttl if st.args.token_expires_in is None else st.args.token_expires_in
        st.event(ev="token", status=200, reason=None, expires_in=said,
                 kind="stateless" if stateless else "v2.1")
        if stateless:
            self.answer(200, {"token_type": "Bearer", "access_token": tok,
                              "expires_in": said})
        else:
            self.answer(200, {"access_token": tok, "token_type": "Bearer",
                              "expires_in": said,
                              "key_id": secrets.token_hex(8)})

    # -- push / multicast

    def fault(self, rule, endpoint, ids, rkey):
        """Apply a pre-acceptance fault; returns True if it answered."""
        st = self.server.state
        a = str(rule.get("action", ""))
        hdr = {"X-Line-Request-Id": self.rid()}
        if rule.get("retry_after") is not None:
            hdr["Retry-After"] = str(rule["retry_after"])
        if a == "delay":
            time.sleep(float(rule.get("seconds", 1)))
            return False
        if a in ("500-accepted", "stall-accepted"):
            return False           # handled after acceptance
        if endpoint != "token":
            st.event(ev="request", endpoint=endpoint, status=a, retry_key=rkey,
                     to=ids, action=a, reason="control rule",
                     request_id=hdr["X-Line-Request-Id"])
        else:
            st.event(ev="token", status=a, reason="control rule")
        if endpoint == "token" and a[:1] == "4":
            # The token endpoint answers in OAuth's format.
            self.answer(int(a[:3]), {"error": "invalid_client",
                                     "error_description": "refused by a "
                                                          "control rule"})
            return True
        if a == "stall":
            self.stall(rule.get("seconds"))
        elif a == "reset":
            self.reset()
        elif a == "garbage":
            self.garbage()
        elif a == "400":
            self.answer(400, {"message": "The request body has 1 error(s)",
                              "details": [{"message": "Failed to send messages",
                                           "property": "to"}]}, hdr)
        elif a == "401":
            self.answer(401, {"message": MSG_AUTH}, hdr)
        elif a == "403":
            self.answer(403, {"message": "Access to this API is not available "
                                         "for your account"}, hdr)
        elif a == "409":
            hdr["X-Line-Accepted-Request-Id"] = self.rid()
            self.answer(409, {"message": "The retry key is already accepted"}, hdr)
        elif a == "413":
            self.answer(413, {"message": "Request Entity Too Large"}, hdr)
        elif a == "429-rate":
            self.answer(429, {"message": MSG_RATE}, hdr)
        elif a == "429-quota":
            self.answer(429, {"message": MSG_QUOTA}, hdr)
        elif a == "429-concurrent":
            self.answer(429, {"message": MSG_CONCURRENT}, hdr)
        elif a in ("500", "502", "503"):
            self.answer(int(a), {"message": "Internal Server Error"}, hdr)
        else:
            log("unknown action %r ignored" % a)
            return False
        return True

    def message(self, endpoint, raw):
        st = self.server.state
        rid = self.rid()
        hdr = {"X-Line-Request-Id": rid}
        rkey = self.headers.get("X-Line-Retry-Key")
        with st.lock:
            st.stats["requests"] += 1

        def reject(status, obj, ids=(), reason=None, extra=None):
            with st.lock:
                st.stats["rejected"] += 1
            st.event(ev="request", endpoint=endpoint, status=status,
                     retry_key=rkey, to=list(ids), action=None,
                     reason=reason or obj.get("message"), request_id=rid)
            h = dict(hdr)
            h.update(extra or {})
            self.answer(status, obj, h)

        auth = self.headers.get("Authorization") or ""
        tok = auth[7:] if auth.startswith("Bearer ") else None
        kind = None
        with st.lock:
            if tok in st.static:
                kind = "static"
            elif tok in st.tokens and st.tokens[tok] > time.monotonic():
                kind = "issued"
        if kind is None:
            return reject(401, {"message": MSG_AUTH})
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype.lower() != "application/json":
            return reject(415, {"message": "Unsupported Media Type"})
        if rkey is not None and not UUID_RE.match(rkey):
            return reject(400, {"message": "The value of the X-Line-Retry-Key "
                                           "header is invalid"})
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return reject(400, {"message": "The request body has 1 error(s)",
                                "details": [{"message": "Invalid JSON",
                                             "property": ""}]})
        try:
            ids = validate(endpoint, body)
        except Invalid as e:
            obj = {"message": e.message or
                   "The request body has %d error(s)" % len(e.details)}
            if e.details:
                obj["details"] = [{"message": m, "property": p}
                                  for m, p in e.details]
            return reject(400, obj)
        rule = st.ctl.find(endpoint, ids)
        if rule is not None and self.fault(rule, endpoint, ids, rkey):
            return
        with st.lock:
            if rkey is not None and rkey in st.keys:
                first_rid, sent = st.keys[rkey]
                st.stats["conflicts"] += 1
                conflict = True
            else:
                conflict = False
                if not st.rate_ok(endpoint):
                    limited = "rate"
                elif (st.args.quota is not None and
                      st.used + len(ids) > st.args.quota):
                    limited = "quota"
                else:
                    limited = None
                    st.used += len(ids)
                    sent = [{"id": str(random.randrange(10 ** 17, 10 ** 18)),
                             "quoteToken": secrets.token_urlsafe(16)}
                            for _ in body["messages"]]
                    if rkey is not None:
                        st.keys[rkey] = (rid, sent)
                    st.stats["accepted"] += 1
                    st.write(st.req_f, {"endpoint": endpoint, "to": ids,
                                        "messages": body["messages"],
                                        "retry_key": rkey, "request_id": rid,
                                        "token": kind, "ts": time.time()})
        if conflict:
            obj = {"message": "The retry key is already accepted"}
            if endpoint == "push":
                obj["sentMessages"] = sent
            return reject(409, obj, ids, extra={"X-Line-Accepted-Request-Id":
                                                first_rid})
        if limited == "rate":
            return reject(429, {"message": MSG_RATE}, ids)
        if limited == "quota":
            return reject(429, {"message": MSG_QUOTA}, ids)
        action = rule.get("action") if rule else None
        st.event(ev="request", endpoint=endpoint,
                 status=500 if action == "500-accepted" else
                 ("stall" if action == "stall-accepted" else 200),
                 retry_key=rkey, to=ids, action=action, reason=None,
                 request_id=rid)
        if action == "500-accepted":
            return self.answer(500, {"message": "Internal Server Error"}, hdr)
        if action == "stall-accepted":
            return self.stall(rule.get("seconds"))
        self.answer(200, {"sentMessages": sent} if endpoint == "push" else {},
                    hdr)


    def reply(self, raw):
        st = self.server.state
        rid = self.rid()
        hdr = {"X-Line-Request-Id": rid}

        def reject(status, obj):
            with st.lock:
                st.stats["rejected"] += 1
            st.event(ev="reply", status=status, reason=obj.get("message"),
                     request_id=rid)
            self.answer(status, obj, hdr)

        auth = self.headers.get("Authorization") or ""
        tok = auth[7:] if auth.startswith("Bearer ") else None
        kind = None
        with st.lock:
            st.stats["requests"] += 1
            if tok in st.static:
                kind = "static"
            elif tok in st.tokens and st.tokens[tok] > time.monotonic():
                kind = "issued"
        if kind is None:
            return reject(401, {"message": MSG_AUTH})
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype.lower() != "application/json":
            return reject(415, {"message": "Unsupported Media Type"})
        if self.headers.get("X-Line-Retry-Key") is not None:
            return reject(400, {"message": "The reply API does not take "
                                           "X-Line-Retry-Key"})
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return reject(400, {"message": "The request body has 1 error(s)",
                                "details": [{"message": "Invalid JSON",
                                             "property": ""}]})
        details = []
        if not isinstance(body, dict):
            return reject(400, {"message": "The request body must be a "
                                           "JSON object"})
        for k in body:
            if k not in ("replyToken", "messages", "notificationDisabled"):
                details.append(("Unknown property", k))
        rt = body.get("replyToken")
        if not isinstance(rt, str) or rt == "":
            details.append(("Must not be empty", "replyToken"))
        if "messages" not in body:
            details.append(("Must not be null", "messages"))
        else:
            validate_messages(body["messages"], details)
        nd = body.get("notificationDisabled")
        if nd is not None and not isinstance(nd, bool):
            details.append(("Must be a boolean", "notificationDisabled"))
        if details:
            return reject(400, {"message": "The request body has %d error(s)"
                                % len(details),
                                "details": [{"message": m, "property": p}
                                            for m, p in details]})
        with st.lock:
            if rt in st.reply_tokens:
                used = True
            else:
                used = False
                st.reply_tokens.add(rt)
                st.stats["accepted"] += 1
                st.write(st.rep_f, {"reply_token": rt,
                                    "messages": body["messages"],
                                    "token": kind, "request_id": rid,
                                    "ts": time.time()})
        if used:
            return reject(400, {"message": "Invalid reply token"})
        st.event(ev="reply", status=200, reason=None, request_id=rid)
        sent = [{"id": str(random.randrange(10 ** 17, 10 ** 18)),
                 "quoteToken": secrets.token_urlsafe(16)}
                for _ in body["messages"]]
        self.answer(200, {"sentMessages": sent}, hdr)


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
    ap = argparse.ArgumentParser(description="fake LINE Messaging API")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--store", metavar="DIR")
    ap.add_argument("--control", metavar="FILE")
    ap.add_argument("--token", action="append",
                    help="a long-lived channel access token accepted (repeatable)")
    ap.add_argument("--channel-id", default="1234567890")
    ap.add_argument("--kid", help="the key id assertions must carry")
    ap.add_argument("--line-public-key", metavar="PEM",
                    help="public key that verifies client assertions")
    ap.add_argument("--token-ttl", type=int, default=2592000,
                    help="expires_in of issued tokens (seconds)")
    ap.add_argument("--token-expires-in", type=int, default=None,
                    help="expires_in announced, whatever the token's real "
                         "life (a broken token endpoint)")
    ap.add_argument("--max-tokens", type=int, default=30,
                    help="valid v2.1 tokens a channel may have (LINE: 30)")
    ap.add_argument("--quota", type=int, default=None,
                    help="monthly messages before 429 'monthly limit'")
    ap.add_argument("--push-rate", type=int, default=0)
    ap.add_argument("--multicast-rate", type=int, default=0)
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
