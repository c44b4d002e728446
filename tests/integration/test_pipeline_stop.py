#!/usr/bin/python3
"""test_pipeline_stop.py - a pipelined expansion (two page commits on their
way, dispatcher/expand_page.c struct xcommit) stopped, killed or frozen
part way: another kairand ends it, every recipient once.

  [1] SIGTERM during the expansion: kairand exits 0 within drain_ms and a
      margin; a new kairand (same consumer name) resumes at the checkpoint.
  [2] kill -9 during the expansion, a second kairand running: it takes the
      entry over (XAUTOCLAIM) and ends it.
  [3] SIGSTOP past claim_idle_ms, the second one takes over, then SIGCONT:
      both expand the same broadcast for a while.
  Each: status done, checkpoint at the last page, n:line:total = jobs =
  delivered = N, one state per recipient.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_pipeline_stop.py
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
N = 60000
PAGE = 100
PAGES = 1 + (N - 50 + PAGE - 1) // PAGE

FAST = {
    "queue": {"claim_idle_ms": "3000", "retry_base_ms": "100",
              "retry_cap_ms": "1000", "expand_ahead_ms": "1m",
              "max_depth": "1000000"},
    "smtp": dict.fromkeys((
            "timeout_ms", "greeting_timeout_ms", "mail_timeout_ms",
            "rcpt_timeout_ms", "data_init_timeout_ms",
            "data_xfer_timeout_ms", "data_done_timeout_ms"), "1000"),
    "dispatcher": {"drain_ms": "1000", "expand_page": str(PAGE),
                   "max_recipients": "100000", "consumer": "c1"},
    "routes": {"line": "outbox"},
    "http": {"listen": ""},
}


def account(r, k, bid, what):
    h = k.wait_done(bid, 300)
    assert h.get("status") == "done", (what, h.get("status"))
    assert int(h["xc"]) == PAGES, (what, h["xc"])
    assert int(h["n:line:total"]) == N, (what, h["n:line:total"])
    assert int(h["jobs"]) == N, (what, h["jobs"])
    per = r.call("HGETALL", "kairan:bc:%s:r" % bid)
    assert len(resolve_states(per)) == N, what
    wait_for(lambda: int(k.bc(bid).get("n:line:delivered", "0")) >= N, 120,
             what="%s: delivered" % what)
    assert int(k.bc(bid)["n:line:delivered"]) == N, (what, k.bc(bid))


def submit(k, tag):
    return k.submit(line_broadcast(tag, tag, N, "a"))


for n, how in enumerate(("sigterm", "kill9", "sigstop")):
    out = tmpdir("pipeline-stop-" + how)
    with Redis(out) as r, \
            tap.check("[%d] %s during a pipelined expansion: every recipient "
                      "once" % (n + 1, how)):
        k = Kairan(out, r, email="outbox", conf=FAST)
        d1 = k.start()
        bid = submit(k, how)
        at = 20 + (n * 37) % 60
        wait_for(lambda: int(k.bc(bid).get("xc", "0")) >= at, 60,
                 what="expansion at page %d" % at, interval=0.001)
        if how == "sigterm":
            d1.kill(signal.SIGTERM)
            assert d1.wait(10) == 0, d1.returncode
            tap.diag("sigterm: stopped at page %s" % k.bc(bid).get("xc"))
            d2 = k.start()
        elif how == "kill9":
            k.sections["dispatcher"]["consumer"] = "c2"
            k.write_conf()
            d2 = k.start()
            d1.kill(signal.SIGKILL)
            d1.wait(10)
            tap.diag("kill9: killed at page %s" % k.bc(bid).get("xc"))
        else:
            k.sections["dispatcher"]["consumer"] = "c2"
            k.write_conf()
            d2 = k.start()
            d1.kill(signal.SIGSTOP)
            x0 = int(k.bc(bid).get("xc", "0"))
            wait_for(lambda: int(k.bc(bid).get("xc", "0")) >= x0 + 20, 60,
                     what="the other one took over", interval=0.01)
            d1.kill(signal.SIGCONT)
            tap.diag("sigstop: frozen at page %d, woken at %s"
                     % (x0, k.bc(bid).get("xc")))
        account(r, k, bid, how)
        for p in (d1, d2):
            if p.alive():
                p.stop(15)
    k = None

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
