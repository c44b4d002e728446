#!/usr/bin/python3
"""test_expand_ahead_sizes.py - the pages read ahead (up to two,
dispatcher/expand_read.c) at the audience's edges: an audience of 1, 2 or
3 pages exactly, a short last page, inline ("i:") and directory ("d:")
entries on the same page, pages of 20 (the first page 20 too).

  [1] each audience below, one broadcast after the other: every recipient
      gets exactly one e-mail, jobs and n:email:total exact, the
      checkpoint at the last page.
  [2] the same audiences submitted together by two tenants (turns taken
      between them: pages read ahead and dropped when the other tenant's
      turn comes): every recipient exactly once.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_expand_ahead_sizes.py
"""

import collections
import email
import email.policy
import email.utils
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("expand-ahead-sizes")
PAGE = 20
NDIR = 100
# (inline, directory) recipients
SIZES = [(0, 1), (1, 0), (0, 2), (0, 20), (20, 0), (0, 21), (0, 40), (0, 41),
         (0, 60), (60, 0), (0, 61), (10, 11), (19, 42), (5, 54), (40, 20),
         (33, 67)]


def pages(n):
    return 1 if n <= PAGE else 1 + (n - PAGE + PAGE - 1) // PAGE


def outbox_to(k, bid):
    d = os.path.join(k.outbox, bid)
    got = collections.Counter()
    for name in (os.listdir(d) if os.path.isdir(d) else []):
        if name.endswith(".eml"):
            with open(os.path.join(d, name), "rb") as f:
                msg = email.message_from_bytes(f.read(),
                                               policy=email.policy.default)
            for _, a in email.utils.getaddresses([str(msg["To"])]):
                got[a.lower()] += 1
    return got


def broadcast(tenant, tag, ninl, ndir):
    b = {"tenant": tenant, "subject": "件名 " + tag, "body": "本文",
         "channels": ["email"],
         "recipients": [{"id": "i-%s-%03d" % (tag, i),
                         "email": "i-%s-%03d@example.jp" % (tag, i)}
                        for i in range(ninl)]}
    if ndir:
        b["audience"] = {"recipients": ["d-%03d" % i for i in range(ndir)]}
    return b


def want_of(tenant, tag, ninl, ndir):
    w = collections.Counter("i-%s-%03d@example.jp" % (tag, i)
                            for i in range(ninl))
    w.update("%s-d-%03d@example.jp" % (tenant, i) for i in range(ndir))
    return w


def check(k, bid, tenant, tag, ninl, ndir):
    h = k.wait_done(bid, 120)
    n = ninl + ndir
    want = want_of(tenant, tag, ninl, ndir)
    wait_for(lambda: sum(outbox_to(k, bid).values()) >= n, 60,
             what="%s: %d e-mails written" % (tag, n))
    got = outbox_to(k, bid)
    assert got == want, (tag, sorted((got - want).items()),
                         sorted((want - got).items()))
    assert int(h["jobs"]) == n, (tag, h)
    assert int(h["n:email:total"]) == n, (tag, h)
    assert int(h["xc"]) == pages(n), (tag, h["xc"], pages(n))


with Redis(out) as r:
    k = Kairan(out, r, email="outbox", conf=pipeline_conf(PAGE))
    for tenant in ("sz-a", "sz-b"):
        rows = ["id,name,groups,email"]
        rows += ["d-%03d,生徒%d,g,%s-d-%03d@example.jp" % (i, i, tenant, i)
                 for i in range(NDIR)]
        path = os.path.join(out, tenant + ".csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\r\n".join(rows) + "\r\n")
        cp = k.ctl("recipients", "import", "--tenant", tenant, path)
        assert cp.returncode == 0, cp.stderr
    d = k.start()
    with tap.check("[1] audiences of 1 to 100, inline and directory, one "
                   "after the other: each recipient exactly once"):
        for ninl, ndir in SIZES:
            tag = "s%d-%d" % (ninl, ndir)
            bid = k.submit(broadcast("sz-a", tag, ninl, ndir))
            check(k, bid, "sz-a", tag, ninl, ndir)
    with tap.check("[2] the same audiences of two tenants at once (turns "
                   "taken): each recipient exactly once"):
        subs = []
        for ninl, ndir in SIZES:
            for tenant in ("sz-a", "sz-b"):
                tag = "t%s%d-%d" % (tenant[-1], ninl, ndir)
                subs.append((k.submit(broadcast(tenant, tag, ninl, ndir)),
                             tenant, tag, ninl, ndir))
        for s in subs:
            check(k, *s)
    d.stop()
    assert d.returncode == 0, d.returncode

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
