#!/usr/bin/python3
"""test_redis_states.py - what a Redis restart or an operator can do to
kairand's Redis state while it runs: the consumer groups are gone
(NOGROUP: kairand makes them again and goes on), the script cache is
flushed (NOSCRIPT: the scripts are sent again as EVAL), and Redis is
still loading its AOF (-LOADING: kairand waits and reconnects).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa

tap = TAP()
out = tmpdir("redis-states")


def bc(tag, n=20):
    return {"tenant": "t1", "subject": "件名 " + tag, "body": "本文",
            "channels": ["email"],
            "recipients": [{"id": "%s%d" % (tag, i),
                            "email": "%s%d@example.jp" % (tag, i)}
                           for i in range(n)]}


with Redis(out) as r:
    k = Kairan(out, r, email="outbox")
    d = k.start()
    wait_for(lambda: "ready" in d.stderr_text(), 15, what="kairand ready")
    with tap.check("NOGROUP: groups destroyed while running"):
        k.wait_done(k.submit(bc("a")), 30)
        for key in (b"kairan:broadcasts", b"kairan:q:email:normal",
                    b"kairan:q:email:urgent"):
            r.call("XGROUP", "DESTROY", key, "kairand")
        h = k.wait_done(k.submit(bc("b")), 30)
        tap.eq(k.counts(h["id"])["email"].get("delivered"), 20,
               "delivered after the groups were made again")
        tap.ok("recreating" in d.stderr_text() or
               "consumer group" in d.stderr_text(), "logged")
    with tap.check("NOSCRIPT: script cache flushed while running"):
        r.call("SCRIPT", "FLUSH")
        h = k.wait_done(k.submit(bc("c")), 30)
        tap.eq(k.counts(h["id"])["email"].get("delivered"), 20,
               "delivered after SCRIPT FLUSH")
    tap.ok(d.alive(), "kairand kept running")
    d.stop()
    tap.eq(d.returncode, 0, "clean stop")

with tap.check("LOADING: Redis still loading its AOF when kairand connects"):
    out2 = os.path.join(out, "loading")
    os.makedirs(out2, exist_ok=True)
    # key-load-delay (a Redis test knob) makes loading take seconds.
    with Redis(out2, appendonly=True,
               extra_args=("--key-load-delay", "100")) as r2:
        # A large AOF takes Redis a moment to load after a restart.
        cl = r2.client()
        for i in range(6):
            cl.pipeline([("SET", "pad:%d:%d" % (i, j), "x" * 20)
                         for j in range(5000)])
        k2 = Kairan(out2, r2, email="outbox", name="k2")
        r2.stop()
        d2 = k2.start()  # Redis is down: kairand retries
        r2.start(timeout=60)  # ... while it loads the AOF, then ready
        h = k2.wait_done(k2.submit(bc("d")), 60)
        tap.ok("Redis is loading its data set" in d2.stderr_text(),
               "kairand met -LOADING and said so")
        tap.eq(k2.counts(h["id"])["email"].get("delivered"), 20,
               "delivered once Redis had loaded")
        d2.stop()
tap.done()
