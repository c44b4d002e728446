#!/usr/bin/python3
"""test_expand_pipeline.py - the expander sends a page's commit before the
last one's answer while one broadcast expands alone
(dispatcher/expand_page.c, struct xcommit; issue 20), and stops doing so
as soon as another broadcast comes.

  [1] A (LINE, inline, pages of 100) expands with no depth limit in the
      way; B, another school's 30 recipients, submitted once A has begun:
      B is expanded while A still has pages to go (a pipeline that never
      ended A's turn would read B from the stream only after A's last
      page), and both are delivered whole.
  [2] every recipient of A exactly once, in jobs of at most 100 ids (a
      page's), the checkpoint at the last page: no page committed twice
      nor skipped.
  [3] a key of the wrong type met by a commit while the next page's is on
      its way (the dead set made a hash): the commit on its way is
      abandoned with the failing one, and the broadcast is parked after 5
      attempts with a reason that names that key.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_expand_pipeline.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("expand-pipeline")
N = scale(60000, 20000) // 100 * 100
PAGE = 100
PAGES = 1 + (N - 50 + PAGE - 1) // PAGE   # a first page of 50


with Redis(out) as r:
    k = Kairan(out, r, email="outbox",
               conf=pipeline_conf(PAGE, max(N, 100000)))
    d = k.start()
    a = k.submit(line_broadcast("board", "A", N, "a"))
    wait_for(lambda: int(k.bc(a).get("xc", "0")) >= 2, 60,
             what="A's expansion begun")
    b = k.submit(line_broadcast("school", "B", 30, "b", 0x900000))
    wait_for(lambda: k.bc(b).get("expanded") == "1", 60,
             what="B expanded", interval=0.005)
    ha = k.bc(a)
    with tap.check("[1] B (30) is expanded while A (%d) still has pages to "
                   "go (A at page %s of %d); both delivered whole"
                   % (N, ha.get("xc"), PAGES)):
        assert ha.get("expanded") != "1", ha
        assert int(ha.get("xc", "0")) < PAGES, ha
        hb = k.wait_done(b, 120)
        assert int(hb["n:line:delivered"]) == 30, hb
        ha = k.wait_done(a, 600)
        assert int(ha["n:line:delivered"]) == N, ha

    with tap.check("[2] A: every recipient once, jobs of at most %d ids, "
                   "the checkpoint at its last page (%d)" % (PAGE, PAGES)):
        assert int(ha["n:line:total"]) == N, ha
        assert int(ha["xc"]) == PAGES, ha
        per = r.call("HGETALL", "kairan:bc:%s:r" % a)
        states = resolve_states(per)
        assert len(states) == N, len(states)
        assert all(v.startswith("d|") for v in states.values()), \
            [v for v in states.values() if not v.startswith("d|")][:3]
        groups = [per[i].decode() for i in range(0, len(per), 2)
                  if per[i].startswith(b"@")]
        # one multicast per page: the first page's 50, then pages of 100
        assert len(groups) == PAGES, (len(groups), PAGES)
        assert all(int(v.split("|")[2]) <= PAGE for v in
                   (r.call("HGET", "kairan:bc:%s:r" % a, g).decode()
                    for g in groups)), groups[:3]
    with tap.check("[3] the dead set of the wrong type mid-expansion: "
                   "parked after 5 attempts, the reason names it"):
        c = k.submit(line_broadcast("board", "C", N, "c", 0x700000))
        wait_for(lambda: int(k.bc(c).get("xc", "0")) >= 3, 60,
                 what="C's expansion begun")
        r.call("DEL", "kairan:dead:line")
        r.call("HSET", "kairan:dead:line", "stray", "1")
        hc = wait_for(lambda: (lambda h: h if h.get("status") == "rejected"
                               else None)(k.bc(c)), 60, what="C parked")
        try:
            assert "kairan:dead:line" in hc.get("reason", ""), hc
            assert "5 times" in hc["reason"], hc["reason"]
            assert int(hc.get("xc", "0")) < PAGES, hc
        finally:
            r.call("DEL", "kairan:dead:line")
    d.stop()

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
