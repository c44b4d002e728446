#!/usr/bin/python3
"""test_push.py - app push end to end through kairand (issue 3, "Fakes and
tests"): routes.push = push, [fcm] and [apns] pointing at
tests/fakes/fake_fcm.js and fake_apns.js (HTTP/2 over TLS, the test CA),
a service account (RSA) and a .p8 key (EC P-256) made with the openssl CLI.

  [1] a broadcast to N recipients, each with an FCM and an APNs token ->
      every token got exactly one notification, with the broadcast's
      title, body, priority, expiry, collapse id and a UUID apns-id.
  [2] HTTP/2 really used (ALPN h2 on every request) and connections
      reused: the fakes saw no more send connections than configured.
  [3] 404 UNREGISTERED (FCM) and 410 Unregistered (APNs) -> the job ends
      failed with a "dead" reason after one request, never retried.
  [4] 429 + Retry-After (FCM QUOTA_EXCEEDED, APNs TooManyRequests) -> the
      retry comes no earlier than Retry-After (fake timestamps), then
      delivered.
  [5] the APNs provider token was not renewed under load: the fake saw
      one distinct JWT for the whole run, and no TooManyProviderTokenUpdates.
  [6] FCM access tokens that die early (fake refuses them after 1 s while
      announcing an hour) mid-broadcast -> exactly one token request per
      death, all in-flight 401s resent, no failed sends.
  [7] short-lived FCM tokens (expires_in 2 s) mid-broadcast -> renewed
      before expiry, one request per lifetime (no storm), no 401s, no
      failed sends.
  [8] APNs says ExpiredProviderToken to a token younger than 20 minutes
      -> replaced once (two JWTs), the replacement not again, jobs
      retried, then failed with the reason.
  [9] stall, reset stream, dropped connection, HTML page, 500, 503 ->
      retried once and delivered, on both providers.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_push.py
"""

import datetime
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("push")

SUBJECT = "【緊急】台風接近に伴う臨時休校"
BODY = "保護者各位\n明日は臨時休校とします。ご家庭で安全にお過ごしください。"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def fcm_token(tag, i):
    """An FCM registration token (the shape of real ones: id:APA91b...)."""
    return "c%s%04d:APA91bH-%s_%04d-kairanTestToken" % (tag, i, tag, i)


def apns_token(tag, i):
    """A 64-hex-digit APNs device token; tag (hex) makes it findable."""
    return ("%s%04d" % (tag, i)).ljust(64, "0")


def bcast(recipients, urgent=True, **kw):
    b = {"tenant": "sakura-hs", "category": "emergency",
         "priority": "urgent" if urgent else "normal",
         "subject": SUBJECT, "body": BODY, "channels": ["push"],
         "policy": "all", "recipients": recipients}
    b.update(kw)
    return b


def rcpt(rid, fcm=None, apns=None):
    p = []
    if fcm:
        p.append({"platform": "fcm", "token": fcm})
    if apns:
        p.append({"platform": "apns", "token": apns})
    return {"id": rid, "push": p}


def dlq(r):
    """Dead letters as dicts of str."""
    res = []
    for eid, kv in r.call("XRANGE", "kairan:dlq", "-", "+"):
        res.append({kv[i].decode(): kv[i + 1].decode("utf-8", "replace")
                    for i in range(0, len(kv), 2)})
    return res


def rstates(k, bid):
    """bc:<id>:r as {field: value}."""
    v = k.redis.call("HGETALL", "kairan:bc:%s:r" % bid) or []
    return {v[i].decode(): v[i + 1].decode("utf-8", "replace")
            for i in range(0, len(v), 2)}


def send_sessions(fake):
    """Connections that carried at least one notification request."""
    return {e.get("session") for e in fake.sends()
            if e.get("token") is not None}


def check_no_failures(k, bid, channel="push"):
    """Every job of the broadcast delivered (counts n:push:<state>)."""
    c = k.counts(bid).get(channel, {})
    bad = {s: n for s, n in c.items() if s not in ("delivered", "total") and n}
    assert not bad and c.get("delivered") == c.get("total"), \
        "not all delivered: %r" % c


r = Redis(out)
fcm = FakeFCM(out, max_streams=100)
apns = FakeAPNs(out)
QUEUE = {"retry_base_ms": "100", "retry_cap_ms": "500", "max_attempts": "8"}
NO_HTTP = {"listen": ""}   # kairand's HTTP port is not what this tests
k = Kairan(out, r, conf={
    "routes": {"push": "push"},
    "fcm": fcm.conf(connections=2),
    "apns": apns.conf(connections=1),
    "queue": QUEUE, "http": NO_HTTP,
})
d = k.start()

# ---------------------------------------------------------------- [1]
N = scale(400, minimum=10)
fcm1 = [fcm_token("a", i) for i in range(N)]
apns1 = [apns_token("a1", i) for i in range(N)]
bid1 = None
with tap.check("[1] %d recipients x (FCM + APNs): every token exactly once" % N):
    t = time.time()
    bid1 = k.submit(bcast([rcpt("r-%d" % i, fcm1[i], apns1[i]) for i in range(N)]))
    h = k.wait_done(bid1, 60)
    tap.diag("[1] %d notifications in %.2fs" % (2 * N, time.time() - t))
    check_no_failures(k, bid1)
    assert k.counts(bid1)["push"].get("delivered") == 2 * N, k.counts(bid1)
    got = [m for m in fcm.messages() if m["message"]["data"]["bc"] == bid1]
    assert sorted(m["token"] for m in got) == sorted(fcm1), \
        "FCM: %d notifications for %d tokens, %d distinct" % (
            len(got), N, len({m["token"] for m in got}))
    gota = [m for m in apns.messages() if m["payload"].get("bc") == bid1]
    assert sorted(m["token"] for m in gota) == sorted(apns1), \
        "APNs: %d notifications for %d tokens, %d distinct" % (
            len(gota), N, len({m["token"] for m in gota}))

with tap.check("[1] FCM message: title, body, data, android priority/ttl, apns headers"):
    m = [x for x in fcm.messages() if x["message"]["data"]["bc"] == bid1][0]["message"]
    assert m["notification"] == {"title": SUBJECT, "body": BODY}, m["notification"]
    assert m["data"] == {"bc": bid1, "kind": "emergency"}, m["data"]
    assert m["android"]["priority"] == "HIGH", m["android"]
    assert m["android"]["collapse_key"] == bid1
    ttl = int(m["android"]["ttl"].rstrip("s"))
    # default_ttl is 24 h: what is left of it when sent
    assert 86000 < ttl <= 86400, ttl
    assert m["apns"]["headers"]["apns-priority"] == "10"
    assert m["apns"]["headers"]["apns-push-type"] == "alert"

with tap.check("[1] APNs request: headers, payload, stable UUID apns-id"):
    reqs = [x for x in apns.messages() if x["payload"].get("bc") == bid1]
    x = reqs[0]
    hd = x["headers"]
    assert hd["apns-topic"] == apns.topic, hd
    assert hd["apns-push-type"] == "alert", hd
    assert hd["apns-priority"] == "10", hd
    assert hd["apns-collapse-id"] == bid1, hd
    exp = int(hd["apns-expiration"])
    assert abs(exp - (time.time() + 86400)) < 600, (exp, time.time())
    assert x["payload"]["aps"]["alert"] == {"title": SUBJECT, "body": BODY}, x["payload"]
    assert x["payload"]["aps"]["sound"] == "default"
    ids = [y["apns_id"] for y in reqs]
    assert all(UUID_RE.match(i) for i in ids), [i for i in ids if not UUID_RE.match(i)][:3]
    assert len(set(ids)) == len(ids), "apns-id repeated across different jobs"

# ---------------------------------------------------------------- [2]
with tap.check("[2] HTTP/2 on every request; connections reused (FCM <= 2, APNs <= 1)"):
    protos = {m["proto"] for m in fcm.messages()}
    assert protos == {"2.0"}, protos
    alpns = {m["alpn"] for m in apns.messages()}
    assert alpns == {"h2"}, alpns
    assert not apns.events("refused_http1")
    fs_, as_ = send_sessions(fcm), send_sessions(apns)
    tap.diag("[2] FCM send connections %d, APNs %d, for %d + %d requests"
             % (len(fs_), len(as_), len(fcm.sends()), len(apns.sends())))
    assert 1 <= len(fs_) <= 2, fs_
    assert len(as_) == 1, as_

# ---------------------------------------------------------------- [3]
fcm.set_control({"rules": [{"match": "dead", "action": "404"},
                           {"match": "slow", "action": "429", "retry_after": "2",
                            "times": 1}]})
apns.set_control({"rules": [{"match": "dead", "action": "410"},
                            {"match": "5105", "action": "429", "retry_after": "2",
                             "times": 1}]})
fdead = fcm_token("dead", 1)
adead = apns_token("dead", 1).replace("dead", "dead")   # hex: "dead" is hex
fslow = fcm_token("slow", 1)
aslow = apns_token("5105", 1)
bid3 = None
with tap.check("[3] 404 UNREGISTERED / 410 Unregistered -> failed, reason says dead, one request"):
    bid3 = k.submit(bcast([rcpt("r-dead", fdead, adead), rcpt("r-slow", fslow, aslow),
                           rcpt("r-ok", fcm_token("b", 1), apns_token("b1", 1))]))
    k.wait_done(bid3, 30)
    c = k.counts(bid3)["push"]
    assert c.get("failed") == 2 and c.get("delivered") == 4, c
    reasons = [e["reason"] for e in dlq(r) if bid3 in json.dumps(e)]
    assert len(reasons) == 2, dlq(r)
    assert all("dead" in x for x in reasons), reasons
    assert any("UNREGISTERED" in x for x in reasons) and any("Unregistered" in x for x in reasons), reasons
    assert fdead not in json.dumps(reasons) and adead not in json.dumps(reasons), "token in reason"
    nf = [e for e in fcm.sends() if e.get("token") == fdead]
    na = [e for e in apns.sends() if e.get("token") == adead]
    assert len(nf) == 1 and len(na) == 1, (len(nf), len(na))

# ---------------------------------------------------------------- [4]
with tap.check("[4] 429 + Retry-After: 2 -> retried no earlier than 2 s later, delivered"):
    for fake, tok in ((fcm, fslow), (apns, aslow)):
        evs = [e for e in fake.sends() if e.get("token") == tok]
        assert [e["status"] for e in evs] == [429, 200], evs
        gap = evs[1]["ts"] - evs[0]["ts"]
        tap.diag("[4] %s: retry %.3fs after the 429" % (fake.name, gap))
        assert gap >= 2.0, "retried after %.3fs, Retry-After was 2" % gap
fcm.clear_control()
apns.clear_control()

# ---------------------------------------------------------------- [5]
with tap.check("[5] one APNs provider token for the whole run, never too many updates"):
    jw = apns.jwts()
    assert len(jw) == 1, jw
    assert not [e for e in apns.sends() if e.get("reason") == "TooManyProviderTokenUpdates"]
    assert {e.get("jwt") for e in apns.sends() if e.get("status") == 200} == {1}
    # kairand signed exactly one token too
    assert d.stderr_text().count("provider token renewed") == 1
    # and fetched one FCM access token so far (an hour of validity)
    assert len(fcm.token_events()) == 1, fcm.token_events()

d.stop()
assert d.returncode == 0, d.returncode

# ---------------------------------------------------------------- [6]
# FCM tokens refused after 1 s while announced for an hour: every death is
# seen as a burst of 401s on the streams in flight.  Each answer is held
# 0.35 s so that the broadcast lasts a few token lifetimes.  (Fewer than
# 1000 sends per connection: libcurl 7.88 resets finished streams, and
# Node's nghttp2 answers 1000 resets with GOAWAY; see bench/push_bench.py.)
M = scale(800, minimum=400)
DELAY = {"rules": [{"match": "", "action": "delay", "seconds": 0.35}]}
fcm6 = FakeFCM(out, name="fcm6", token_ttl=3600, token_lifetime=1,
               control=DELAY)
k6 = Kairan(out, r, name="kairan6", conf={
    "routes": {"push": "push"}, "fcm": fcm6.conf(connections=1), "queue": QUEUE,
    "http": NO_HTTP})
d6 = k6.start()
toks6 = [fcm_token("six", i) for i in range(M)]
with tap.check("[6] %d sends while access tokens die every second: one refresh per death, none failed" % M):
    t = time.time()
    bid6 = k6.submit(bcast([rcpt("r6-%d" % i, fcm=toks6[i]) for i in range(M)]))
    k6.wait_done(bid6, 60)
    check_no_failures(k6, bid6)
    got = [m["token"] for m in fcm6.messages()]
    assert sorted(got) == sorted(toks6), "%d sent for %d tokens" % (len(got), M)
    issued = [e["id"] for e in fcm6.token_events()]
    died = sorted({e["auth"] for e in fcm6.sends() if e.get("code") == "EXPIRED"},
                  key=lambda s: int(s[1:]))
    tap.diag("[6] %.2fs; tokens issued %s; refused as expired: %s; 401s %d"
             % (time.time() - t, issued, died,
                len([e for e in fcm6.sends() if e.get("code") == "EXPIRED"])))
    assert len(died) >= 1, "no token died mid-broadcast (too fast?)"
    # exactly one new token per token that died: the first token, plus one
    # for each death (never one per 401)
    assert len(issued) == len(died) + 1, (issued, died)
    assert not fcm6.events("token_refused")
    assert "route paused" not in d6.stderr_text()
d6.stop()
fcm6.stop()

# ---------------------------------------------------------------- [7]
fcm7 = FakeFCM(out, name="fcm7", token_ttl=2, control=DELAY)
k7 = Kairan(out, r, name="kairan7", conf={
    "routes": {"push": "push"}, "fcm": fcm7.conf(connections=1), "queue": QUEUE,
    "http": NO_HTTP})
d7 = k7.start()
toks7 = [fcm_token("sev", i) for i in range(M)]
with tap.check("[7] %d sends with 2-second tokens: renewed before expiry, no storm, no 401" % M):
    t = time.time()
    bid7 = k7.submit(bcast([rcpt("r7-%d" % i, fcm=toks7[i]) for i in range(M)]))
    k7.wait_done(bid7, 60)
    took = time.time() - t
    check_no_failures(k7, bid7)
    got = [m["token"] for m in fcm7.messages()]
    assert sorted(got) == sorted(toks7), "%d sent for %d tokens" % (len(got), M)
    ts = [e["ts"] for e in fcm7.token_events()]
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    n401 = len([e for e in fcm7.sends() if e.get("status") == 401])
    tap.diag("[7] %.2fs; %d tokens, gaps %s; 401s %d"
             % (took, len(ts), ["%.2f" % g for g in gaps], n401))
    assert len(ts) >= 2, "the broadcast outlived no token (%.2fs)" % took
    # one renewal per lifetime: renewed in the last quarter, never sooner
    assert all(g >= 1.4 for g in gaps), gaps
    assert len(ts) <= 2 + int(took / 1.4), (len(ts), took)
    # requests still in flight when a token expires may meet a 401; they
    # are resent with the new token, never a reason to refresh again
    assert n401 <= 100, n401
d7.stop()
fcm7.stop()

# ---------------------------------------------------------------- [8]
# APNs calls every provider token expired (the fake's --token-max-age-s
# -1: any age is too old; a clock far ahead of ours).  kairand must not answer with a new token
# per 403: a token younger than 20 minutes is replaced once (APNs may have
# a reason: PROVIDERS.md 3), and that early replacement is kept; the jobs
# tempfail (and end in the DLQ after queue.max_attempts) with a reason
# that says so.
apns8 = FakeAPNs(out, name="apns8", token_max_age_s=-1)
k8 = Kairan(out, r, name="kairan8", conf={
    "routes": {"push": "push"}, "apns": apns8.conf(connections=1),
    "queue": dict(QUEUE, max_attempts="4"), "http": NO_HTTP})
d8 = k8.start()
with tap.check("[8] ExpiredProviderToken from a young token: replaced once, no storm, jobs kept then failed with the reason"):
    bid8 = k8.submit(bcast([rcpt("r8-0", apns=apns_token("e8", 0))]))
    wait_for(lambda: apns8.sends(), 10, what="a first APNs request")
    bid8b = k8.submit(bcast([rcpt("r8-%d" % i, apns=apns_token("e8", i))
                             for i in range(1, 21)]))
    k8.wait_done(bid8b, 60)
    c = k8.counts(bid8b)["push"]
    assert c.get("failed") == 20, c
    reasons = [e["reason"] for e in dlq(r) if bid8b in json.dumps(e)]
    assert len(reasons) == 20 and all("ExpiredProviderToken" in x and "20 minutes" in x
                                      for x in reasons), reasons[:2]
    assert len(apns8.jwts()) == 2, apns8.jwts()
    assert not apns8.events("jwt_refused"), "TooManyProviderTokenUpdates"
    # Only the second broadcast's: the first one's push may itself leave
    # after the fake's 1 s (a slow start under the sanitizers) and be
    # refused 4 times too.
    toks8b = {apns_token("e8", i) for i in range(1, 21)}
    n403 = len([e for e in apns8.sends() if e.get("reason") == "ExpiredProviderToken"
                and e.get("token") in toks8b])
    assert n403 == 20 * 4, n403   # every attempt went, none with a third token
    assert d8.stderr_text().count("provider token renewed") == 2
    assert d8.stderr_text().count("refused a provider token younger than 20 minutes") == 1, \
        "warned more than once per token"
d8.stop()
apns8.stop()

# ---------------------------------------------------------------- [9]
# Transport faults, once each per token: a stalled answer (past
# timeout_ms), a reset stream, a dropped connection, a proxy's HTML page,
# 500 and 503 -> tempfail, retried, delivered; nothing sent a third time.
FAULTS = ["stall", "reset", "drop", "garbage", "500", "503"]
fcm9 = FakeFCM(out, name="fcm9", control={"rules": [
    {"match": "f9" + a, "action": a, "times": 1} for a in FAULTS]})
apns9 = FakeAPNs(out, name="apns9", control={"rules": [
    {"match": "9%d9" % i, "action": a, "times": 1} for i, a in enumerate(FAULTS)]})
k9 = Kairan(out, r, name="kairan9", conf={
    "routes": {"push": "push"}, "fcm": fcm9.conf(timeout_ms="1s"),
    "apns": apns9.conf(timeout_ms="1s"), "queue": QUEUE, "http": NO_HTTP})
d9 = k9.start()
with tap.check("[9] stall, reset, drop, garbage, 500, 503 -> retried, delivered"):
    f9 = [fcm_token("f9" + a, 0) for a in FAULTS]
    a9 = [("9%d9" % i).ljust(64, "c") for i in range(len(FAULTS))]
    bid9 = k9.submit(bcast([rcpt("r9-%d" % i, f9[i], a9[i]) for i in range(len(FAULTS))]))
    k9.wait_done(bid9, 60)
    check_no_failures(k9, bid9)
    for fake, toks in ((fcm9, f9), (apns9, a9)):
        for t in toks:
            evs = [e for e in fake.sends() if e.get("token") == t]
            faulted = [e for e in evs if e.get("rule")]
            assert len(faulted) == 1 and len(evs) >= 2, \
                "%s %s: %r" % (fake.name, t[:12], evs)
        # A dropped connection can cost an answer already given: libcurl
        # then sends that request again (at least once, never lost).
        assert set(fake.tokens_delivered()) == set(toks), fake.name
d9.stop()

# ---------------------------------------------------------------- [10]
# An ack broadcast: every notification carries the recipient's personal
# confirmation link, in FCM data.kairan_ack_url and the notification body,
# in the APNs custom key kairan_ack_url and the alert body; the link opens
# the confirmation page (200).  A body far over 4096 bytes is cut before
# the link, never through it.
import urllib.request  # noqa: E402

fcm10 = FakeFCM(out, name="fcm10")
apns10 = FakeAPNs(out, name="apns10")
port10 = free_port()
base10 = "http://127.0.0.1:%d" % port10
k10 = Kairan(out, r, name="kairan10", conf={
    "routes": {"push": "push"}, "fcm": fcm10.conf(), "apns": apns10.conf(),
    "queue": QUEUE,
    "http": {"listen": "127.0.0.1:%d" % port10, "public_url": base10}})
d10 = k10.start()
d10.wait_output('"listening"', 15)
LINK_RE = re.compile(re.escape(base10) + r"/a/[A-Za-z0-9_.-]+")
LONG = "長い本文です。" * 800          # ~16.8 KB: must be cut to fit 4096
WORDS = "確認のため、次のリンクを開いて「確認しました」を押してください。"


def link_in_text(text, link):
    """The text ends with the words and the whole link after the body."""
    return text.endswith("\n\n%s\n%s" % (WORDS, link))


with tap.check("[10] ack broadcast: the personal link in FCM data + body, APNs key + alert"):
    rc10 = [rcpt("r10-%d" % i, fcm_token("ten", i), apns_token("10", i))
            for i in range(3)]
    bid10 = k10.submit(bcast(rc10, ack=True))
    k10.wait_done(bid10, 30)
    check_no_failures(k10, bid10)
    fm = [m["message"] for m in fcm10.messages() if m["message"]["data"]["bc"] == bid10]
    am = [m["payload"] for m in apns10.messages() if m["payload"].get("bc") == bid10]
    assert len(fm) == 3 and len(am) == 3, (len(fm), len(am))
    links = set()
    for m in fm:
        link = m["data"].get("kairan_ack_url")
        assert link and LINK_RE.fullmatch(link), m["data"]
        assert m["notification"]["body"] == BODY + "\n\n%s\n%s" % (WORDS, link), \
            m["notification"]["body"]
        links.add(link)
    for m in am:
        link = m.get("kairan_ack_url")
        assert link and LINK_RE.fullmatch(link), m
        assert "kairan_ack_url" not in m["aps"], m["aps"]
        assert m["aps"]["alert"]["body"] == BODY + "\n\n%s\n%s" % (WORDS, link), \
            m["aps"]["alert"]
        links.add(link)
    # one personal link per recipient, the same on both platforms
    assert len(links) == 3, links

with tap.check("[10] the pushed links are valid: GET answers the confirmation page"):
    for link in sorted(links):
        with urllib.request.urlopen(link, timeout=10) as resp:
            page = resp.read().decode("utf-8")
            assert resp.status == 200, resp.status
        assert SUBJECT in page, page[:200]
    # an altered link is refused: the pushed one is the signed one
    bad = sorted(links)[0][:-2] + ("AA" if not sorted(links)[0].endswith("AA") else "BB")
    try:
        urllib.request.urlopen(bad, timeout=10)
        assert False, "an altered link was accepted"
    except urllib.error.HTTPError as e:
        assert e.code == 404, e.code

with tap.check("[10] a body far over 4096 bytes is cut before the link, the link whole"):
    bidl = k10.submit(bcast([rcpt("r10-long", fcm_token("tenlong", 0),
                                  apns_token("10a", 0))], ack=True, body=LONG))
    k10.wait_done(bidl, 30)
    check_no_failures(k10, bidl)
    fm = [m for m in fcm10.messages() if m["message"]["data"]["bc"] == bidl]
    am = [m for m in apns10.messages() if m["payload"].get("bc") == bidl]
    assert len(fm) == 1 and len(am) == 1, (len(fm), len(am))
    fb = fm[0]["message"]["notification"]["body"]
    flink = fm[0]["message"]["data"]["kairan_ack_url"]
    ab = am[0]["payload"]["aps"]["alert"]["body"]
    alink = am[0]["payload"]["kairan_ack_url"]
    assert flink == alink and LINK_RE.fullmatch(flink), (flink, alink)
    for b in (fb, ab):
        assert link_in_text(b, flink), b[-300:]
        cut = b[:-len("\n\n%s\n%s" % (WORDS, flink))]
        assert cut.endswith("…") and LONG.startswith(cut[:-1]), cut[-40:]
        assert len(cut) > 100, len(cut)   # the body was cut, not dropped
    assert fm[0]["bytes"] <= 4096, fm[0]["bytes"]
d10.stop()
fcm10.stop()
apns10.stop()

tap.diag("test_push: %.1fs" % (time.monotonic() - T0))
tap.done()
