#!/usr/bin/python3
"""test_expand_ahead.py - the expander reads the next page of a broadcast's
audience while the current one commits (dispatcher/expand_page.c, issue
20): small pages of directory recipients, so that nearly every page is read
ahead.

  [1] 233 directory recipients in pages of 20 (a first page of 20, then
      12 more): every active recipient with an address gets exactly one
      e-mail, the deactivated ones none; jobs, total and unreachable
      counted exactly.
  [2] a recipient record of the wrong type (a string where the hash
      should be), in a page read ahead: skipped and counted unreachable,
      reported once in the DLQ (the report is made when the page is used,
      never for a page read and dropped), the others delivered.
  [3] LINE multicast through the outbox: every LINE recipient once, in
      jobs of at most 500 ids, the multicast job's key per page.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_expand_ahead.py
"""

import collections
import email
import email.policy
import email.utils
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("expand-ahead")
TENANT = "ahead-hs"
N = 233
INACTIVE = {"a-%03d" % i for i in (7, 45, 46, 120, 232)}
BROKEN = "a-061"     # its record becomes a string: wrong type


def ctl(*args):
    cp = subprocess.run([os.path.join(BUILD, "kairanctl"), "-c", k.conf]
                        + [str(a) for a in args], capture_output=True,
                        timeout=120)
    return cp.returncode, cp.stdout.decode(), cp.stderr.decode()


def outbox_to(bid):
    """Counter of To addresses of the broadcast's .eml files."""
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


with Redis(out) as r:
    k = Kairan(out, r, email="outbox",
               conf={"dispatcher": {"expand_page": "20"},
                     "routes": {"line": "outbox"},
                     "http": {"listen": ""}})
    lines = ["id,name,groups,email,line"]
    for i in range(N):
        lines.append("a-%03d,生徒%d,3-C,hogo%03d@example.jp,U%032x"
                     % (i, i, i, 0x5000 + i))
    path = os.path.join(out, "roster.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\r\n".join(lines) + "\r\n")
    rc, so, se = ctl("recipients", "import", "--tenant", TENANT, path)
    assert rc == 0, (rc, so, se)
    for rid in sorted(INACTIVE):
        rc, so, se = ctl("recipients", "deactivate", "--tenant", TENANT, rid)
        assert rc == 0, (rc, se)
    r.call("DEL", "kairan:rcpt:%s:%s" % (TENANT, BROKEN))
    r.call("SET", "kairan:rcpt:%s:%s" % (TENANT, BROKEN), "not a hash")

    d = k.start()
    want = collections.Counter(
        "hogo%03d@example.jp" % i for i in range(N)
        if "a-%03d" % i not in INACTIVE and "a-%03d" % i != BROKEN)

    bid = k.submit({"tenant": TENANT, "subject": "先読み", "body": "本文",
                    "channels": ["email"], "audience": {"groups": ["3-C"]}})
    h = k.wait_done(bid, 120)
    with tap.check("[1] every active recipient once, none of the inactive, "
                   "counts exact (pages of 20)"):
        got = outbox_to(bid)
        assert got == want, (sorted((got - want).items()),
                             sorted((want - got).items()))
        assert int(h["jobs"]) == len(want), h
        assert int(h["n:email:total"]) == len(want), h
        assert int(h["unreachable"]) == len(INACTIVE) + 1, h
        assert int(h["xc"]) == 1 + (N - 20 + 19) // 20, h

    with tap.check("[2] the record of the wrong type: one DLQ entry naming "
                   "it, the rest delivered"):
        dlq = r.call("XRANGE", "kairan:dlq", "-", "+")
        mine = [kv for _, kv in dlq
                if dict(zip(kv[::2], kv[1::2])).get(b"rcpt") == BROKEN.encode()]
        assert len(mine) == 1, dlq
        reason = dict(zip(mine[0][::2], mine[0][1::2]))[b"reason"].decode()
        assert "skipped" in reason, reason

    bid2 = k.submit({"tenant": TENANT, "subject": "先読み LINE", "body": "本文",
                     "channels": ["line"], "audience": {"groups": ["3-C"]}})
    h2 = k.wait_done(bid2, 120)
    with tap.check("[3] LINE: every recipient once in multicast jobs, "
                   "counts exact"):
        assert int(h2["n:line:total"]) == len(want), h2
        assert int(h2["n:line:delivered"]) == len(want), h2
        # One multicast job per page with LINE recipients (13 pages).
        assert int(h2["jobs"]) == len(want), h2
        per = r.call("HGETALL", "kairan:bc:%s:r" % bid2)
        raw = [per[i].decode() for i in range(0, len(per), 2)]
        # each multicast delivered is recorded once, in "@line:p<page>.<g>"
        # (docs/multicast-record.md), its members left "q|<rcpt>|<gid>"
        groups = [f for f in raw if f.startswith("@")]
        assert groups and all(f.startswith("@line:p") for f in groups), raw[:3]
        states = resolve_states(per)
        assert len(states) == len(want), len(states)
        assert all(f.startswith("line:") for f in states), list(states)[:3]
        assert all(v.startswith("d|") for v in states.values()), states
    d.stop()

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
