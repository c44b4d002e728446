"""Fairness design measurement (issue 20; part of make bench): what a worker
would pay to read per-tenant streams, against the one shared stream per
channel and priority that fair expansion keeps.

With per-tenant streams every worker read names every tenant's stream
(XREADGROUP ... STREAMS q:line:normal:<t1> ... <tN>), and XAUTOCLAIM, the
depth gauges and status walk all of them.  This prints the time of one
XREADGROUP (COUNT 32) over N streams of which one has jobs, and of one
XLEN sweep over N streams, for N = 1, 10, 100, 1000 (a prefecture has
about 1,000 schools).  Figures only; nothing is asserted."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
from harness import Redis, tmpdir  # noqa

out = tmpdir("fair-design")
ROUNDS = 200

print("fair_design: one worker read over N tenant streams (load %s)"
      % open("/proc/loadavg").read().split()[0])
with Redis(out) as r:
    c = r.client()
    for n in (1, 10, 100, 1000):
        keys = ["q:line:normal:t%04d" % i for i in range(n)]
        c.pipeline([["XGROUP", "CREATE", k, "g", "$", "MKSTREAM"]
                    for k in keys])
        # One busy tenant: enough jobs for every round.
        c.pipeline([["XADD", keys[-1], "*", "j", "x" * 200]
                    for _ in range(ROUNDS * 32)])
        t0 = time.perf_counter()
        for _ in range(ROUNDS):
            c.call("XREADGROUP", "GROUP", "g", "w", "COUNT", "32",
                   "STREAMS", *keys, *([">"] * n))
        read_us = (time.perf_counter() - t0) / ROUNDS * 1e6
        t0 = time.perf_counter()
        for _ in range(20):
            c.pipeline([["XLEN", k] for k in keys])
        sweep_us = (time.perf_counter() - t0) / 20 * 1e6
        print("  %4d streams: XREADGROUP %7.0f us a read; depth sweep "
              "(XLEN each) %7.0f us" % (n, read_us, sweep_us))
        c.call("FLUSHALL")
print("  one shared stream per channel and priority: the N = 1 row, "
      "whatever the number of tenants")
