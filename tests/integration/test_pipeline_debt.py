#!/usr/bin/python3
"""test_pipeline_debt.py - a tenant whose broadcast expanded alone in a
pipeline (dispatcher/expand_page.c, pipeline_next) must still take turns
with a tenant who comes later (expand_fair.c: DRR, "tenants take turns").

Each pipelined page is charged (kn__expand_fair_charge) without the
tenant's turn ever starting again (no quantum added), so while A expands
alone its deficit falls by a page per page.  When B comes, A is at the
head of the ring with a debt of every page it pipelined: DRR skips it
until B has expanded that many pages.

  [1] A (board, 100,000 LINE) expands alone for a while; B (city, 10,000
      LINE in the directory, 100 pages: its submit is small, so that it
      comes while A has most of its pages to go) comes: while B expands,
      A goes on too (DRR with equal quanta: about one page of A per page
      of B), not frozen until B is done.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_pipeline_debt.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("pipeline-debt")
NA = 100000
NB = 10000
PAGE = 100
PAGES_B = 1 + (NB - 50 + PAGE - 1) // PAGE
PAGES_A = 1 + (NA - 50 + PAGE - 1) // PAGE


with Redis(out) as r:
    k = Kairan(out, r, email="outbox", conf=pipeline_conf(PAGE))
    csv = os.path.join(out, "city.csv")
    with open(csv, "w") as f:
        f.write("id,name,groups,line\r\n")
        for i in range(NB):
            f.write("b%06d,x,all,U%032x\r\n" % (i, 0x900000 + i))
    cp = k.ctl("recipients", "import", "--tenant", "city", csv, timeout=300)
    assert cp.returncode == 0, cp.stderr[-2000:]
    d = k.start()
    a = k.submit(line_broadcast("board", "A", NA, "a"))
    wait_for(lambda: int(k.bc(a).get("xc", "0")) >= 200, 120,
             what="A's expansion well under way", interval=0.01)
    b = k.submit({"tenant": "city", "priority": "normal", "subject": "B",
                  "body": "本文", "channels": ["line"],
                  "audience": {"groups": ["all"]}})
    wait_for(lambda: int(k.bc(b).get("xc", "0")) >= 1, 60,
             what="B's expansion begun", interval=0.002)
    xa0 = int(k.bc(a).get("xc", "0"))
    wait_for(lambda: k.bc(b).get("expanded") == "1", 300,
             what="B expanded", interval=0.002)
    xa1 = int(k.bc(a).get("xc", "0"))
    tap.diag("A at page %d when B began, %d when B (%d pages) was expanded"
             % (xa0, xa1, PAGES_B))
    with tap.check("[1] A takes turns with B: it goes on while B's %d pages "
                   "expand (A went from page %d to %d of %d)"
                   % (PAGES_B, xa0, xa1, PAGES_A)):
        # A had more pages to go than B has (else the test says nothing)
        assert PAGES_A - xa0 > PAGES_B, (xa0, PAGES_A)
        assert xa1 - xa0 >= PAGES_B // 2, (xa0, xa1, PAGES_B)
    d.stop()

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
