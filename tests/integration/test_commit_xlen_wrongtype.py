#!/usr/bin/python3
"""test_commit_xlen_wrongtype.py - a job stream of the wrong type that a
broadcast never touches must not fail that broadcast.

commit_page.lua (b63483c) returns the six streams' XLEN with each commit,
and asks them after it has enqueued the page's jobs and moved the
checkpoint (HSET xc).  One stream of the wrong type (here q:push:urgent,
an operator's slip; test_poison's "shared keys": "the broadcast that
needs it is parked; the others (another channel or priority) go on")
makes every commit of every broadcast answer WRONGTYPE after it has
committed: the expander counts a failure per page (fail:broadcasts) and,
after KN_POISON_MAX pages, parks an e-mail broadcast that never goes near
push as `rejected`, its later pages never expanded.

  [1] an e-mail broadcast of 20 pages while q:push:urgent is a string:
      expanded whole, done, every recipient enqueued once, not rejected,
      no failure counted or logged.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_commit_xlen_wrongtype.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("commit-xlen")
N = 200
PAGE = 10


with Redis(out) as r:
    k = Kairan(out, r, email="outbox",
               conf={"dispatcher": {"expand_page": str(PAGE)},
                     "http": {"listen": ""}})
    d = k.start()
    wait_for(lambda: "ready" in d.stderr_text(), 30, what="kairand ready")
    r.call("DEL", "kairan:q:push:urgent")
    r.call("SET", "kairan:q:push:urgent", "stray")
    bid = k.submit({"tenant": "school", "priority": "normal",
                    "subject": "件名", "body": "本文", "channels": ["email"],
                    "recipients": [{"id": "s%03d" % i,
                                    "email": "s%03d@example.jp" % i}
                                   for i in range(N)]})
    wait_for(lambda: k.bc(bid).get("status") in ("done", "rejected"), 90,
             what="the broadcast finished or parked")
    h = k.bc(bid)
    with tap.check("[1] an e-mail broadcast (%d pages) is not failed by "
                   "q:push:urgent of the wrong type" % (N // PAGE)):
        assert h.get("status") == "done", (h.get("status"),
                                           h.get("reason"), h.get("xc"))
        assert h.get("expanded") == "1", h
        assert int(h.get("n:email:total", "0")) == N, h
        assert r.call("KEYS", "kairan:fail:*") == [], \
            r.call("KEYS", "kairan:fail:*")
        assert "broadcast failed" not in d.stderr_text(), \
            [x for x in d.stderr_text().splitlines()
             if "broadcast failed" in x][:2]
    d.stop()

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
