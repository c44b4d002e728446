"""The resolve step of a large directory audience (queue/lua/resolve.lua),
alone on a private redis-server: one group of N ids, and two overlapping
groups (0.6 N each, N unique), written at once (a step larger than the
audience: what every audience did before 0.5.0) and in steps of 10 pages
(kairand's default: 10,000 ids a call).  Prints how long Redis was held:
the longest call, the median and all of it (SLOWLOG, every call logged).
Figures only; nothing is asserted.

  python3 bench/resolve_bench.py          (N=1000000 by default)
"""
import json
import os
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import BUILD, Redis, tmpdir  # noqa: E402

N = int(os.environ.get("KAIRAN_BENCH_RESOLVE_N", "1000000"))
LUA = open(os.path.join(BUILD, "lua", "resolve.lua"), "rb").read()
P = "kairan:"
FILL = ("for i = tonumber(ARGV[1]), tonumber(ARGV[2]), 5000 do local t = {} "
        "for j = i, math.min(i + 4999, tonumber(ARGV[2])) do "
        "t[#t + 1] = string.format('r%07d', j) end "
        "redis.call('SADD', KEYS[1], unpack(t)) end")


def resolve(r, name, groups, step):
    """Every call of one resolution; returns (calls, ids, [µs per call])."""
    bc = P + "bc:" + name
    r.call("HSET", bc, "status", "queued", "category", "notice",
           "groups", json.dumps(groups))
    keys = [bc, bc + ":aud", P + "cats:t1", bc + ":seen"]
    r.call("SLOWLOG", "RESET")
    got = r.call("EVAL", LUA, 4, *keys, P, "t1", step, len(groups), *groups)
    calls = 1
    while got[0] == 3:
        got = r.call("EVAL", LUA, 4, *keys, P, "t1", step)
        calls += 1
    us = [e[2] for e in r.call("SLOWLOG", "GET", -1)
          if e[3] and e[3][0].upper() == b"EVAL"]
    r.call("UNLINK", *keys)
    # a fresh Lua heap for the next run: the garbage of a call that held
    # 1,000,000 strings is collected during the calls after it (60 ms
    # pauses in the next run's steps otherwise)
    r.call("SCRIPT", "FLUSH")
    return calls, got[1], us


out = tmpdir("resolve-bench")
with Redis(out) as r:
    r.call("EVAL", FILL, 1, P + "grp:t1:all", 1, N)
    r.call("EVAL", FILL, 1, P + "grp:t1:a", 1, int(N * 0.6))
    r.call("EVAL", FILL, 1, P + "grp:t1:b", N - int(N * 0.6) + 1, N)
    r.call("CONFIG", "SET", "slowlog-log-slower-than", "0")
    r.call("CONFIG", "SET", "slowlog-max-len", "100000")
    print("resolve step of a directory audience of %d ids (Redis held):" % N)
    for what, groups in (("one group", ["all"]),
                         ("two overlapping groups", ["a", "b"])):
        for how, step in (("at once", N * 2), ("in steps of 10,000", 10000)):
            t0 = time.monotonic()
            calls, ids, us = resolve(r, "b", groups, step)
            wall = time.monotonic() - t0
            us.sort()
            print("  %-22s %-18s %4d calls, %d ids: longest %.1f ms, "
                  "median %.1f ms, in all %.2f s (%.2f s from the client)"
                  % (what, how, calls, ids, us[-1] / 1e3,
                     us[len(us) // 2] / 1e3, sum(us) / 1e6, wall))
