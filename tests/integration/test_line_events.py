#!/usr/bin/python3
"""test_line_events.py - LINE follow / unfollow events apply in the order
of their own timestamps, not of their arrival (issue 11, item 8: a
redelivered old "unfollow" marked a user dead again).

kairand with line.channel_secret; events POSTed to /line/webhook with a
good X-Line-Signature (HMAC-SHA256 of the body, as LINE signs it).
  [1] unfollow (t=2000) -> dead; follow (t=3000) -> alive; the old
      unfollow redelivered (t=2000, isRedelivery) -> still alive.
  [2] unfollow (t=4000) -> dead; the old follow redelivered (t=3000) ->
      still dead.
  [3] one body with a user's events out of order (follow t=6000, then
      unfollow t=5000): the newer one wins.
  [4] an event without a timestamp after one with: ignored.
  [5] the per-user record line:event_ms is keyed by the blind index (32
      hex digits), never the user id, and holds the latest time applied;
      no user id anywhere in Redis.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_line_events.py
"""

import base64
import hashlib
import hmac
import json
import os
import re
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("lineev")
SECRET = "line-channel-secret-for-tests"
U1 = "U" + "4af4980629a1b2c3d4e5f60718293a4b"
U2 = "U" + "0123456789abcdef0123456789abcdef"


def hook(port, events):
    body = json.dumps({"destination": "Uxxx", "events": events}).encode()
    sig = base64.b64encode(hmac.new(SECRET.encode(), body,
                                    hashlib.sha256).digest()).decode()
    req = urllib.request.Request(
        "http://127.0.0.1:%d/line/webhook" % port, data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Line-Signature": sig})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def ev(kind, uid, ts, redelivery=False):
    e = {"type": kind, "mode": "active",
         "source": {"type": "user", "userId": uid},
         "webhookEventId": "01H%d" % (ts or 0),
         "deliveryContext": {"isRedelivery": redelivery}}
    if ts is not None:
        e["timestamp"] = ts
    return e


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port},
                     "line": {"channel_secret": SECRET}})
    P = k.prefix
    d = k.start()
    d.wait_output('"listening"', 15)

    def dead():
        return redis.call("SCARD", P + "dead:line")

    def post(*events):
        st = hook(port, list(events))
        assert st == 200, st

    with tap.check("[1] a redelivered old unfollow does not mark a user dead "
                   "again"):
        post(ev("unfollow", U1, 2000))
        assert dead() == 1
        post(ev("follow", U1, 3000))
        assert dead() == 0
        post(ev("unfollow", U1, 2000, redelivery=True))
        assert dead() == 0, "the old unfollow was applied"

    with tap.check("[2] a redelivered old follow does not revive a user"):
        post(ev("unfollow", U1, 4000))
        assert dead() == 1
        post(ev("follow", U1, 3000, redelivery=True))
        assert dead() == 1, "the old follow was applied"

    with tap.check("[3] events out of order in one body: the newer wins"):
        post(ev("follow", U2, 6000), ev("unfollow", U2, 5000))
        assert dead() == 1  # U1 only
        post(ev("unfollow", U2, 7000), ev("follow", U1, 8000))
        assert dead() == 1  # U2 only now

    with tap.check("[4] an event without a timestamp after one with: ignored"):
        post(ev("follow", U2, None))
        assert dead() == 1

    with tap.check("[5] line:event_ms: blind indexes and the latest time, no "
                   "user id in Redis"):
        h = redis.call("HGETALL", P + "line:event_ms")
        m = {h[i].decode(): int(h[i + 1]) for i in range(0, len(h), 2)}
        assert len(m) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", x) for x in m), m
        assert sorted(m.values()) == [7000, 8000], m
        for key in redis.call("KEYS", "*"):
            t = redis.call("TYPE", key)
            t = t.decode() if isinstance(t, bytes) else t
            vals = {"hash": lambda: redis.call("HGETALL", key),
                    "set": lambda: redis.call("SMEMBERS", key),
                    "string": lambda: [redis.call("GET", key)]}.get(
                        t, lambda: [])()
            blob = b"\0".join([key] + [v for v in vals if isinstance(v, bytes)])
            assert U1.encode() not in blob and U2.encode() not in blob, key

    d.stop()
    tap.ok(d.returncode == 0, "kairand stops cleanly", d.stderr_text()[-2000:])

tap.done()
