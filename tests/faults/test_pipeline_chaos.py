#!/usr/bin/python3
"""test_pipeline_chaos.py - the expander's pipelined commits (two on their
way, dispatcher/expand_page.c struct xcommit) while Redis drops kairand's
connections (CLIENT KILL: kept script calls are sent again oldest first)
and flushes its script cache (NOSCRIPT: sent again as EVAL).

  [1] kill: a 30,000 LINE broadcast (KAIRAN_TEST_SCALE shrinks it; a
      fault test: make test-faults) in pages of 100 while every kairand
      connection is killed every 30 ms: every recipient once (n:line:total,
      jobs, bc:r), the checkpoint at the last page, delivered whole.
  [2] flush: the same while SCRIPT FLUSH runs every 5 ms.

Run:  BUILD=build /usr/bin/python3 tests/faults/test_pipeline_chaos.py
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("pipeline-chaos")
N = scale(30000, 3000)
PAGE = 100
PAGES = 1 + (N - 50 + PAGE - 1) // PAGE


def chaos(r, stop, cmd, every):
    c = RespClient(r.host, r.port)
    n = 0
    while not stop.is_set():
        try:
            c.call(*cmd)
            n += 1
        except Exception:
            pass
        time.sleep(every)
    c.close()
    return n


def field(k, bid, name):
    """A field of the broadcast hash; the test's own connection may be
    killed too: asked again."""
    for _ in range(20):
        try:
            return k.bc(bid).get(name)
        except (OSError, ConnectionError):
            continue
    raise AssertionError("Redis unreachable")


def run(r, k, tag, cmd, every, base):
    bid = k.submit(line_broadcast("board-" + tag, "A", N, "a", base))
    wait_for(lambda: int(k.bc(bid).get("xc", "0")) >= 3, 60,
             what="expansion begun", interval=0.002)
    stop = threading.Event()
    t = threading.Thread(target=chaos, args=(r, stop, cmd, every))
    t.start()
    try:
        wait_for(lambda: field(k, bid, "expanded") == "1", 300,
                 what="%s: expanded" % tag, interval=0.05)
    finally:
        stop.set()
        t.join()
    h = k.wait_done(bid, 300)
    per = r.call("HGETALL", "kairan:bc:%s:r" % bid)
    states = resolve_states(per)
    return h, states


with Redis(out) as r:
    k = Kairan(out, r, email="outbox", conf=pipeline_conf(PAGE))
    d = k.start()
    for n, (tag, cmd, every) in enumerate(
            (("kill", ("CLIENT", "KILL", "TYPE", "normal"), 0.03),
             ("flush", ("SCRIPT", "FLUSH"), 0.005))):
        with tap.check("[%d] %s: every recipient once, checkpoint %d, "
                       "delivered whole" % (n + 1, tag, PAGES)):
            h, states = run(r, k, tag, cmd, every, 0x100000 * (n + 1))
            assert h.get("status") == "done", h
            assert int(h["xc"]) == PAGES, h
            assert int(h["n:line:total"]) == N, h
            assert int(h["jobs"]) == N, h
            assert len(states) == N, len(states)
            assert int(h.get("n:line:delivered", "0")) == N, h
    d.stop()

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
