#!/usr/bin/python3
"""test_worker_stop_frozen.py - kairand stopped (SIGTERM) while Redis does
not answer a channel worker's commands: the drain time ends with them on
their way, kn__worker_close lets go of the worker's streams, route, ready
jobs and adapter, and closing the command connection afterwards calls
their callbacks with no reply (shutdown_now, dispatcher/daemon.c): the
class of bug 9dec1e7 fixed in the expander.  None of the worker's uses
freed memory: the worker itself is freed only once the loop closed its
timers, and its results' calls (finish, retry, precheck, rate) are
reliable calls (queue/queue.c) whose callbacks are not called without a
reply.  This test keeps it so.

Redis is reached through a proxy here that stops passing Redis' answers
on the connection that sent the e-mail worker's first "keep" round
(kn__worker_keep, the idle-time reset of the jobs it holds); the test
then waits until a batch of results (the finish script) and the route's
pause read (GET paused:email) are on their way on it too: nothing is left
to timing.  One SMTP connection whose RCPTs are answered after 0.6 s
keeps jobs waiting in hand (ready) long enough to be kept.

  [1] SIGTERM with the keep round, a finish batch and the pause read
      unanswered and SMTP sends in flight: kairand exits 0 after
      dispatcher.drain_ms, no memory error (ASan's report, under
      SANITIZE=1).
  [2] a new kairand (straight to Redis) takes the jobs over: every
      recipient recorded once.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_worker_stop_frozen.py
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
N = 40

# The keep round: EVALSHA <sha> 2 <urgent> <normal> <group> <consumer> ...
KEEP = (rb"kairan:q:email:urgent\r\n\$\d+\r\nkairan:q:email:normal\r\n"
        rb"\$7\r\nkairand\r\n\$2\r\nc1\r\n")
FINISH = rb"\$9\r\ndelivered\r\n"  # a result's state, finish.lua's ARGV
PAUSE = rb"GET\r\n\$\d+\r\nkairan:paused:email\r\n"


out = tmpdir("worker-stop-frozen")
with Redis(out) as r, FakeSMTP(out, control={"rules": [
        {"match": "@", "action": "delay", "seconds": 0.6}]}) as smtp:
    proxy = FreezeProxy(r.port, KEEP)
    # The next kairand takes the jobs over after claim_idle_ms (which must
    # exceed smtp.timeout_ms + drain_ms): 5 s, not the default 2 min.  A
    # job held claim_idle_ms / 4 (1.25 s) is kept, every claim_idle_ms / 8.
    conf = pipeline_conf(20, claim_idle_ms="5s")
    conf["smtp"] = {"timeout_ms": "1s", "connections": "1"}
    conf["dispatcher"].update({"drain_ms": "300", "consumer": "c1"})
    # The commands must still be on their way when the drain time ends.
    conf["redis"] = {"url": "redis://127.0.0.1:%d" % proxy.listen_port,
                     "timeout_ms": "60s"}
    k = Kairan(out, r, smtp=smtp, conf=conf)
    b = line_broadcast("frozen", "frozen", 0, "f", channels=["email"])
    b["recipients"] = [{"id": "f%06d" % i, "email": "p%d@example.jp" % i}
                       for i in range(N)]
    bid = k.submit(b)
    d = k.start()
    with tap.check("[1] SIGTERM with the keep round, a finish batch and the "
                   "pause read unanswered: exit 0, no memory error"):
        wait_for(proxy.frozen.is_set, 60, what="the first keep round sent")
        wait_for(lambda: proxy.sent_after(FINISH), 30,
                 what="a finish batch sent after it")
        wait_for(lambda: proxy.sent_after(PAUSE), 30,
                 what="the route's pause read sent after it")
        d.kill(signal.SIGTERM)
        rc = d.wait(30)
        err = open(d.stderr_path, "rb").read().decode("utf-8", "replace")
        i = err.find("ERROR: AddressSanitizer")
        assert i < 0, err[i:i + 3000]
        assert rc == 0, (rc, err[-3000:])
        assert "drain time is over" in err, err[-3000:]
    proxy.close()
    smtp.clear_control()
    k.sections["redis"]["url"] = r.url
    k.write_conf()
    d2 = k.start()
    with tap.check("[2] taken over by a new kairand: every recipient once"):
        h = k.wait_done(bid, 120)
        assert h.get("status") == "done", h
        assert int(h["n:email:total"]) == N, h
        assert int(h["jobs"]) == N, h
        st = bc_states(r, bid)
        assert len(st) == N, st
        assert all(v.startswith("d|") for v in st.values()), st
    d2.stop(30)
    assert d2.returncode == 0, d2.returncode

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
