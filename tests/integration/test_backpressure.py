#!/usr/bin/python3
"""test_backpressure.py - expansion pauses while a channel's stream is
deeper than queue.max_depth, so Redis (and memory) stay bounded whatever
the broadcast size; the broadcast still completes."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa

tap = TAP()
out = tmpdir("backpressure")
N = scale(3000, minimum=1500)
DEPTH, PAGE = 300, 100

with Redis(out) as r, FakeSMTP(out) as smtp:
    smtp.set_control({"rules": [{"match": "@", "action": "delay",
                                 "seconds": 0.005}]})
    k = Kairan(out, r, smtp=smtp, conf={
        "queue": {"max_depth": str(DEPTH)},
        "dispatcher": {"expand_page": str(PAGE)},
        "smtp": {"connections": "2"}})
    d = k.start()
    with tap.check("the stream never grows past max_depth + one page"):
        bid = k.submit({"tenant": "t1", "subject": "件名", "body": "本文",
                        "channels": ["email"],
                        "recipients": [{"id": "b%05d" % i,
                                        "email": "b%05d@example.jp" % i}
                                       for i in range(N)]})
        deepest, samples = 0, 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            deepest = max(deepest, r.call("XLEN", "kairan:q:email:normal"))
            samples += 1
            if "done_ms" in k.bc(bid):
                break
            time.sleep(0.02)
        tap.diag("deepest stream: %d entries over %d samples (max_depth %d, "
                 "page %d, %d recipients)" % (deepest, samples, DEPTH, PAGE, N))
        tap.ok(deepest > DEPTH // 2, "the stream did fill up (the test bites)")
        tap.ok(deepest <= DEPTH + PAGE + 10,
               "bounded: %d <= max_depth + page" % deepest)
        h = k.wait_done(bid, 60)
        tap.eq(k.counts(bid)["email"].get("delivered"), N, "all delivered")
    d.stop()
tap.done()
