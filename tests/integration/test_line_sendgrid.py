#!/usr/bin/python3
"""test_line_sendgrid.py - the LINE adapter for real, through kairand
(issue 3), against tests/fakes/fake_line.py; and fake_sendgrid.py's own
checks (the adapter itself runs against it in tests/unit/test_sendgrid_live.c
until routes or failover can reach it from kairand).

  [1] scale(1200) LINE recipients: every user id gets exactly one message
      (asserted on the set of ids delivered, push or multicast alike), every
      request carries a UUID retry key, at most 500 ids, the subject then the
      body as text messages; no user id in kairand's log.
  [2] 500 once -> retried with the same retry key, delivered once.
  [3] 500 after LINE accepted it -> the retry gets 409 with
      X-Line-Accepted-Request-Id -> delivered, stored once.
  [4] stalled after acceptance (line.timeout_ms 1 s) -> the retry gets 409
      -> delivered once.
  [5] 429 rate limit -> retried, delivered.  An ack broadcast: the
      personal confirmation link in a last text message of its own.
  [6] 400 -> DLQ with LINE's message (a multicast's entry sent again by
      kairanctl dlq retry: every member once); 429 monthly quota -> failed (DLQ)
      with a reason naming the quota, not retried (it pauses the route, so
      it runs last); neither reason holds the id.
  [7] the v2.1 token flow: kairand signs an RS256 assertion, the fake
      verifies it and issues short-lived tokens: one issue for a burst of
      jobs, a new one after expiry, never a 401 for an expired token.
      (401 -> token dropped, refused assertions, renewal: test_line_live.c,
      without the dispatcher's 30 s credential pause.)
  [7b] stateless tokens (/oauth2/v3/token, the default): three kairand
      starts against a channel that allows 2 valid v2.1 tokens each issue
      their own 15-minute token and deliver; the same with the v2.1
      endpoint, the third start's token is refused (why v3 is the default).
  [8] https to the fake with line.ca_file (the test CA): delivered; without
      it the peer is not trusted: nothing sent, the job fails; a certificate
      of the test CA for another host name, or expired: the same.
  [9] fake_sendgrid checks (auth, spec shape, carrier address -> 400).

Run:  BUILD=build /usr/bin/python3 tests/integration/test_line_sendgrid.py
"""

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("line")
TOKEN = "line-static-token-" + secrets.token_hex(8)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                     r"[0-9a-f]{12}$")
PYTHON = "/usr/bin/python3"


def jsonl(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    res = []
    for line in raw.split(b"\n"):
        if line.strip():
            try:
                res.append(json.loads(line))
            except ValueError:
                pass
    return res


# FakeHTTP: from harness.


class FakeLine(FakeHTTP):
    script = "fake_line.py"

    def delivered(self):
        """user id -> number of accepted requests that carried it."""
        n = {}
        for r in self.requests():
            for u in r["to"]:
                n[u] = n.get(u, 0) + 1
        return n

    def events_for(self, uid):
        return [e for e in self.events("request") if uid in (e.get("to") or [])]


class FakeSendGrid(FakeHTTP):
    script = "fake_sendgrid.py"


def uid():
    return "U" + secrets.token_hex(16)


def line_bcast(ids, subject="お知らせ", body="本文です。", prefix="r", **kw):
    b = {"tenant": "sakura-hs", "category": "notice", "subject": subject,
         "body": body, "channels": ["line"],
         "recipients": [{"id": "%s-%d" % (prefix, i), "line": u}
                        for i, u in enumerate(ids)]}
    b.update(kw)
    return b


def dlq(k):
    cp = k.ctl("dlq", "list", "--json")
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


ALL_IDS = set()

r = Redis(out)
line = FakeLine(out, "line", ["--token", TOKEN])
k = Kairan(out, r, email="outbox", conf={
    "routes": {"line": "line"},
    "line": {"api_base": line.url, "token": TOKEN, "timeout_ms": "1s"},
    "queue": {"retry_base_ms": "100", "retry_cap_ms": "300", "max_attempts": "6"},
    "http": {"listen": "127.0.0.1:%d" % free_port()},
})
d = k.start()

# ---------------------------------------------------------------- [1]
N = scale(1200, minimum=10)
ids1 = [uid() for _ in range(N)]
ALL_IDS.update(ids1)
SUBJ = "【緊急】台風接近に伴う臨時休校"
BODY = "保護者各位\n明日は臨時休校とします。😀\n以上"
with tap.check("[1] %d LINE recipients: each user id got exactly one message" % N):
    t = time.time()
    bid = k.submit(line_bcast(ids1, SUBJ, BODY, "r1"))
    h = k.wait_done(bid, 60)
    tap.diag("[1] %d recipients in %.2fs" % (N, time.time() - t))
    c = k.counts(bid).get("line", {})
    assert c.get("delivered") == N, c
    got = line.delivered()
    assert set(got) >= set(ids1), "missing: %d" % len(set(ids1) - set(got))
    twice = [u for u in ids1 if got[u] != 1]
    assert not twice, "%d ids got more than one message" % len(twice)
with tap.check("[1] every request: UUID retry key, <= 500 ids, subject then body"):
    reqs = [q for q in line.requests() if set(q["to"]) & set(ids1)]
    assert reqs
    for q in reqs:
        assert q["retry_key"] and UUID_RE.match(q["retry_key"]), q["retry_key"]
        assert 1 <= len(q["to"]) <= 500
        texts = [m["text"] for m in q["messages"]]
        assert texts == [SUBJ, BODY], texts
    keys = [q["retry_key"] for q in reqs]
    assert len(keys) == len(set(keys)), "a retry key used by two requests"
    tap.diag("[1] %d requests (%s)" % (len(reqs), ", ".join(sorted(
        {q["endpoint"] for q in reqs}))))

# ---------------------------------------------------------------- [2]
with tap.check("[2] 500 once -> retried with the same retry key, delivered once"):
    u = uid()
    ALL_IDS.add(u)
    line.set_control({"rules": [{"action": "500", "match": u, "times": 1}]})
    bid = k.submit(line_bcast([u], prefix="r2"))
    k.wait_done(bid, 30)
    assert k.counts(bid)["line"].get("delivered") == 1, k.counts(bid)
    evs = line.events_for(u)
    assert [e["status"] for e in evs] == ["500", 200], [e["status"] for e in evs]
    assert evs[0]["retry_key"] == evs[1]["retry_key"]
    assert UUID_RE.match(evs[0]["retry_key"])
    assert line.delivered()[u] == 1

# ---------------------------------------------------------------- [3]
with tap.check("[3] 500 after acceptance -> retry answered 409 -> delivered, stored once"):
    u = uid()
    ALL_IDS.add(u)
    line.set_control({"rules": [{"action": "500-accepted", "match": u,
                                 "times": 1}]})
    bid = k.submit(line_bcast([u], prefix="r3"))
    k.wait_done(bid, 30)
    assert k.counts(bid)["line"].get("delivered") == 1, k.counts(bid)
    evs = line.events_for(u)
    assert [e["status"] for e in evs] == [500, 409], [e["status"] for e in evs]
    assert evs[0]["retry_key"] == evs[1]["retry_key"]
    assert line.delivered()[u] == 1

# ---------------------------------------------------------------- [4]
with tap.check("[4] stalled after acceptance (timeout) -> 409 on retry -> delivered once"):
    u = uid()
    ALL_IDS.add(u)
    line.set_control({"rules": [{"action": "stall-accepted", "match": u,
                                 "times": 1}]})
    bid = k.submit(line_bcast([u], prefix="r4"))
    k.wait_done(bid, 30)
    assert k.counts(bid)["line"].get("delivered") == 1, k.counts(bid)
    evs = line.events_for(u)
    assert [e["status"] for e in evs] == ["stall", 409], [e["status"] for e in evs]
    assert line.delivered()[u] == 1

# ---------------------------------------------------------------- [5]
with tap.check("[5] 429 rate limit -> retried after a pause, delivered"):
    u = uid()
    ALL_IDS.add(u)
    line.set_control({"rules": [{"action": "429-rate", "match": u, "times": 2}]})
    bid = k.submit(line_bcast([u], prefix="r5"))
    k.wait_done(bid, 30)
    assert k.counts(bid)["line"].get("delivered") == 1, k.counts(bid)
    evs = line.events_for(u)
    assert [e["status"] for e in evs] == ["429-rate", "429-rate", 200], evs
    # LINE sends no Retry-After: the adapter asks for 1 s.
    assert evs[1]["ts"] - evs[0]["ts"] >= 0.9, evs[1]["ts"] - evs[0]["ts"]

with tap.check("[5] ack broadcast: the personal link in a last message of its own"):
    u = uid()
    ALL_IDS.add(u)
    bid = k.submit(line_bcast([u], prefix="r5a", ack=True))
    k.wait_done(bid, 30)
    assert k.counts(bid)["line"].get("delivered") == 1, k.counts(bid)
    q = [q for q in line.requests() if u in q["to"]]
    assert len(q) == 1, q
    texts = [m["text"] for m in q[0]["messages"]]
    assert len(texts) == 3, texts
    assert "/a/" in texts[-1] and "確認" in texts[-1], texts[-1]

# ---------------------------------------------------------------- [6]
with tap.check("[6] 400 -> DLQ with LINE's message, without the user id"):
    u = uid()
    ALL_IDS.add(u)
    line.set_control({"rules": [{"action": "400", "match": u}]})
    bid = k.submit(line_bcast([u], prefix="r6b"))
    k.wait_done(bid, 30)
    assert k.counts(bid)["line"].get("failed") == 1, k.counts(bid)
    ent = [e for e in dlq(k) if e["broadcast"] == bid]
    assert len(ent) == 1, ent
    assert "Failed to send messages" in ent[0]["reason"], ent[0]["reason"]
    assert "line 400" in ent[0]["reason"], ent[0]["reason"]
    assert u not in ent[0]["reason"]
    assert len(line.events_for(u)) == 1
with tap.check("[6] a multicast refused with 400 -> one DLQ entry; fixed, "
               "kairanctl dlq retry sends it again: every member delivered once"):
    ids6 = [uid() for _ in range(3)]
    ALL_IDS.update(ids6)
    line.set_control({"rules": [{"action": "400", "match": ids6[1]}]})
    bid = k.submit(line_bcast(ids6, prefix="r6m"))
    k.wait_done(bid, 30)
    assert k.counts(bid)["line"].get("failed") == 3, k.counts(bid)
    ent = [e for e in dlq(k) if e["broadcast"] == bid]
    assert len(ent) == 1, ent
    assert ids6[1] not in ent[0]["reason"]
    line.set_control({})
    cp = k.ctl("dlq", "retry", ent[0]["entry"])
    assert cp.returncode == 0 and "1 job" in cp.stdout, \
        "exit %d: %s %s" % (cp.returncode, cp.stdout, cp.stderr)
    wait_for(lambda: k.counts(bid)["line"].get("delivered") == 3, 30,
             what="the retried multicast delivered")
    c = k.counts(bid)["line"]
    assert c.get("failed", 0) == 0, c
    assert k.bc(bid).get("status") == "done", k.bc(bid)
    got = line.delivered()
    assert all(got.get(u) == 1 for u in ids6), [got.get(u) for u in ids6]
    assert not [e for e in dlq(k) if e["broadcast"] == bid]
with tap.check("[6] dlq retry leaves hostile or unsendable entries in the DLQ, each "
               "with its reason, and writes nothing: a delivered job whose result was "
               "not recorded, another broadcast's job, recipients that do not pair up, "
               "an unknown queue"):
    base = {"b": bid, "q": "line:normal", "n": 3, "r": ["r6m-0", "r6m-1"],
            "a": ["x", "y"], "i": ["aa", "bb"]}
    bad = [("delivered", dict(base), "cannot record the result (delivered): a key"),
           ("other", dict(base, b="b-20260101-000000000000"), "line 400"),
           ("pairs", dict(base, r=["r6m-0", ""]), "line 400"),
           ("comma", dict(base, r=["r6m-0,r6m-1", "x"]), "line 400"),
           ("queue", dict(base, q="../secret"), "line 400")]
    eids = {}
    before = r.call("HGETALL", "kairan:bc:" + bid), r.call("HGETALL", "kairan:bc:%s:r" % bid)
    for name, job, why in bad:
        eids[name] = r.call("XADD", "kairan:dlq", "*", "bc", bid, "field", "line:aa,line:bb",
                            "job", json.dumps(job), "reason", why, "attempts", "3",
                            "failed_ms", "1").decode()
    for name, eid in eids.items():
        cp = k.ctl("dlq", "retry", eid)
        assert cp.returncode == 0 and "0 job" in cp.stdout, (name, cp.stdout, cp.stderr)
        assert "left in the DLQ" in cp.stderr or "not sent again" in cp.stderr, (name, cp.stderr)
    assert "went out" in k.ctl("dlq", "retry", eids["delivered"]).stderr
    left = {e["entry"] for e in dlq(k)}
    assert set(eids.values()) <= left, (eids, left)
    assert (r.call("HGETALL", "kairan:bc:" + bid),
            r.call("HGETALL", "kairan:bc:%s:r" % bid)) == before
    assert r.call("EXISTS", "kairan:q:../secret") == 0
    for eid in eids.values():
        r.call("XDEL", "kairan:dlq", eid)
with tap.check("[6] 429 monthly quota -> DLQ naming the quota, not retried"):
    u = uid()
    ALL_IDS.add(u)
    line.set_control({"rules": [{"action": "429-quota", "match": u}]})
    bid = k.submit(line_bcast([u], prefix="r6"))
    k.wait_done(bid, 30)
    assert k.counts(bid)["line"].get("failed") == 1, k.counts(bid)
    ent = [e for e in dlq(k) if e["broadcast"] == bid]
    assert len(ent) == 1, ent
    assert "quota" in ent[0]["reason"], ent[0]["reason"]
    assert u not in ent[0]["reason"]
    assert len(line.events_for(u)) == 1, line.events_for(u)
line.set_control({})

with tap.check("[1-6] no LINE user id in kairand's log"):
    d.stop()
    logtext = d.stderr_text()
    found = [u for u in ALL_IDS if u in logtext or u[1:] in logtext]
    assert not found, "%d ids in the log, e.g. %s***" % (len(found), found[0][:4])
    assert TOKEN not in logtext, "the token is in the log"

# ---------------------------------------------------------------- [7]
keydir = os.path.join(out, "linekey")
os.makedirs(keydir, exist_ok=True)
priv = os.path.join(keydir, "assertion.pem")
pub = os.path.join(keydir, "assertion.pub.pem")
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                "rsa_keygen_bits:2048", "-out", priv], check=True,
               capture_output=True)
os.chmod(priv, 0o600)
subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub],
               check=True, capture_output=True)
TTL = 3
line2 = FakeLine(out, "line2", ["--line-public-key", pub, "--kid", "kid-test-1",
                                "--channel-id", "1657000000", "--token-ttl",
                                str(TTL)])
r2 = Redis(out)
k2 = Kairan(out, r2, email="outbox", name="kairan-jwt", conf={
    "routes": {"line": "line"},
    "line": {"api_base": line2.url, "token_url": line2.url + "/oauth2/v2.1/token",
             "channel_id": "1657000000", "key_file": priv, "key_id": "kid-test-1",
             "timeout_ms": "5s"},
    "queue": {"retry_base_ms": "100", "retry_cap_ms": "300"},
    "http": {"listen": "127.0.0.1:%d" % free_port()},
})
d2 = k2.start()
with tap.check("[7] v2.1: one token issued for a burst of jobs, all delivered"):
    M = scale(60, minimum=5)
    ids = [uid() for _ in range(M)]
    ALL_IDS.update(ids)
    bid = k2.submit(line_bcast(ids, prefix="j1"))
    k2.wait_done(bid, 30)
    assert k2.counts(bid)["line"].get("delivered") == M, k2.counts(bid)
    toks = [e for e in line2.events("token") if e["status"] == 200]
    assert len(toks) == 1, line2.events("token")
    assert all(q["token"] == "issued" for q in line2.requests())
with tap.check("[7] v2.1: after the token's expiry a new one, no 401"):
    time.sleep(TTL + 0.5)  # let the token expire (the clock is the point)
    ids = [uid() for _ in range(5)]
    ALL_IDS.update(ids)
    bid = k2.submit(line_bcast(ids, prefix="j2"))
    k2.wait_done(bid, 30)
    assert k2.counts(bid)["line"].get("delivered") == 5, k2.counts(bid)
    toks = [e for e in line2.events("token") if e["status"] == 200]
    assert len(toks) == 2, line2.events("token")
    assert not [e for e in line2.events("request") if e["status"] == 401]
with tap.check("[7] no user id, token or assertion in kairand's log"):
    d2.stop()
    logtext = d2.stderr_text()
    assert "fake-issued-" not in logtext
    assert not [u for u in ALL_IDS if u in logtext]
    assert '"v2.1 (issued)"' in logtext or "v2.1" in logtext

# ---------------------------------------------------------------- [7b]
line4 = FakeLine(out, "line4", ["--line-public-key", pub, "--kid", "kid-test-1",
                                "--channel-id", "1657000000",
                                "--max-tokens", "2"])
r4 = Redis(out)


def jwt_kairan(name, path):
    return Kairan(out, r4, email="outbox", name=name, conf={
        "routes": {"line": "line"},
        "line": {"api_base": line4.url, "token_url": line4.url + path,
                 "channel_id": "1657000000", "key_file": priv,
                 "key_id": "kid-test-1", "timeout_ms": "5s"},
        "queue": {"retry_base_ms": "100", "retry_cap_ms": "300",
                  "max_attempts": "2"},
    })


with tap.check("[7b] stateless: three starts, three tokens, all delivered (no cap)"):
    for n in range(3):
        kn = jwt_kairan("kairan-v3-%d" % n, "/oauth2/v3/token")
        dn = kn.start()
        ids = [uid() for _ in range(3)]
        ALL_IDS.update(ids)
        bid = kn.submit(line_bcast(ids, prefix="v3-%d" % n))
        kn.wait_done(bid, 30)
        assert kn.counts(bid)["line"].get("delivered") == 3, kn.counts(bid)
        dn.stop()
        assert "stateless" in dn.stderr_text()
    toks = [e for e in line4.events("token") if e["status"] == 200]
    assert len(toks) == 3 and all(e.get("kind") == "stateless"
                                  for e in toks), toks
    assert all(e.get("expires_in") == 900 for e in toks), toks
with tap.check("[7b] v2.1: the channel's cap of valid tokens refuses the third start"):
    results = []
    for n in range(3):
        kn = jwt_kairan("kairan-v21-%d" % n, "/oauth2/v2.1/token")
        dn = kn.start()
        ids = [uid() for _ in range(2)]
        ALL_IDS.update(ids)
        bid = kn.submit(line_bcast(ids, prefix="v21-%d" % n))
        if n < 2:
            kn.wait_done(bid, 30)
        else:
            # Refused credentials pause the route and keep the jobs: the
            # broadcast does not end; the refusal is what counts here.
            dn.wait_output("cannot issue a channel access token", 20)
        results.append(kn.counts(bid)["line"].get("delivered", 0))
        dn.stop()
        if n == 2:
            kn.ctl("cancel", bid)
    assert results == [2, 2, 0], results
    refused = [e for e in line4.events("token") if e["status"] == 400]
    assert refused and "limit" in refused[0]["reason"], refused
r4.stop()

# ---------------------------------------------------------------- [8]
ca = mkca()
line3 = FakeLine(out, "line3", ["--token", TOKEN, "--cert",
                                os.path.join(ca, "server.pem"), "--key",
                                os.path.join(ca, "server.key")])
tls_url = "https://localhost:%d" % line3.port
with tap.check("[8] https with line.ca_file: delivered; without it: refused, nothing sent"):
    k3 = Kairan(out, r2, email="outbox", name="kairan-tls", conf={
        "routes": {"line": "line"},
        "line": {"api_base": tls_url, "token": TOKEN, "timeout_ms": "5s",
                 "ca_file": os.path.join(ca, "ca.pem")},
        "queue": {"retry_base_ms": "100", "retry_cap_ms": "300",
                  "max_attempts": "2"},
        "http": {"listen": "127.0.0.1:%d" % free_port()},
    })
    d3 = k3.start()
    u = uid()
    ALL_IDS.add(u)
    bid = k3.submit(line_bcast([u], prefix="t1"))
    k3.wait_done(bid, 30)
    assert k3.counts(bid)["line"].get("delivered") == 1, k3.counts(bid)
    assert line3.delivered() == {u: 1}
    d3.stop()
    # The system CAs do not know the test CA: the peer is not trusted.
    del k3.sections["line"]["ca_file"]
    k3.write_conf()
    d3 = k3.start()
    u = uid()
    ALL_IDS.add(u)
    bid = k3.submit(line_bcast([u], prefix="t2"))
    k3.wait_done(bid, 30)
    assert k3.counts(bid)["line"].get("failed") == 1, k3.counts(bid)
    ent = [e for e in dlq(k3) if e["broadcast"] == bid]
    assert ent and "line transport" in ent[0]["reason"], ent
    assert u not in line3.delivered()
    d3.stop()

# Row 2 of SECURITY-PROMISES.md: a bad certificate is refused by the HTTP
# providers too (libcurl, adapters/http.c), even from the trusted CA.
for bad in ("wronghost", "expired"):
    fake = FakeLine(out, "line-" + bad, ["--token", TOKEN, "--cert",
                                         os.path.join(ca, bad + ".pem"), "--key",
                                         os.path.join(ca, bad + ".key")])
    with tap.check("[8] https with line.ca_file, a %s certificate: refused, "
                   "nothing sent" % bad):
        k4 = Kairan(out, r2, email="outbox", name="kairan-" + bad, conf={
            "routes": {"line": "line"},
            "line": {"api_base": "https://localhost:%d" % fake.port,
                     "token": TOKEN, "timeout_ms": "5s",
                     "ca_file": os.path.join(ca, "ca.pem")},
            "queue": {"retry_base_ms": "100", "retry_cap_ms": "300",
                      "max_attempts": "2"},
            "http": {"listen": "127.0.0.1:%d" % free_port()},
        })
        d4 = k4.start()
        u = uid()
        ALL_IDS.add(u)
        bid = k4.submit(line_bcast([u], prefix="t-" + bad))
        k4.wait_done(bid, 30)
        assert k4.counts(bid)["line"].get("failed") == 1, k4.counts(bid)
        ent = [e for e in dlq(k4) if e["broadcast"] == bid]
        assert ent and "line transport" in ent[0]["reason"], ent
        assert u not in fake.delivered() and not fake.requests(), \
            fake.requests()[:2]
        d4.stop()
    fake.stop()

# ---------------------------------------------------------------- [9]
SGKEY = "SG.test-" + secrets.token_hex(8)
sg = FakeSendGrid(out, "sendgrid", ["--token", SGKEY])


def sg_post(body, key=SGKEY, ctype="application/json"):
    req = urllib.request.Request(sg.url + "/v3/mail/send",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + key,
                                          "Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def sg_body(*addrs):
    return {"personalizations": [{"to": [{"email": a}]} for a in addrs],
            "from": {"email": "noreply@sakura.example.jp", "name": "桜高校"},
            "subject": "件名", "content": [{"type": "text/plain", "value": "本文"}]}


with tap.check("[9] fake SendGrid: 202 + X-Message-Id, bad key 401, carrier address 400"):
    st, hd, _ = sg_post(sg_body("a@example.jp", "b@example.jp"))
    assert st == 202 and hd.get("X-Message-Id"), st
    st, _, _ = sg_post(sg_body("a@example.jp"), key="SG.wrong")
    assert st == 401, st
    st, _, b = sg_post(sg_body("a@example.jp", "taro..yamada.@docomo.ne.jp"))
    assert st == 400, st
    err = json.loads(b)["errors"][0]
    assert err["field"] == "personalizations.1.to.0.email", err
    body = sg_body("a@example.jp")
    body["personalizations"][0]["headers"] = {"Subject": "x"}
    assert sg_post(body)[0] == 400
    body = sg_body(*["u%d@example.jp" % i for i in range(1001)])
    assert sg_post(body)[0] == 400
    assert sg_post(sg_body("a@example.jp"), ctype="text/plain")[0] == 400
    assert len(sg.requests()) == 1, sg.requests()

tap.diag("total %.1fs" % (time.monotonic() - T0))
tap.done()
