#!/usr/bin/python3
"""test_slow_relay.py - a relay that is slow to answer the final "." must
not stall kairand.

RFC 5321 4.5.3.2.6 gives a relay up to 10 minutes to answer the end of
DATA (content scanning).  libcurl waits for that answer inside its "done"
step, blocking (curl issue 8555).  kairand runs each SMTP connection on its
own thread, so while one connection waits:

  [1] the other connections keep delivering;
  [2] the event loop keeps answering (/healthz, the HTTP API);
  [3] the slow message is still delivered, once.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_slow_relay.py
"""
import http.client
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa

tap = TAP()
out = tmpdir("slowrelay")
DELAY = 4.0
FAST = 30

with Redis(out) as r, FakeSMTP(out) as smtp:
    smtp.set_control({"rules": [{"match": "slow@", "stage": "data",
                                 "action": "delay", "seconds": DELAY}]})
    port = free_port()
    k = Kairan(out, r, smtp=smtp, conf={
        "smtp": {"connections": "3"},
        "http": {"listen": "127.0.0.1:%d" % port}})
    d = k.start()
    d.wait_output('"listening"', 15)

    def health_ms():
        t = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/healthz")
        c.getresponse().read()
        c.close()
        return (time.monotonic() - t) * 1000

    # The slow recipient first, so that it holds a connection while the
    # others are sent.
    rcpts = [{"id": "slow", "email": "slow@example.jp"}] + [
        {"id": "f%03d" % i, "email": "f%03d@example.jp" % i}
        for i in range(FAST)]
    t0 = time.monotonic()
    bid = k.submit({"tenant": "t1", "subject": "件名", "body": "本文",
                    "channels": ["email"], "priority": "urgent",
                    "recipients": rcpts})
    worst = 0.0
    fast_done = None
    while time.monotonic() - t0 < DELAY - 0.5:
        worst = max(worst, health_ms())
        got = smtp.delivered_rcpts()
        if fast_done is None and sum(1 for a in got if a.startswith("f")) == FAST:
            fast_done = time.monotonic() - t0
        time.sleep(0.05)

    with tap.check("[1] the other connections deliver while one waits for its final reply"):
        tap.diag("all %d others delivered %.2f s after submit (the slow "
                 "reply takes %.1f s)" % (FAST, fast_done or -1, DELAY))
        tap.ok(fast_done is not None and fast_done < DELAY - 0.5,
               "the %d other messages were delivered during the wait" % FAST)
        tap.ok("slow@example.jp" not in smtp.delivered_rcpts(),
               "the slow message was still waiting (the test bites)")

    with tap.check("[2] the event loop keeps answering during the wait"):
        tap.diag("slowest /healthz during the wait: %.0f ms" % worst)
        tap.ok(worst < 1000, "/healthz answered in %.0f ms < 1000 ms" % worst)

    with tap.check("[3] the slow message is delivered, once"):
        h = k.wait_done(bid, 60)
        tap.eq(k.counts(bid)["email"].get("delivered"), FAST + 1,
               "all delivered")
        tap.eq(smtp.delivered_rcpts().count("slow@example.jp"), 1,
               "the slow recipient got one message")
    d.stop()
tap.done()
