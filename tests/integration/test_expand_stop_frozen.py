#!/usr/bin/python3
"""test_expand_stop_frozen.py - kairand stopped (SIGTERM) while Redis
does not answer the expander's read of a page: the drain time ends with
the read on its way, and closing the connection calls its callback (no
reply) after the expander let go of its entry: kn__expander_close freed
the entry, and the read's failure then used it (kairand died of SIGSEGV
on SIGTERM; ASan: heap-use-after-free in kn__expand_failed).  The
expander is now freed when the loop closes it (dispatcher/expand.c).

Redis is reached through a proxy here that stops passing Redis' answers
on the connection that sent the first LRANGE (the expander reading the
broadcast's first page): nothing is left to timing.

  [1] SIGTERM with the page's LRANGE unanswered: kairand exits 0 after
      dispatcher.drain_ms, no memory error (ASan's report, under
      SANITIZE=1).
  [2] a new kairand (straight to Redis) resumes the entry: every
      recipient once.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_expand_stop_frozen.py
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
N = 120
PAGE = 20


out = tmpdir("expand-stop-frozen")
with Redis(out) as r:
    proxy = FreezeProxy(r.port, rb"LRANGE")
    # The next kairand takes the entry over after claim_idle_ms (which
    # must exceed smtp.timeout_ms + drain_ms): 5 s, not the default 2 min.
    conf = pipeline_conf(PAGE, claim_idle_ms="5s")
    conf["smtp"] = {"timeout_ms": "1s"}
    conf["dispatcher"].update({"drain_ms": "300", "consumer": "c1"})
    # The read must still be on its way when the drain time ends.
    conf["redis"] = {"url": "redis://127.0.0.1:%d" % proxy.listen_port,
                     "timeout_ms": "60s"}
    k = Kairan(out, r, email="outbox", conf=conf)
    bid = k.submit(line_broadcast("frozen", "frozen", N, "f"))
    d = k.start()
    with tap.check("[1] SIGTERM with the page's read unanswered: exit 0, "
                   "no memory error"):
        wait_for(proxy.frozen.is_set, 30, what="the first LRANGE sent")
        d.kill(signal.SIGTERM)
        rc = d.wait(30)
        err = open(d.stderr_path, "rb").read().decode("utf-8", "replace")
        i = err.find("ERROR: AddressSanitizer")
        assert i < 0, err[i:i + 3000]
        assert rc == 0, (rc, err[-3000:])
    proxy.close()
    k.sections["redis"]["url"] = r.url
    k.write_conf()
    d2 = k.start()
    with tap.check("[2] resumed by a new kairand: every recipient once"):
        h = k.wait_done(bid, 120)
        assert h.get("status") == "done", h
        assert int(h["n:line:total"]) == N, h
        assert int(h["jobs"]) == N, h
        per = r.call("HGETALL", "kairan:bc:%s:r" % bid)
        assert len(resolve_states(per)) == N
    d2.stop(30)
    assert d2.returncode == 0, d2.returncode

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
