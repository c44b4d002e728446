#!/usr/bin/python3
"""test_pipeline_reader.py - the broadcasts stream is still read while one
broadcast expands alone in a pipeline (dispatcher/expand_page.c,
pipeline_next), after the reader's connection was lost.

A lost read (on_read with no reply) is read again only by next_entry
(on_blk_state calls it when the expander has no current entry, and
read_more runs from next_entry).  Before 819a4c4 every page ended the
turn (kn__expand_turn_over -> next_entry -> read_more), so the read was
sent again within a page.  In a pipeline the turn does not end until
something waits (a new entry, a turn, an entry due), and nothing waits
when nothing is read: the broadcasts stream is not read until the whole
broadcast is expanded, and an urgent broadcast waits behind it.

  [1] A (board, 100,000 LINE, pages of 100) expands alone; the
      expander's reading connection is killed (CLIENT KILL of the
      clients blocked in XREADGROUP); then U, another tenant's urgent
      broadcast of 30: U is expanded while A still has pages to go.
      (NOKILL=1: the same without the kill, which passes.)

Run:  BUILD=build /usr/bin/python3 tests/integration/test_pipeline_reader.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("pipeline-reader")
NA = 100000
PAGE = 100
PAGES = 1 + (NA - 50 + PAGE - 1) // PAGE


def readers(r):
    """Ids of the clients blocked in XREADGROUP (kairand's readers)."""
    ids = []
    for line in r.call("CLIENT", "LIST").decode().splitlines():
        f = dict(x.split("=", 1) for x in line.split() if "=" in x)
        if f.get("cmd") == "xreadgroup":
            ids.append(f["id"])
    return ids


with Redis(out) as r:
    k = Kairan(out, r, email="outbox",
               conf=pipeline_conf(PAGE, NA, max_depth="10000000",
                                  block_ms="2000"))
    d = k.start()
    a = k.submit(line_broadcast("board", "A", NA, "a"))
    wait_for(lambda: int(k.bc(a).get("xc", "0")) >= 5, 60,
             what="A's expansion begun", interval=0.002)
    ids = wait_for(lambda: readers(r), 10, what="kairand's readers")
    for i in ids if not os.environ.get("NOKILL") else ():
        r.call("CLIENT", "KILL", "ID", i)
    # kairand is connected again (its readers blocked in XREADGROUP again:
    # the workers'), A still going
    wait_for(lambda: len(readers(r)) > 0, 10, what="readers back")
    x0 = int(k.bc(a).get("xc", "0"))
    u = k.submit({"tenant": "city", "priority": "urgent", "subject": "U",
                  "body": "本文", "channels": ["line"],
                  "recipients": [{"id": "u%02d" % i,
                                  "line": "U%032x" % (0x900000 + i)}
                                 for i in range(30)]})
    wait_for(lambda: k.bc(u).get("expanded") == "1", 120,
             what="U expanded", interval=0.002)
    ha = k.bc(a)
    tap.diag("A at page %d of %d when U was submitted, %s when U was "
             "expanded" % (x0, PAGES, ha.get("xc")))
    with tap.check("[1] U (urgent, 30) is expanded while A still has pages "
                   "to go (A at page %s of %d)" % (ha.get("xc"), PAGES)):
        assert ha.get("expanded") != "1", (ha.get("xc"), ha.get("expanded"))
        assert int(ha.get("xc", "0")) < PAGES, ha.get("xc")
    k.wait_done(a, 600)
    d.stop()

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
