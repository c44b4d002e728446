#!/usr/bin/python3
"""test_takeover.py - jobs a kairand holds while they wait for a send slot
are not taken over by another kairand.

Another process takes over (XAUTOCLAIM) a job idle longer than
queue.claim_idle_ms in a consumer's pending list: the job of a stopped
process.  A live kairand holds more jobs than it has connections (they
wait for a slot), and behind a slow relay they can wait longer than that.
kairand resets their idle time (script "keep") while it holds them.

  [1] two kairands, one slow relay connection each, jobs waiting several
      times claim_idle_ms: every recipient gets exactly one message.
  [2] a stopped kairand's jobs are still taken over (the other one sends
      them).
  [3] a kairand frozen (SIGSTOP) past claim_idle_ms: the other takes its
      jobs; when it wakes it leaves those not yet sent to the other
      (logged), so only the few already handed to its connection can go
      twice.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_takeover.py
"""
import collections
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa

tap = TAP()
out = tmpdir("takeover")
N = 14
SEND_S = 0.6
CLAIM_MS = 2000

with Redis(out) as r, FakeSMTP(out) as smtp:
    smtp.set_control({"rules": [{"match": "@", "stage": "data",
                                 "action": "delay", "seconds": SEND_S}]})
    k = Kairan(out, r, smtp=smtp, conf={
        "smtp": {"connections": "1", "timeout_ms": "1500"},
        "dispatcher": {"drain_ms": "300"},
        "queue": {"claim_idle_ms": str(CLAIM_MS)}})

    with tap.check("[1] jobs held behind a slow relay are not taken over"):
        a = k.start(name="kairand-a")
        bid = k.submit({"tenant": "t1", "subject": "件名", "body": "本文",
                        "channels": ["email"], "priority": "urgent",
                        "recipients": [{"id": "h%02d" % i,
                                        "email": "h%02d@example.jp" % i}
                                       for i in range(N)]})
        # A reads its fill of jobs first; B starts and looks for idle ones.
        wait_for(lambda: r.call("XLEN", "kairan:q:email:urgent") >= 1, 10)
        time.sleep(0.3)
        b = k.start(name="kairand-b")
        h = k.wait_done(bid, 60)
        got = collections.Counter(smtp.delivered_rcpts())
        tap.diag("held %.1f s at most (%d jobs, %.1f s each, one connection "
                 "per process; claim_idle_ms %d)"
                 % (N * SEND_S / 2, N, SEND_S, CLAIM_MS))
        tap.eq(k.counts(bid)["email"].get("delivered"), N, "all delivered")
        tap.eq(sorted(a for a, c in got.items() if c > 1), [],
               "no recipient got two messages")
        tap.eq(len(got), N, "every recipient got one")

    with tap.check("[2] the jobs of a stopped kairand are still taken over"):
        smtp.set_control({"rules": [{"match": "@", "stage": "data",
                                     "action": "delay", "seconds": 0.2}]})
        b.stop()
        bid2 = k.submit({"tenant": "t1", "subject": "件名2", "body": "本文",
                         "channels": ["email"], "priority": "urgent",
                         "recipients": [{"id": "s%02d" % i,
                                         "email": "s%02d@example.jp" % i}
                                        for i in range(6)]})
        wait_for(lambda: any(x.startswith("s") for x in smtp.delivered_rcpts()),
                 20)
        a.stop(sig=signal.SIGKILL)
        b = k.start(name="kairand-b2")
        h = k.wait_done(bid2, 60)
        tap.eq(k.counts(bid2)["email"].get("delivered"), 6,
               "all delivered after the takeover")

    with tap.check("[3] a frozen kairand leaves jobs taken over to the other"):
        smtp.set_control({"rules": [{"match": "@", "stage": "data",
                                     "action": "delay", "seconds": 0.3}]})
        b.stop()
        a = k.start(name="kairand-a3")
        bid3 = k.submit({"tenant": "t1", "subject": "件名3", "body": "本文",
                         "channels": ["email"], "priority": "urgent",
                         "recipients": [{"id": "z%02d" % i,
                                         "email": "z%02d@example.jp" % i}
                                        for i in range(N)]})
        wait_for(lambda: any(x.startswith("z") for x in smtp.delivered_rcpts()),
                 20)
        a.kill(signal.SIGSTOP)
        b = k.start(name="kairand-b3")
        time.sleep(CLAIM_MS / 1000 * 2)
        a.kill(signal.SIGCONT)
        h = k.wait_done(bid3, 60)
        got = collections.Counter(x for x in smtp.delivered_rcpts()
                                  if x.startswith("z"))
        twice = sorted(x for x, c in got.items() if c > 1)
        tap.diag("sent twice: %s" % twice)
        tap.eq(k.counts(bid3)["email"].get("delivered"), N, "all delivered")
        tap.eq(len(got), N, "every recipient got at least one")
        tap.ok(len(twice) <= 4, "at most the few handed to the connection "
                                "went twice (%d)" % len(twice))
        wait_for(lambda: "taken over by another process" in a.stderr_text(), 10)
        tap.ok(True, "the frozen kairand logged the jobs it left")
    a.stop()
    b.stop()
tap.done()
