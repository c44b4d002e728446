#!/usr/bin/python3
"""test_apns_token.py - one APNs provider token per team and key, shared by
every kairand through Redis (adapters/apns_token.c, dispatcher/cred.c,
model/cred.h), against tests/fakes/fake_apns.js, which refuses what Apple
refuses: a new token less than 20 minutes after the team's current one
(429 TooManyProviderTokenUpdates, --token-window-s 1200: the whole test
runs inside that window, so any second token not asked for by APNs is
caught) and a token APNs calls expired (403 ExpiredProviderToken).

Two kairand processes of one installation on one redis-server:
  [1] both start together and send one broadcast: the fake saw one token,
      no 429; the record cred:apns:<team>.<kid>.<fp> holds it sealed, its
      iat the token's.
  [2] a restarted process adopts the stored token (the fake sees no new
      one), and sends with it.
  [3] the fake calls the token expired (as APNs would): exactly one of the
      two processes renews it, the other adopts the new one; the fake saw
      exactly two tokens, no 429; everything delivered.
  [4] kairanctl key add + rekey re-seals the record (the new key id, the
      same generation and token); a process restarted with the new key
      file adopts it (still no new token).
  [5] a record Redis cannot give (a key of another type): a process signs
      its own token (logged) and pushes go on.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_apns_token.py
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("apns_token")

QUEUE = {"retry_base_ms": "100", "retry_cap_ms": "500", "max_attempts": "8"}


def apns_token(tag, i):
    return ("%s%04d" % (tag, i)).ljust(64, "0")


def bcast(tag, n):
    return {"tenant": "sakura-hs", "category": "emergency", "priority": "urgent",
            "subject": "【緊急】臨時休校", "body": "明日は臨時休校とします。",
            "channels": ["push"], "policy": "all",
            "recipients": [{"id": "r-%s-%d" % (tag, i),
                            "push": [{"platform": "apns",
                                      "token": apns_token(tag, i)}]}
                           for i in range(n)]}


def log_count(proc, needle):
    return proc.stderr_text().count(needle)


r = Redis(out)
apns = FakeAPNs(out, name="apns", token_window_s=1200)
k = Kairan(out, r, conf={"routes": {"push": "push"},
                         # the timer reads the store every 0.5-0.6 s
                         "apns": apns.conf(connections=1,
                                           token_check_ms="500ms"),
                         "queue": QUEUE, "http": {"listen": ""}})


def cred_keys():
    return [x.decode() for x in r.call("KEYS", "kairan:cred:*")]


def record():
    ks = cred_keys()
    assert len(ks) == 1, ks
    v = r.call("HGETALL", ks[0])
    return {v[i].decode(): v[i + 1].decode() for i in range(0, len(v), 2)}


def send_until(procs, tag, n, pred, what, tries=6):
    """Send broadcasts of n pushes (tag + try number) until pred() holds
    (which process takes which job is the consumer group's choice);
    returns the broadcasts."""
    bids = []
    for t in range(tries):
        bid = k.submit(bcast("%s%d" % (tag, t), n))
        bids.append(bid)
        h = k.wait_done(bid, 60)
        assert k.counts(bid).get("push", {}).get("delivered") == n, h
        if pred():
            return bids
    raise AssertionError("%s: not after %d broadcasts (%s)" % (
        what, tries, [p.stderr_text()[-1500:] for p in procs]))


def no_429():
    assert not apns.events("jwt_refused"), apns.events("jwt_refused")
    assert not [e for e in apns.sends() if e.get("status") == 429]


# ---------------------------------------------------------------- [1]
da = k.start(name="kairand-a")
db = k.start(name="kairand-b")
with tap.check("[1] two processes started together: one token, shared, sealed in Redis"):
    both = lambda: all(log_count(p, "provider token ") >= 1 for p in (da, db))
    send_until((da, db), "a1", 40, both, "both processes sending")
    assert len(apns.jwts()) == 1, apns.jwts()
    no_429()
    renewed = log_count(da, "provider token renewed") + log_count(db, "provider token renewed")
    adopted = log_count(da, "provider token adopted") + log_count(db, "provider token adopted")
    assert renewed == 1 and adopted == 1, (renewed, adopted)
    rec = record()
    key = cred_keys()[0]
    assert key.startswith("kairan:cred:apns:%s.%s." % (apns.team_id, apns.key_id)), key
    assert rec["n"] == "1" and rec["early"] == "0", rec
    assert rec["iat"] == str(apns.jwts()[0]["iat"] * 1000), (rec, apns.jwts())
    # sealed: no JWT header in clear ('{"alg"' or '{"kid"' in base64url;
    # "eyJ" alone turns up in random ciphertext, ~1 run in 500)
    assert rec["v"].startswith("k1.") and "eyJhbGciOi" not in rec["v"] and \
        "eyJraWQiOi" not in rec["v"], rec["v"][:20]
    assert 0 < r.call("PTTL", key) <= 2 * 3600 * 1000

# ---------------------------------------------------------------- [2]
with tap.check("[2] a restarted process adopts the stored token"):
    db.stop()
    da.stop()          # the restarted one alone takes the next jobs
    db2 = k.start(name="kairand-b2")
    send_until((db2,), "b2", 10, lambda: log_count(db2, "provider token adopted") == 1,
               "the restarted process adopting")
    assert log_count(db2, "provider token renewed") == 0
    assert len(apns.jwts()) == 1, apns.jwts()
    no_429()
    assert record()["n"] == "1"
    da2 = k.start(name="kairand-a2")

# ---------------------------------------------------------------- [3]
with tap.check("[3] APNs calls the token expired: exactly one renewal, shared by both"):
    apns.set_control({"expire_jwts": [1]})
    both = lambda: all("generation\":\"2" in p.stderr_text() for p in (da2, db2))
    send_until((da2, db2), "c3", 40, both, "both processes on the new token")
    assert len(apns.jwts()) == 2, apns.jwts()
    no_429()
    renewed = log_count(da2, "provider token renewed") + log_count(db2, "provider token renewed")
    assert renewed == 1, renewed
    rec = record()
    assert rec["n"] == "2" and rec["early"] == "1", rec
    assert rec["iat"] == str(apns.jwts()[1]["iat"] * 1000)
    # the first token was refused; the last broadcast went with the second
    assert [e for e in apns.sends() if e.get("reason") == "ExpiredProviderToken"]
    assert {m["jwt"] for m in apns.messages()[-40:]} == {2}

# ---------------------------------------------------------------- [4]
with tap.check("[4] key add + rekey re-seal the record; a restart with the new key adopts it"):
    before = record()
    cp = k.ctl("key", "add", k.key_file)
    assert cp.returncode == 0, cp.stderr
    cp = k.ctl("rekey", "--json")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    rep = json.loads(cp.stdout)
    assert rep["credentials"] == 1 and rep["credentials_rekeyed"] == 1, rep
    after = record()
    assert after["v"].startswith("k2.") and after["v"] != before["v"], after["v"][:8]
    assert {x: after[x] for x in ("n", "iat", "early")} == \
        {x: before[x] for x in ("n", "iat", "early")}
    da2.stop()
    db2.stop()
    da3 = k.start(name="kairand-a3")
    send_until((da3,), "d4", 10, lambda: log_count(da3, "provider token adopted") == 1,
               "adopting the re-sealed token")
    assert log_count(da3, "provider token renewed") == 0
    assert "cannot be used" not in da3.stderr_text()
    assert len(apns.jwts()) == 2, apns.jwts()
    no_429()
    da3.stop()

# ---------------------------------------------------------------- [5]
with tap.check("[5] Redis cannot give the record: the process signs its own, pushes go on"):
    key = cred_keys()[0]
    r.call("DEL", key)
    r.call("SET", key, "not a hash")
    # APNs is asked for a new token here: let it (the current one expired)
    apns.set_control({"expire_jwts": [1, 2]})
    da4 = k.start(name="kairand-a4")
    send_until((da4,), "e5", 10, lambda: log_count(da4, "provider token renewed") == 1,
               "a token of its own")
    assert "shared provider token cannot be used" in da4.stderr_text()
    assert "this process only" in da4.stderr_text()
    assert r.call("GET", key) == b"not a hash"
    assert len(apns.jwts()) == 3, apns.jwts()
    no_429()
    da4.stop()

apns.stop()
tap.diag("test_apns_token: %.1fs" % (time.monotonic() - T0))
tap.done()
