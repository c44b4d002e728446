#!/usr/bin/python3
"""test_ahead_dir_chaos.py - the expander's pages read ahead (up to two,
dispatcher/expand_read.c) of a directory audience (each entry "d:<id>",
its HMGET and HGET sent when the page's LRANGE answers) while Redis drops
kairand's connections or its script cache: a page read ahead loses its
LRANGE or a lookup, at the head of the list or behind it, and is read
again; a commit sent again as EVAL answers after the pages read since.

  [1] kill: 2,000 directory recipients (KAIRAN_TEST_SCALE shrinks it) in
      pages of 20, every kairand connection killed every 20 ms (200 times
      at most, so that a slow build gets through in the end).
  [2] flush: the same while SCRIPT FLUSH runs every 5 ms (400 times).
  [3] kill, two tenants' directory broadcasts at once (turns taken: pages
      read ahead are dropped when the other's turn comes).
  Each: every recipient once (n:line:total, jobs, bc:r), the checkpoint
  at the last page, delivered whole; kairand exits 0 at the end.

Run:  BUILD=build /usr/bin/python3 tests/faults/test_ahead_dir_chaos.py
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("ahead-dir-chaos")
N = scale(2000, 300)
PAGE = 20
TENANTS = {"chaos-a": N, "chaos-b": N // 2}


def pages(n):
    return 1 + (n - PAGE + PAGE - 1) // PAGE


def chaos(r, stop, cmd, every, most):
    """cmd every `every` s, `most` times at most."""
    c = RespClient(r.host, r.port)
    for _ in range(most):
        if stop.is_set():
            break
        try:
            c.call(*cmd)
        except Exception:
            pass
        time.sleep(every)
    c.close()


def field(k, bid, name):
    """A field of the broadcast hash; the test's own connection may be
    killed too: asked again."""
    for _ in range(20):
        try:
            return k.bc(bid).get(name)
        except (OSError, ConnectionError):
            continue
    raise AssertionError("Redis unreachable")


def account(r, k, bid, n):
    h = k.wait_done(bid, 300)
    states = resolve_states(r.call("HGETALL", "kairan:bc:%s:r" % bid))
    assert h.get("status") == "done", h
    assert int(h["xc"]) == pages(n), (h["xc"], pages(n))
    assert int(h["n:line:total"]) == n, h
    assert int(h["jobs"]) == n, h
    assert len(states) == n, (len(states), n)
    wait_for(lambda: int(k.bc(bid).get("n:line:delivered", "0")) >= n,
             120, what="delivered")
    assert int(k.bc(bid)["n:line:delivered"]) == n, k.bc(bid)


def run(r, k, tag, tenants, cmd, every, most):
    bids = [(k.submit({"tenant": t, "priority": "normal",
                       "subject": "先読み " + tag, "body": "本文",
                       "channels": ["line"], "audience": {"groups": ["g"]}}),
             TENANTS[t]) for t in tenants]
    wait_for(lambda: int(k.bc(bids[0][0]).get("xc", "0")) >= 2, 60,
             what="%s: expansion begun" % tag, interval=0.002)
    stop = threading.Event()
    t = threading.Thread(target=chaos, args=(r, stop, cmd, every, most))
    t.start()
    try:
        for bid, _ in bids:
            wait_for(lambda: field(k, bid, "expanded") == "1", 300,
                     what="%s: expanded" % tag, interval=0.05)
    finally:
        stop.set()
        t.join()
    for bid, n in bids:
        account(r, k, bid, n)


with Redis(out) as r:
    k = Kairan(out, r, email="outbox", conf=pipeline_conf(PAGE))
    for tenant, n in TENANTS.items():
        rows = ["id,name,groups,line"]
        rows += ["c-%05d,生徒%d,g,U%032x" % (i, i, 0x7000 + i)
                 for i in range(n)]
        path = os.path.join(out, tenant + ".csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\r\n".join(rows) + "\r\n")
        cp = k.ctl("recipients", "import", "--tenant", tenant, path,
                   timeout=300)
        assert cp.returncode == 0, cp.stderr
    d = k.start()
    kill = ("CLIENT", "KILL", "TYPE", "normal")
    for n, (tag, tenants, cmd, every, most) in enumerate((
            ("kill", ["chaos-a"], kill, 0.02, 200),
            ("flush", ["chaos-a"], ("SCRIPT", "FLUSH"), 0.005, 400),
            ("kill, two tenants", ["chaos-a", "chaos-b"], kill, 0.02, 200))):
        with tap.check("[%d] %s: every directory recipient once, "
                       "checkpoint at the last page, delivered whole"
                       % (n + 1, tag)):
            run(r, k, tag, tenants, cmd, every, most)
    d.stop(30)
    with tap.check("[4] kairand exits 0"):
        assert d.returncode == 0, d.returncode

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
