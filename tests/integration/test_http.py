#!/usr/bin/python3
"""test_http.py - kairand's HTTP API, roles, login log and /metrics (issue 5).

One redis-server, one kairand (outbox adapter, [http] on a free port,
max_body 64 KiB), tokens made with kairanctl token create.

  [1] every endpoint x every role: allowed (2xx) and refused (403 for a
      too-weak role or another tenant's broadcast), and for every endpoint
      that needs a token: none, malformed, too weak, wrong secret, expired
      (--expires 1s), revoked -> 401; each refusal and each success is a
      login-log line (token id, role, source, method, path, result) and no
      secret appears in any audit log or in kairand's log.
  [2] submit: 202 {"id": kairan's name, "key"}; the same id (key) again
      -> 200 duplicate (one broadcast, one set of messages); another
      tenant reusing the id -> its own broadcast; the broadcast's sender is the token's name, and stays after
      the token is revoked; GET shows counts, first/last delivery in JST.
  [3] errors: malformed JSON (400, field "json"), a bad field (400 with
      that field), sender rules (403 with the field), wrong content type
      (415), unknown path (404), wrong method (405 + Allow), cancel (200,
      then 409), oversized body refused (413) before being read:
      Content-Length of 2 x max_body with only a little data sent, and a
      chunked body that grows past it; pipelined requests answered in
      order on one connection; keep-alive.
  [4] /metrics: kairan_deliveries_total{channel="email",provider=
      "outbox",result="delivered"} and the latency count grow by exactly
      the recipients of a known broadcast; gauges match Redis; GET
      /v1/queues equals kairanctl status --json.
  [5] kairanctl token list/revoke: no hash or salt shown; revoke twice
      -> 1; unknown -> 3; operation log lines.
  [6] rate limit (http.rate = 3): 429 with Retry-After, per source
      address (X-Real-IP from loopback; an IPv6 /64 as one), /healthz not
      limited; with
      http.metrics_open /metrics needs no token.
  [7] /healthz without a token: 200 ok; Redis stopped -> 503
      {"redis": false}; back -> 200.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_http.py
"""

import http.client
import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("http")
AUDIT = os.path.join(out, "audit")
MAX_BODY = 65536


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


def request(port, method, path, token=None, body=None, ctype="application/json",
            headers=None, conn=None):
    """One request (on conn, kept open, or on a new connection)."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body, ensure_ascii=False)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if ctype:
            h["Content-Type"] = ctype
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    resp = Resp(r.status, {k.lower(): v for k, v in r.getheaders()},
                data.decode("utf-8", "replace"))
    if conn is None:
        c.close()
    return resp


def raw_exchange(port, data, wait=5.0):
    """Send bytes, read until the server closes (or wait s); returns bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    s.sendall(data)
    got = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except socket.timeout:
        pass
    s.close()
    return got


def bcast(tenant="sakura", n=2, **kw):
    b = {"tenant": tenant, "category": "notice", "subject": "お知らせ",
         "body": "本文です。", "channels": ["email"],
         "recipients": [{"id": "r-%d" % i, "email": "guardian%d@example.jp" % i}
                        for i in range(n)]}
    b.update(kw)
    return b


def metric(text, name, **labels):
    """The value of one series in Prometheus text, or None."""
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    pat = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)$"
    for line in text.splitlines():
        m = re.match(pat, line)
        if m:
            return float(m.group(1))
    return None


def login_lines():
    try:
        with open(os.path.join(AUDIT, "login.jsonl")) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def audit_text():
    t = ""
    for name in ("login.jsonl", "operations.jsonl"):
        try:
            with open(os.path.join(AUDIT, name)) as f:
                t += f.read()
        except FileNotFoundError:
            pass
    return t


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "max_body": str(MAX_BODY)},
                     "retention": {"audit_dir": AUDIT}})

    def token(role, name, tenant=None, groups=None, expires=None):
        args = ["token", "create", "--role", role, "--name", name]
        if tenant:
            args += ["--tenant", tenant]
        if groups:
            args += ["--groups", groups]
        if expires:
            args += ["--expires", expires]
        cp = k.ctl(*args)
        if cp.returncode != 0:
            raise AssertionError("token create failed: %s" % cp.stderr)
        lines = cp.stdout.splitlines()
        assert len(lines) == 1, cp.stdout
        return lines[0]

    T = {}
    with tap.check("kairanctl token create prints one token of the form kn_<id>_<43>"):
        T["admin"] = token("admin", "本部 管理者")
        T["limited"] = token("limited_admin", "Tanaka (sakura office)", tenant="sakura")
        T["limited_other"] = token("limited_admin", "Mori (momo office)", tenant="momo")
        T["sender"] = token("sender", "Sato (2-A)", tenant="sakura", groups="2-A,2-B")
        T["sender2"] = token("sender", "Ito (2-A)", tenant="sakura", groups="2-A")
        T["operator"] = token("operator", "NOC")
        T["expiring"] = token("operator", "short-lived", expires="1s")
        T["to_revoke"] = token("admin", "Suzuki (leaving)")
        # an admin bound to a school (what a school's own staff API needs)
        T["school_admin"] = token("admin", "momo admin", tenant="momo")
        for v in T.values():
            assert re.fullmatch(r"kn_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", v), v
        assert len(set(T.values())) == len(T)

    def tid(t):
        return t.split("_")[1]

    with tap.check("token create refuses bad input with exit 2"):
        for args in (["--role", "root", "--name", "x"],
                     ["--role", "sender", "--tenant", "sakura", "--name", "x"],
                     ["--role", "admin", "--name", "x", "--groups", "a"],
                     ["--role", "limited_admin", "--name", "x"],
                     ["--role", "admin", "--name", "x", "--expires", "soon"],
                     ["--role", "admin"]):
            cp = k.ctl("token", "create", *args)
            assert cp.returncode == 2 and cp.stdout == "", (args, cp.returncode, cp.stdout)
            assert "kairanctl:" in cp.stderr

    d = k.start()
    d.wait_output('"listening"', 15)
    U = port

    # A broadcast of sakura by the admin, one by the sender, for reads.
    with tap.check("admin submits (202 {id}, Location) and it is delivered"):
        r = request(U, "POST", "/v1/broadcasts", T["admin"], bcast(id="bc-admin-1"))
        assert r.status == 202 and r.json["key"] == "bc-admin-1", r
        BC_ADMIN = r.json["id"]  # kairan's name; the id is the key
        assert re.fullmatch(r"b-\d{8}-[0-9a-f]{12}", BC_ADMIN), r
        assert r.header("location") == "/v1/broadcasts/" + BC_ADMIN
        k.wait_done(BC_ADMIN, 20)

    with tap.check("sender submits to its group (tenant forced to its own)"):
        b = bcast(n=0, audience={"groups": ["2-A"]})
        del b["recipients"]
        del b["tenant"]
        r = request(U, "POST", "/v1/broadcasts", T["sender"], b)
        assert r.status == 202, r
        SENDER_BC = r.json["id"]
        h = k.bc(SENDER_BC)
        assert h["tenant"] == "sakura" and h["sender"] == "Sato (2-A)", h

    # ---------------------------------------------------------------- [1]
    ENDPOINTS = {
        # name: (method, path, body, {role: expected status})
        "healthz": ("GET", "/healthz", None, {}),
        "metrics": ("GET", "/metrics", None,
                    {"admin": 200, "limited": 403, "sender": 403, "operator": 200}),
        "queues": ("GET", "/v1/queues", None,
                   {"admin": 200, "limited": 200, "sender": 403, "operator": 200}),
        # every school's depths together: service-wide accounts only
        "history": ("GET", "/v1/queues/history", None,
                    {"admin": 200, "limited": 403, "sender": 403, "operator": 200}),
        "list": ("GET", "/v1/broadcasts?active=1", None,
                 {"admin": 200, "limited": 200, "sender": 200, "operator": 200}),
        "submit": ("POST", "/v1/broadcasts", "SUBMIT",
                   {"admin": 202, "limited": 202, "sender": 202, "operator": 403,
                    "limited_other": 403}),
        # A broadcast the token may not see is 404, as one that does not
        # exist; a role the route refuses is 403.
        "get": ("GET", "/v1/broadcasts/" + BC_ADMIN, None,
                {"admin": 200, "limited": 200, "sender": 404, "operator": 403,
                 "limited_other": 404}),
        "get_own": ("GET", "/v1/broadcasts/" + SENDER_BC, None,
                    {"sender": 200, "sender2": 404, "limited": 200, "admin": 200}),
        "cancel": ("POST", "/v1/broadcasts/%s/cancel" % BC_ADMIN, None,
                   {"admin": 409, "limited": 409, "sender": 404, "operator": 403,
                    "limited_other": 404}),
    }

    def body_for(role):
        if role in ("sender", "sender2"):
            b = bcast(n=0, audience={"groups": ["2-A"]})
            del b["recipients"]
            return b
        return bcast(n=1)

    n_before = len(login_lines())
    expected_lines = 0
    with tap.check("every endpoint x every role: allowed and refused as the roles say"):
        bad = []
        for name, (method, path, body, want) in ENDPOINTS.items():
            for role, status in want.items():
                b = body_for(role) if body == "SUBMIT" else body
                r = request(U, method, path, T[role], b)
                expected_lines += 1
                if r.status != status:
                    bad.append((name, role, r.status, status, r.body[:200]))
                elif status >= 400:
                    if not (isinstance(r.json, dict) and r.json.get("error")):
                        bad.append((name, role, "no JSON error", r.body[:200]))
        assert not bad, bad

    with tap.check("GET /healthz needs no token: 200 {status ok, redis true, breakers}"):
        r = request(U, "GET", "/healthz")
        assert r.status == 200, r
        assert r.json["status"] == "ok" and r.json["redis"] is True, r.json
        assert r.json["breakers"] == {"smtp": "closed"}, r.json
        assert set(r.json) == {"status", "redis", "breakers"}, r.json

    with tap.check("expired token (--expires 1s) is refused once it has expired"):
        def expired():
            r = request(U, "GET", "/v1/queues", T["expiring"])
            return r if r.status == 401 else None
        r = wait_for(expired, 5, 0.2, what="the 1 s token to expire")
        assert "expired" in r.json["error"], r.json

    with tap.check("a revoked token is refused at once; its broadcasts keep its name"):
        r = request(U, "POST", "/v1/broadcasts", T["to_revoke"], bcast(id="bc-by-revoked", n=1))
        assert r.status == 202, r
        BY_REVOKED = r.json["id"]
        r = request(U, "GET", "/v1/queues", T["to_revoke"])
        assert r.status == 200, r
        cp = k.ctl("token", "revoke", tid(T["to_revoke"]))
        assert cp.returncode == 0, cp.stderr
        r = request(U, "GET", "/v1/queues", T["to_revoke"])
        assert r.status == 401 and "revoked" in r.json["error"], r
        r = request(U, "GET", "/v1/broadcasts/" + BY_REVOKED, T["admin"])
        assert r.status == 200 and r.json["sender"] == "Suzuki (leaving)", r

    bad_tokens = {
        "none": None,
        "malformed": "not-a-kairan-token",
        "too_weak": "kn_%s_%s" % (tid(T["admin"]), "A" * 20),
        "wrong_secret": "kn_%s_%s" % (tid(T["admin"]), "B" * 43),
        "unknown": "kn_%s_%s" % ("0" * 16, "C" * 43),
        "expired": T["expiring"],
        "revoked": T["to_revoke"],
    }
    n_mid = len(login_lines())
    with tap.check("every endpoint that needs a token: none, malformed, too weak, "
                   "wrong secret, unknown, expired, revoked -> 401 + WWW-Authenticate"):
        bad = []
        count = 0
        for name, (method, path, body, want) in ENDPOINTS.items():
            if not want:
                continue
            for what, tok in bad_tokens.items():
                b = bcast(n=1) if body == "SUBMIT" else body
                h = {} if tok is None else {"Authorization": "Bearer " + tok}
                r = request(U, method, path, None, b, headers=h)
                count += 1
                if r.status != 401 or not r.header("www-authenticate") \
                        or not (r.json or {}).get("error"):
                    bad.append((name, what, r.status, r.body[:150]))
        # Basic auth, two Authorization headers: also refused.
        r = request(U, "GET", "/v1/queues", headers={"Authorization": "Basic YTpi"})
        if r.status != 401:
            bad.append(("basic", r.status))
        assert not bad, bad
    refused_count = count + 1

    with tap.check("login log: one line per authenticated or refused request, "
                   "with id, role, source, method, path, result"):
        lines = login_lines()
        matrix = lines[n_before:n_before + expected_lines]
        assert len(matrix) == expected_lines, (len(matrix), expected_lines)
        for l in lines:
            assert set(l) >= {"time", "token", "role", "source", "method", "path",
                              "result", "status"}, l
            assert l["time"].endswith("+09:00"), l
            assert l["source"] == "127.0.0.1", l
        results = [l["result"] for l in lines[n_mid:]]
        for want in ("missing", "malformed", "too_weak", "wrong_secret", "unknown",
                     "expired", "revoked"):
            assert want in results, (want, set(results))
        assert len(lines) - n_mid >= refused_count, (len(lines) - n_mid, refused_count)
        oks = [l for l in lines if l["result"] == "ok"]
        assert any(l["token"] == tid(T["operator"]) and l["role"] == "operator"
                   and l["path"] == "/metrics" for l in oks)
        forb = [l for l in lines if l["result"] == "forbidden"]
        assert any(l["token"] == tid(T["sender"]) and l["status"] == 403 for l in forb)
        # Answered 404 (as if it did not exist), logged as forbidden.
        assert any(l["token"] == tid(T["limited_other"]) and l["status"] == 404 and
                   l["path"] == "/v1/broadcasts/" + BC_ADMIN for l in forb)
        wrong = [l for l in lines if l["result"] == "wrong_secret"]
        assert wrong and wrong[0]["token"] == tid(T["admin"]) and wrong[0]["role"] is None

    with tap.check("no secret in the login log, the operation log or kairand's log"):
        text = audit_text() + d.stderr_text()
        for name, t in T.items():
            secret = t.split("_", 2)[2]
            assert secret not in text, name
            assert secret[:16] not in text, name
        assert "B" * 43 not in text and "A" * 20 not in text

    # ---------------------------------------------------------------- [2]
    with tap.check("same id twice: 202 then 200 duplicate; one broadcast, one set of messages; "
                   "the same id from another token: 409, nothing named"):
        b = bcast(id="bc-idem-1", n=3)
        r1 = request(U, "POST", "/v1/broadcasts", T["limited"], b)
        r2 = request(U, "POST", "/v1/broadcasts", T["limited"], b)
        assert r1.status == 202 and r1.json["key"] == "bc-idem-1", r1
        IDEM = r1.json["id"]
        assert r2.status == 200 and r2.json["id"] == IDEM and \
            r2.json["duplicate"] is True, r2
        k.wait_done(IDEM, 20)
        # the key of another token's broadcast (here a kairan-wide admin's
        # retry of the school's key; a sender taking the key of the
        # school's notice first): a conflict, its broadcast not named
        r3 = request(U, "POST", "/v1/broadcasts", T["admin"], b)
        assert r3.status == 409 and r3.json["field"] == "id" and \
            "duplicate" not in r3.json and IDEM not in json.dumps(r3.json), r3
        sb = bcast(id="bc-idem-1", n=0)
        del sb["recipients"]
        sb["audience"] = {"groups": ["2-A"]}
        r3 = request(U, "POST", "/v1/broadcasts", T["sender"], sb)
        assert r3.status == 409 and "status" not in r3.json, r3
        entries = redis.call("XRANGE", "kairan:broadcasts", "-", "+")
        n_ann = sum(1 for e in entries if IDEM.encode() in b"".join(e[1]))
        bdir = os.path.join(k.outbox, IDEM)
        mine = [f for f in os.listdir(bdir) if f.endswith(".eml")]
        assert n_ann <= 1, n_ann
        assert len(mine) == 3, len(mine)

    with tap.check("another tenant reusing an id -> its own broadcast, nothing of the first changed"):
        r = request(U, "POST", "/v1/broadcasts", T["limited_other"],
                    bcast(tenant="momo", id="bc-idem-1"))
        assert r.status == 202 and r.json["id"] != IDEM, r
        assert r.json["key"] == "bc-idem-1", r
        assert k.bc(IDEM)["tenant"] == "sakura"
        assert k.bc(r.json["id"])["tenant"] == "momo"

    with tap.check("GET /v1/broadcasts/{id}: counts per channel and state, "
                   "first/last delivery, created, expires (JST), category, sender, "
                   "subject and body"):
        r = request(U, "GET", "/v1/broadcasts/" + IDEM, T["limited"])
        j = r.json
        assert r.status == 200, r
        assert j["status"] == "done" and j["tenant"] == "sakura", j
        assert j["counts"]["email"]["total"] == 3 and \
            j["counts"]["email"]["delivered"] == 3 and \
            j["counts"]["email"]["pending"] == 0, j["counts"]
        for f in ("first_delivery", "last_delivery", "created", "expires"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+09:00", j[f]), (f, j[f])
        assert j["first_delivery"] <= j["last_delivery"]
        assert j["category"] == "notice" and j["sender"] == "Tanaka (sakura office)", j
        assert j["jobs"] == 3 and j["final"] == 3 and j["percent"] == 100, j
        # the tenant's staff read subject and body (issue 13); no ack here
        assert j["subject"] == "お知らせ" and j["body"] == "本文です。", j
        assert j["ack"] is None, j

    with tap.check("GET /v1/broadcasts?active=1 lists recent broadcasts, filtered by role"):
        r = request(U, "GET", "/v1/broadcasts?active=1", T["operator"])
        ids = [b["id"] for b in r.json["broadcasts"]]
        assert IDEM in ids and SENDER_BC in ids, ids
        one = [b for b in r.json["broadcasts"] if b["id"] == IDEM][0]
        assert one["delivered"] == 3 and one["pending"] == 0 and one["percent"] == 100, one
        assert "sender" not in one
        r = request(U, "GET", "/v1/broadcasts?active=1", T["sender"])
        ids = [b["id"] for b in r.json["broadcasts"]]
        assert SENDER_BC in ids and IDEM not in ids, ids
        assert all(k.bc(i)["sender_token"] == tid(T["sender"]) for i in ids), ids
        r = request(U, "GET", "/v1/broadcasts?active=1", T["limited_other"])
        assert all(b["tenant"] == "momo" for b in r.json["broadcasts"]), r.json
        r = request(U, "GET", "/v1/broadcasts", T["operator"])
        assert r.status == 400 and r.json["field"] == "active", r

    # ---------------------------------------------------------------- [3]
    with tap.check("malformed JSON -> 400 with field json; a bad field -> 400 with it"):
        r = request(U, "POST", "/v1/broadcasts", T["admin"], '{"tenant": "sakura", ')
        assert r.status == 400 and r.json["field"] == "json", r
        r = request(U, "POST", "/v1/broadcasts", T["admin"], bcast(subject=""))
        assert r.status == 400 and r.json["field"] == "subject", r
        b = bcast()
        b["recipients"][1]["email"] = "x@example.jp\r\nBcc: evil@example.com"
        r = request(U, "POST", "/v1/broadcasts", T["admin"], b)
        assert r.status == 400 and r.json["field"].startswith("recipients[1]"), r
        assert "evil@example.com" not in r.body

    with tap.check("sender rules: inline recipients, directory ids, other groups, "
                   "other tenant -> 403 with the field"):
        r = request(U, "POST", "/v1/broadcasts", T["sender"], bcast(n=1))
        assert r.status == 403 and r.json["field"] == "recipients", r
        assert "group" in r.json["error"]
        b = bcast(n=0, audience={"recipients": ["r-1"]})
        del b["recipients"]
        r = request(U, "POST", "/v1/broadcasts", T["sender"], b)
        assert r.status == 403 and r.json["field"] == "audience.recipients", r
        b = bcast(n=0, audience={"groups": ["2-A", "3-C"]})
        del b["recipients"]
        r = request(U, "POST", "/v1/broadcasts", T["sender"], b)
        assert r.status == 403 and r.json["field"] == "audience.groups[1]", r
        b = bcast(tenant="momo", n=0, audience={"groups": ["2-A"]})
        del b["recipients"]
        r = request(U, "POST", "/v1/broadcasts", T["sender"], b)
        assert r.status == 403 and r.json["field"] == "tenant", r
        r = request(U, "POST", "/v1/broadcasts", T["limited"], bcast(tenant="momo"))
        assert r.status == 403 and r.json["field"] == "tenant", r

    with tap.check("wrong content type -> 415; unknown path -> 404; wrong method -> 405 + Allow"):
        r = request(U, "POST", "/v1/broadcasts", T["admin"], json.dumps(bcast()),
                    ctype="text/plain")
        assert r.status == 415 and r.json["error"], r
        r = request(U, "POST", "/v1/broadcasts", T["admin"], json.dumps(bcast()),
                    ctype="application/x-www-form-urlencoded")
        assert r.status == 415, r
        r = request(U, "POST", "/v1/broadcasts", T["admin"], bcast(n=1),
                    ctype="application/json; charset=utf-8")
        assert r.status == 202, r
        r = request(U, "GET", "/v1/nothing-here", T["admin"])
        assert r.status == 404 and r.json["error"], r
        r = request(U, "GET", "/v1/broadcasts/no-such-bc", T["admin"])
        assert r.status == 404 and r.json["field"] == "id", r
        r = request(U, "DELETE", "/v1/broadcasts", T["admin"])
        assert r.status == 405 and r.header("allow") == "GET, POST", r
        r = request(U, "GET", "/v1/broadcasts/%s/cancel" % BC_ADMIN, T["admin"])
        assert r.status == 405 and r.header("allow") == "POST", r
        c = http.client.HTTPConnection("127.0.0.1", U, timeout=10)
        r = request(U, "HEAD", "/healthz", conn=c)
        assert r.status == 405 and r.body == "" and r.header("allow") == "GET", r
        r = request(U, "GET", "/healthz", conn=c)
        assert r.status == 200 and r.json["status"] == "ok", r
        c.close()

    with tap.check("cancel: 200 cancelled, then 409 already; 404 unknown"):
        r = request(U, "POST", "/v1/broadcasts", T["admin"],
                    bcast(id="bc-later", n=1, send_at="2099-01-01T09:00:00+09:00",
                          expires_at="2099-01-02T09:00:00+09:00"))
        assert r.status == 202, r
        LATER = r.json["id"]
        r = request(U, "POST", "/v1/broadcasts/%s/cancel" % LATER, T["limited"])
        assert r.status == 200 and r.json == {"id": LATER, "status": "cancelled"}, r
        r = request(U, "POST", "/v1/broadcasts/%s/cancel" % LATER, T["admin"])
        assert r.status == 409 and "cancelled" in r.json["error"], r
        r = request(U, "POST", "/v1/broadcasts/nope/cancel", T["admin"])
        assert r.status == 404, r

    with tap.check("Content-Length of 2 x max_body: 413 arrives without the body being sent"):
        head = ("POST /v1/broadcasts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (T["admin"], 2 * MAX_BODY)).encode()
        s = socket.create_connection(("127.0.0.1", U), timeout=5)
        s.sendall(head + b"{" + b" " * 1000)
        t = time.monotonic()
        got = b""
        while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        took = time.monotonic() - t
        s.close()
        assert got.startswith(b"HTTP/1.1 413 "), got[:200]
        assert b"Connection: close" in got
        body = json.loads(got.split(b"\r\n\r\n", 1)[1])
        assert "max_body" in body["error"], body
        assert took < 2, took

    with tap.check("Expect: 100-continue: 100 first, then the answer; too large: 413 at once"):
        body = json.dumps(bcast(n=2)).encode()
        head = ("POST /v1/broadcasts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                "Content-Length: %d\r\n\r\n" % (T["admin"], len(body))).encode()
        s = socket.create_connection(("127.0.0.1", U), timeout=5)
        s.sendall(head)
        first = s.recv(4096)
        assert first == b"HTTP/1.1 100 Continue\r\n\r\n", first
        s.sendall(body)
        got = b""
        while b"}" not in got:
            got += s.recv(65536)
        s.close()
        assert got.startswith(b"HTTP/1.1 202 "), got[:200]
        head = ("POST /v1/broadcasts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                "Content-Length: %d\r\n\r\n" % (T["admin"], MAX_BODY + 1)).encode()
        got = raw_exchange(U, head)
        assert got.startswith(b"HTTP/1.1 413 "), got[:200]

    with tap.check("chunked body growing past max_body -> 413"):
        chunk = b"%x\r\n%s\r\n" % (8192, b"x" * 8192)
        data = ("POST /v1/broadcasts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                % T["admin"]).encode() + chunk * (MAX_BODY // 8192 + 2)
        got = raw_exchange(U, data)
        assert got.startswith(b"HTTP/1.1 413 "), got[:200]

    with tap.check("pipelined requests on one connection are answered in order"):
        reqs = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /v1/queues/history HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + T["operator"].encode() + b"\r\n\r\n"
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = raw_exchange(U, reqs)
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", got)
        assert statuses == [b"200", b"404", b"200", b"200"], got[:600]
        assert got.count(b"Connection: close") == 1

    with tap.check("keep-alive: several requests on one connection; headers on every answer"):
        c = http.client.HTTPConnection("127.0.0.1", U, timeout=10)
        for _ in range(5):
            r = request(U, "GET", "/v1/queues", T["operator"], conn=c)
            assert r.status == 200, r
            assert r.header("cache-control") == "no-store"
            assert r.header("x-content-type-options") == "nosniff"
            assert r.header("connection") == "keep-alive"
        c.close()

    with tap.check("malformed HTTP -> 400 and close"):
        got = raw_exchange(U, b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 400 "), got[:200]

    with tap.check("GET / serves the page with a strict CSP and its script/style from the same origin"):
        r = request(U, "GET", "/")
        csp = r.header("content-security-policy")
        assert r.status == 200 and r.header("content-type").startswith("text/html"), r
        assert "script-src 'self'" in csp and "default-src 'none'" in csp, csp
        assert "unsafe-inline" not in csp
        assert "<script src=\"/status.js\"" in r.body and "<style" not in r.body
        assert not re.search(r"<script>|\son\w+=|https?://", r.body), "inline code or external asset"
        assert request(U, "GET", "/status.js").header("content-type").startswith("text/javascript")
        assert request(U, "GET", "/status.css").status == 200
        js = request(U, "GET", "/status.js").body
        assert "innerHTML" not in js and "sessionStorage" in js

    # ---------------------------------------------------------------- [4]
    with tap.check("/metrics: deliveries and latency grow by exactly the recipients of a broadcast"):
        def scrape():
            r = request(U, "GET", "/metrics", T["operator"])
            assert r.status == 200, r
            assert r.header("content-type").startswith("text/plain; version=0.0.4")
            return r.body
        time.sleep(1.1)  # the gauges are cached for 1 s
        m0 = scrape()
        key = dict(channel="email", provider="outbox", result="delivered")
        before = metric(m0, "kairan_deliveries_total", **key) or 0
        lat0 = metric(m0, "kairan_delivery_latency_seconds_count", channel="email") or 0
        N = 7
        r = request(U, "POST", "/v1/broadcasts", T["admin"], bcast(id="bc-metrics", n=N))
        assert r.status == 202, r
        k.wait_done(r.json["id"], 20)
        time.sleep(1.1)
        m1 = scrape()
        after = metric(m1, "kairan_deliveries_total", **key)
        lat1 = metric(m1, "kairan_delivery_latency_seconds_count", channel="email")
        assert after - before == N, (before, after)
        assert lat1 - lat0 == N, (lat0, lat1)
        inf = metric(m1, "kairan_delivery_latency_seconds_bucket", channel="email", le="+Inf")
        assert inf == lat1
        assert metric(m1, "kairan_up") == 1
        assert metric(m1, "kairan_breaker_state", route="smtp") == 0
        for name in ("kairan_queue_depth", "kairan_queue_pending",
                     "kairan_queue_oldest_age_seconds"):
            for ch in ("email", "line", "push"):
                for pr in ("urgent", "normal"):
                    assert metric(m1, name, channel=ch, priority=pr) is not None, (name, ch, pr)
        assert metric(m1, "kairan_dlq_size") == redis.call("XLEN", "kairan:dlq")
        assert metric(m1, "kairan_retry_size") == redis.call("ZCARD", "kairan:retry")
        assert metric(m1, "kairan_broadcasts_active") == redis.call("ZCARD", "kairan:active")
        for name in ("kairan_in_flight", "kairan_redis_reconnects_total",
                     "kairan_token_refreshes_total", "kairan_token_refresh_failures_total"):
            assert metric(m1, name) is not None, name
        for line in m1.splitlines():
            assert line.startswith("#") or re.fullmatch(
                r"kairan_[a-z_]+(\{[a-z]+=\"[^\"]*\"(,[a-z]+=\"[^\"]*\")*\})? -?[0-9.e+]+", line), line

    with tap.check("GET /v1/queues equals kairanctl status --json"):
        def same():
            r = request(U, "GET", "/v1/queues", T["admin"])
            cp = k.ctl("status", "--json")
            return r.json == json.loads(cp.stdout) and r.json
        j = wait_for(same, 10, 0.3, what="/v1/queues == status --json")
        assert [(q["channel"], q["priority"]) for q in j["queues"]] == [
            ("email", "urgent"), ("email", "normal"), ("line", "urgent"),
            ("line", "normal"), ("push", "urgent"), ("push", "normal")]
        assert list(j) == ["queues", "retry", "dlq", "active", "rejected",
                           "categories", "rate"]

    with tap.check("limited_admin sees only its tenant in /v1/queues' lists"):
        r = request(U, "POST", "/v1/broadcasts", T["admin"],
                    bcast(tenant="momo", id="bc-momo-later", n=1,
                          send_at="2099-01-01T09:00:00+09:00",
                          expires_at="2099-01-02T09:00:00+09:00"))
        assert r.status == 202
        momo = r.json["id"]
        ra = request(U, "GET", "/v1/queues", T["admin"]).json
        rl = request(U, "GET", "/v1/queues", T["limited"]).json
        assert momo in [a["id"] for a in ra["active"]], ra["active"]
        assert momo not in [a["id"] for a in rl["active"]], rl["active"]
        # the counts per category are of every school, by name: for a
        # caller that sees every school only
        assert ra["categories"] and rl["categories"] == {}, (ra, rl)

    with tap.check("an admin token made with --tenant is that school's: "
                   "another school's broadcasts are 404, its submits 403, "
                   "its lists filtered; an operator gets no broadcast by key"):
        sa = T["school_admin"]
        r = request(U, "GET", "/v1/broadcasts/" + IDEM, sa)  # sakura's
        assert r.status == 404, r
        r = request(U, "GET", "/v1/broadcasts/" + momo, sa)
        assert r.status == 200 and r.json["tenant"] == "momo", r
        for path in ("/recipients", "/cancel"):
            r = request(U, "POST" if path == "/cancel" else "GET",
                        "/v1/broadcasts/" + IDEM + path, sa)
            assert r.status == 404, (path, r)
        r = request(U, "POST", "/v1/broadcasts", sa,
                    bcast(tenant="sakura", id="bc-cross", n=1))
        assert r.status == 403 and r.json["field"] == "tenant", r
        r = request(U, "GET", "/v1/broadcasts?key=%s&tenant=sakura" % IDEM, sa)
        assert r.status == 404, r
        r = request(U, "GET", "/v1/broadcasts?active=1", sa)
        assert r.status == 200 and r.json["broadcasts"] and all(
            b["tenant"] == "momo" for b in r.json["broadcasts"]), r.json
        assert momo in [a["id"] for a in request(
            U, "GET", "/v1/queues", sa).json["active"]]
        assert IDEM not in [a["id"] for a in request(
            U, "GET", "/v1/queues", sa).json["active"]]
        r = request(U, "GET", "/v1/broadcasts?key=%s&tenant=sakura" % IDEM,
                    T["operator"])
        assert r.status == 403 and "subject" not in r.json, r
        # a kairan-wide admin still sees every school
        assert request(U, "GET", "/v1/broadcasts/" + IDEM,
                       T["admin"]).status == 200

    # ---------------------------------------------------------------- [5]
    with tap.check("token list (text and --json) never shows a hash, a salt or a secret"):
        cp = k.ctl("token", "list", "--json")
        assert cp.returncode == 0, cp.stderr
        rows = json.loads(cp.stdout)
        assert len(rows) == len(T), rows
        for row in rows:
            assert set(row) == {"id", "role", "tenant", "name", "groups", "created",
                                "expires", "revoked", "state"}, row
        byid = {r["id"]: r for r in rows}
        assert byid[tid(T["to_revoke"])]["state"] == "revoked"
        assert byid[tid(T["expiring"])]["state"] == "expired"
        assert byid[tid(T["sender"])]["groups"] == ["2-A", "2-B"]
        assert byid[tid(T["admin"])]["name"] == "本部 管理者"
        text = k.ctl("token", "list").stdout + cp.stdout
        for t in T.values():
            assert t.split("_", 2)[2] not in text
        rec = redis.call("HGETALL", "kairan:token:" + tid(T["admin"]))
        rec = {rec[i].decode(): rec[i + 1].decode() for i in range(0, len(rec), 2)}
        assert re.fullmatch(r"[0-9a-f]{64}", rec["hash"]) and rec["hash"] not in text
        assert T["admin"].split("_", 2)[2] not in json.dumps(rec)

    with tap.check("token revoke: again -> exit 1, unknown -> exit 3; operation log lines"):
        cp = k.ctl("token", "revoke", tid(T["to_revoke"]))
        assert cp.returncode == 1, (cp.returncode, cp.stderr)
        cp = k.ctl("token", "revoke", "ffffffffffffffff")
        assert cp.returncode == 3 and "no token" in cp.stderr, (cp.returncode, cp.stderr)
        with open(os.path.join(AUDIT, "operations.jsonl")) as f:
            ops = [json.loads(l) for l in f]
        creates = [o for o in ops if o["op"] == "token.create"]
        revokes = [o for o in ops if o["op"] == "token.revoke"]
        assert len(creates) == len(T) and len(revokes) == 1, (len(creates), len(revokes))
        assert revokes[0]["token"] == tid(T["to_revoke"]) and revokes[0]["name"] == "Suzuki (leaving)"
        subs = [o for o in ops if o["op"] == "broadcast.submit"]
        assert any(o["broadcast"] == IDEM and o["token"] == tid(T["limited"])
                   and o["tenant"] == "sakura" for o in subs), subs
        assert any(o["op"] == "broadcast.cancel" and o["broadcast"] == LATER for o in ops)
        st = os.stat(AUDIT)
        assert st.st_mode & 0o777 == 0o750, oct(st.st_mode)

    # ---------------------------------------------------------------- [6]
    d.stop()
    k.sections["http"]["rate"] = "3"
    k.sections["http"]["file_rate"] = "6"
    k.sections["http"]["metrics_open"] = "yes"
    k.write_conf()
    d = k.start()
    d.wait_output('"listening"', 15)

    with tap.check("rate limit: 429 with Retry-After past http.rate per source address"):
        c = http.client.HTTPConnection("127.0.0.1", U, timeout=10)
        statuses = []
        last = None
        for _ in range(10):
            r = request(U, "GET", "/v1/queues", T["operator"], conn=c)
            statuses.append(r.status)
            if r.status == 429:
                last = r
        c.close()
        assert statuses[:3] == [200, 200, 200], statuses
        assert 429 in statuses, statuses
        assert last.json["error"] and int(last.header("retry-after")) >= 1, last
        r = request(U, "GET", "/v1/queues", T["operator"],
                    headers={"X-Real-IP": "203.0.113.7"})
        assert r.status == 200, r
        r = request(U, "GET", "/healthz")
        assert r.status == 200, r
        time.sleep(int(last.header("retry-after")))
        r = request(U, "GET", "/v1/queues", T["operator"])
        assert r.status == 200, r

    with tap.check("rate limit: an IPv6 /64 is one source (whoever holds one "
                   "has 2^64 addresses): its addresses share a bucket, "
                   "another /64 has its own"):
        c = http.client.HTTPConnection("127.0.0.1", U, timeout=10)
        got = [request(U, "GET", "/v1/queues", T["operator"],
                       headers={"X-Real-IP": "2001:db8:7:7::%x" % (i + 1)},
                       conn=c).status for i in range(10)]
        assert got[:3] == [200, 200, 200] and 429 in got, got
        r = request(U, "GET", "/v1/queues", T["operator"],
                    headers={"X-Real-IP": "2001:db8:7:8::1"}, conn=c)
        assert r.status == 200, r
        c.close()

    with tap.check("rate limit: the embedded files have their own bucket (http.file_rate): "
                   "a page's files do not use up the API's, nor the API's theirs"):
        c = http.client.HTTPConnection("127.0.0.1", U, timeout=10)
        src = {"X-Real-IP": "198.51.100.20"}
        files = ["/status.js", "/status.css", "/"]
        statuses, last = [], None
        for i in range(40):
            r = request(U, "GET", files[i % len(files)], headers=src, conn=c)
            statuses.append(r.status)
            if r.status == 429:
                last = r
        assert statuses[:6] == [200] * 6, statuses      # 6 > http.rate (3)
        assert 429 in statuses, statuses
        assert last.json["error"] and int(last.header("retry-after")) >= 1, last
        # the API bucket of that address is still full
        got = [request(U, "GET", "/v1/queues", T["operator"], headers=src,
                       conn=c).status for _ in range(3)]
        assert got == [200, 200, 200], got
        # and an address whose API bucket is empty still gets the page
        src = {"X-Real-IP": "198.51.100.21"}
        got = [request(U, "GET", "/v1/queues", T["operator"], headers=src,
                       conn=c).status for _ in range(8)]
        assert 429 in got, got
        r = request(U, "GET", "/status.js", headers=src, conn=c)
        assert r.status == 200 and "javascript" in r.header("content-type"), r
        c.close()

    with tap.check("X-Real-IP from a loopback peer is the source in the login log"):
        lines = login_lines()
        assert any(l["source"] == "203.0.113.7" for l in lines), lines[-3:]

    with tap.check("http.metrics_open: /metrics without a token"):
        r = request(U, "GET", "/metrics")
        assert r.status == 200 and "kairan_up 1" in r.body, r

    # ---------------------------------------------------------------- [7]
    with tap.check("/healthz: Redis stopped -> 503 {redis: false}; back -> 200"):
        redis.stop()
        def down():
            r = request(U, "GET", "/healthz")
            return r if r.status == 503 else None
        r = wait_for(down, 15, 0.2, what="/healthz 503")
        assert r.json["redis"] is False and r.json["status"] == "degraded", r.json
        r = request(U, "GET", "/v1/queues", T["operator"])
        assert r.status == 503 and r.json["error"], r
        redis.start()
        def up():
            r = request(U, "GET", "/healthz")
            return r if r.status == 200 else None
        r = wait_for(up, 20, 0.2, what="/healthz 200 again")
        assert r.json == {"status": "ok", "redis": True, "breakers": {"smtp": "closed"}}

    with tap.check("a second kairand on the same port runs without HTTP (warning, not an exit)"):
        d2 = k.start(name="kairand-second")
        d2.wait_output("this process serves no HTTP", 15)
        d2.wait_output('"ready"', 15)
        time.sleep(0.3)
        assert d2.alive(), d2.stderr_text()[-1000:]
        assert request(U, "GET", "/healthz").status == 200
        assert d2.stop(15) == 0

    with tap.check("kairand stops cleanly (exit 0) with HTTP connections open"):
        c = socket.create_connection(("127.0.0.1", U))
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        rc = d.stop(15)
        c.close()
        assert rc == 0, (rc, d.stderr_text()[-2000:])

tap.diag("runtime %.1f s" % (time.monotonic() - T0))
tap.done()
