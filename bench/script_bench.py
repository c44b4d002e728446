"""Redis CPU per LINE multicast member of the two scripts that record
recipients (commit_page when the expander enqueues a 500-member job,
finish when its result comes back), measured alone by INFO commandstats
on a private redis-server, member by member and with a delivered
multicast recorded once (docs/multicast-record.md, step 1); and, for its
step 2, both steps with a multicast's members as ONE record of
bc:<id>:r (a prototype written here, not kairan's code: no dead member,
no duplicate, no ack).  Then the submit's RPUSH of a large
audience, unpacked and packed (audience_push).  Figures only; nothing is
asserted.

  python3 bench/script_bench.py          (K=200 groups of 500 by default)
"""
import json
import os
import re
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import BUILD, Redis, tmpdir  # noqa: E402

K = int(os.environ.get("K", "200"))
M = 500
COMMIT = r'''
if redis.call('HGET', KEYS[1], 'status') == 'cancelled' then return {-1, 0} end
local xc = tonumber(redis.call('HGET', KEYS[1], 'xc') or '0')
if xc ~= tonumber(ARGV[1]) then return {0, 0} end
local n = tonumber(ARGV[4])
local bis = {}
for k = 1, n do bis[k] = ARGV[5 + k] end
local dead = redis.call('SMISMEMBER', ARGV[3], unpack(bis))
for k = 1, n do if dead[k] == 1 then return {-2, k} end end -- a slow path would rebuild the job
redis.call('XADD', KEYS[3], '*', 'j', ARGV[5])
redis.call('HSET', KEYS[2], ARGV[2], 'q|' .. n)
redis.call('HINCRBY', KEYS[1], 'n:line:total', n)
redis.call('HINCRBY', KEYS[1], 'jobs', n)
redis.call('HSET', KEYS[1], 'xc', xc + 1)
return {1, n}
'''
# Step 2's prototype with what it would still need (docs/multicast-
# record.md): the de-duplication as a set of blind indexes per broadcast
# and channel (SMISMEMBER, then SADD), and, with index, a child -> group
# index (HSET of the members' ids, the group id as the value) for the
# readers that look a child up.  ARGV: xc, gid, dead set, n, job, then n
# blind indexes, then n recipient ids.  KEYS: bc, bc:r, stream, seen, g.
COMMIT2 = r'''
if redis.call('HGET', KEYS[1], 'status') == 'cancelled' then return {-1, 0} end
local xc = tonumber(redis.call('HGET', KEYS[1], 'xc') or '0')
if xc ~= tonumber(ARGV[1]) then return {0, 0} end
local n = tonumber(ARGV[4])
local dead = redis.call('SMISMEMBER', ARGV[3], unpack(ARGV, 6, 5 + n))
for k = 1, n do if dead[k] == 1 then return {-2, k} end end
local seen = redis.call('SMISMEMBER', KEYS[4], unpack(ARGV, 6, 5 + n))
for k = 1, n do if seen[k] == 1 then return {-3, k} end end
redis.call('SADD', KEYS[4], unpack(ARGV, 6, 5 + n))
if KEYS[5] then
  local t = {}
  for k = 1, n do t[2 * k - 1] = ARGV[5 + n + k]; t[2 * k] = ARGV[2] end
  redis.call('HSET', KEYS[5], unpack(t))
end
redis.call('XADD', KEYS[3], '*', 'j', ARGV[5])
redis.call('HSET', KEYS[2], '@' .. ARGV[2], 'q|' .. n)
redis.call('HINCRBY', KEYS[1], 'n:line:total', n)
redis.call('HINCRBY', KEYS[1], 'jobs', n)
redis.call('HSET', KEYS[1], 'xc', xc + 1)
return {1, n}
'''
FINISH = r'''
local cur = redis.call('HGET', KEYS[3], ARGV[2])
local n = tonumber(ARGV[4])
redis.call('XACK', KEYS[1], 'g', ARGV[1]); redis.call('XDEL', KEYS[1], ARGV[1])
if cur and string.byte(cur, 1) ~= 113 then return 0 end
redis.call('HSET', KEYS[3], ARGV[2], 'd|' .. n .. '|' .. ARGV[3] .. '|200')
redis.call('HINCRBY', KEYS[2], 'n:line:delivered', n)
redis.call('HINCRBY', KEYS[2], 'final', n)
return n
'''


def stat(r):
    info = r.call("INFO", "commandstats")
    info = info.decode() if isinstance(info, bytes) else info
    m = re.search(r"cmdstat_evalsha:calls=(\d+),usec=(\d+)", info)
    return int(m.group(2)) if m else 0


def dec(x):
    return x.decode() if isinstance(x, bytes) else x


def job_of(k):
    bis = ["%032x" % (k * M + i) for i in range(M)]
    rc = ["r%06d" % i for i in range(M)]
    return bis, rc, json.dumps({"b": "b%d" % k, "q": "line", "r": rc,
                                "a": ["k1." + "A" * 96 for _ in range(M)],
                                "i": bis}, separators=(",", ":"))


def today(r, once, tag):
    """commit_page and finish as kairan runs them (build/lua): a delivered
    multicast recorded once (once: its members name the group, finish
    writes one "@" field; docs/multicast-record.md), or member by member
    (what a retried or failed multicast still takes)."""
    lua = lambda n: open(os.path.join(BUILD, "lua", n + ".lua")).read()
    cp = dec(r.call("SCRIPT", "LOAD", lua("commit_page")))
    fi = dec(r.call("SCRIPT", "LOAD", lua("finish")))
    streams = ["kn:q:%s%s" % (s, tag) for s in ("u_email", "u_line",
                                               "u_push", "n_email", "n_line",
                                               "n_push")]
    for s in streams:
        r.call("XGROUP", "CREATE", s, "g", "$", "MKSTREAM")
    tc = tf = 0
    for k in range(K):
        bc = "kn:bc:t%s%d" % (tag, k)
        r.call("HSET", bc, "status", "sending", "tenant", "t", "xc", "0",
               "jobs", "0", "expanded", "1")
        # bc:r past the listpack limit, as in a large broadcast
        r.call("HSET", bc + ":r", *[x for i in range(600)
                                    for x in ("pad:%d" % i, "q|r000001")])
        bis, rc, job = job_of(k)
        args = ["0", "0", "kn:", "201", str(M), job,
                "line:p0.0" if once else ""]
        for i in range(M):
            args += ["line:" + bis[i], rc[i]]
        keys = [bc, bc + ":r"] + streams + [bc + ":m", bc + ":fam"]
        s0 = stat(r)
        r.call("EVALSHA", cp, len(keys), *keys, *args)
        tc += stat(r) - s0
        ent = r.call("XREADGROUP", "GROUP", "g", "c", "COUNT", "1",
                     "STREAMS", streams[1], ">")
        eid = dec(ent[0][1][0][0])
        fk = ["kn:dlq", "kn:active", streams[1], bc, bc + ":r"]
        now = str(int(time.time() * 1000))
        fa = ["g", now, eid, "delivered", "200 x-line-request-id=abc",
              "t%d" % k, "", "1"]
        if once:
            fa += [str(-M), "@line:p0.0",
                   "d|%s|%d|200 x-line-request-id=abc" % (now, M)]
        else:
            fa.append(str(M))
            for i in range(M):
                fa += ["line:" + bis[i],
                       "d|%s|%s|200 x-line-request-id=abc" % (rc[i], now)]
        s0 = stat(r)
        got = r.call("EVALSHA", fi, len(fk), *fk, *fa)
        tf += stat(r) - s0
        assert got == [M], got
    return tc / (K * M), tf / (K * M)


def one_record(r):
    cp = dec(r.call("SCRIPT", "LOAD", COMMIT))
    fi = dec(r.call("SCRIPT", "LOAD", FINISH))
    st = "kn:q:proto"
    r.call("XGROUP", "CREATE", st, "g", "$", "MKSTREAM")
    tc = tf = 0
    for k in range(K):
        bc = "kn:bc:p%d" % k
        r.call("HSET", bc, "status", "sending", "xc", "0")
        bis, rc, job = job_of(k)
        s0 = stat(r)
        got = r.call("EVALSHA", cp, 3, bc, bc + ":r", st, "0", "g:line:0:0",
                     "kn:dead:line", str(M), job, *bis)
        tc += stat(r) - s0
        assert got == [1, M], got
        ent = r.call("XREADGROUP", "GROUP", "g", "c", "COUNT", "1",
                     "STREAMS", st, ">")
        eid = dec(ent[0][1][0][0])
        s0 = stat(r)
        got = r.call("EVALSHA", fi, 3, st, bc, bc + ":r", eid, "g:line:0:0",
                     str(int(time.time() * 1000)), str(M))
        tf += stat(r) - s0
        assert got == M, got
    return tc / (K * M), tf / (K * M)


def step2(r, index):
    """COMMIT2 alone (with or without the child index): us per member."""
    cp = dec(r.call("SCRIPT", "LOAD", COMMIT2))
    st = "kn:q:s2%d" % index
    r.call("XGROUP", "CREATE", st, "g", "$", "MKSTREAM")
    tc = 0
    for k in range(K):
        bc = "kn:bc:s%d-%d" % (index, k)
        r.call("HSET", bc, "status", "sending", "xc", "0")
        # the broadcast's sets and index past their small encodings
        r.call("SADD", bc + ":seen", *["pad%d" % i for i in range(600)])
        keys = [bc, bc + ":r", st, bc + ":seen"]
        if index:
            r.call("HSET", bc + ":g", *[x for i in range(600)
                                        for x in ("pad%d" % i, "p0.0")])
            keys.append(bc + ":g")
        bis, rc, job = job_of(k)
        s0 = stat(r)
        got = r.call("EVALSHA", cp, len(keys), *keys, "0", "line:p0.0",
                     "kn:dead:line", str(M), job, *bis, *rc)
        tc += stat(r) - s0
        assert got == [1, M], got
    return tc / (K * M)


def audience_push():
    """The submit's RPUSH of 200,000 audience entries of 170 bytes in one
    MULTI, an entry to a list element or packed 1,000 to one ("k:" +
    entries a line each, a design tried and dropped: README "LINE
    expansion"), into a fresh redis-server and again after the same
    memory was used and freed (jemalloc keeps it a while): us per entry
    and Redis' minor page faults."""
    def rpush_us(r):
        info = r.call("INFO", "commandstats")
        info = info.decode() if isinstance(info, bytes) else info
        m = re.search(r"cmdstat_rpush:calls=(\d+),usec=(\d+)", info)
        return int(m.group(2)) if m else 0

    def minflt(pid):
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[7])
    ents = [b"i:%08d" % i + b"x" * 160 for i in range(200000)]
    for k in (1, 1000):
        els = ents if k == 1 else [b"k:" + b"\n".join(ents[i:i + k])
                                   for i in range(0, len(ents), k)]
        per = max(1, 1000 // k)
        cmds = [["MULTI"]] + [["RPUSH", "aud"] + els[i:i + per]
                              for i in range(0, len(els), per)] + [["EXEC"]]
        with Redis(tmpdir("aud-bench")) as r:
            pid = r.proc.pid
            for what in ("fresh", "warm"):
                u0, f0 = rpush_us(r), minflt(pid)
                r.client().pipeline(cmds)
                print("  audience RPUSH, %s, %s: %.3f us per entry, %d page "
                      "faults" % ("an entry to an element" if k == 1 else
                                  "1,000 to an element", what,
                                  (rpush_us(r) - u0) / len(ents),
                                  minflt(pid) - f0))
                r.call("DEL", "aud")


with Redis(tmpdir("script-bench")) as r:
    print("script_bench: %d multicast jobs of %d LINE members" % (K, M))
    c, f = today(r, False, "m")
    print("  member by member (a retried or failed multicast): commit_page "
          "%.2f us, finish %.2f us per member" % (c, f))
    c, f = today(r, True, "o")
    print("  recorded once (a delivered multicast, kairan's way): "
          "commit_page %.2f us, finish %.2f us per member" % (c, f))
    c2, f2 = one_record(r)
    print("  one record per multicast (prototype): commit %.2f us, "
          "finish %.2f us per member" % (c2, f2))
    print("  step 2's commit with its de-duplication set: %.2f us per "
          "member; and a child -> group index: %.2f" % (step2(r, 0),
                                                        step2(r, 1)))
audience_push()
