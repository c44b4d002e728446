#!/usr/bin/env python3
"""test_lua_scripts.py - every Redis script of queue/lua/, alone, in a real
redis-server: loaded with SCRIPT LOAD, run with EVALSHA, its effects on the
keys and its failure paths checked (wrong types, missing keys, a second
call of the same step).

The scripts are taken as the build embeds them: $(BUILD)/lua/<name>.lua,
each "--#include NAME" line of queue/lua/<name>.lua replaced by
queue/lua/lib/NAME.lua.  The first checks prove that this assembly is the
documented one and that kairand and kairanctl hold exactly these bytes, so
the files, the test and the binaries cannot drift apart.

A new script gets its check here (the last check fails for a script
without one)."""

import hashlib
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401

tap = TAP()
out = tmpdir("lua")
SRC = os.path.join(ROOT, "queue", "lua")
LIB = os.path.join(SRC, "lib")
BUILT = os.path.join(BUILD, "lua")
P = "kt:"          # key prefix of these tests
NOW = 1700000000000

names = sorted(f[:-4] for f in os.listdir(SRC) if f.endswith(".lua"))
tested = set()


def assemble(name):
    """queue/lua/<name>.lua with its includes, as mk/lua-include.awk does."""
    outl = []
    with open(os.path.join(SRC, name + ".lua")) as f:
        for line in f.read().splitlines():
            m = re.match(r"^--#include (\S+)", line)
            if m:
                with open(os.path.join(LIB, m.group(1) + ".lua")) as g:
                    outl += g.read().splitlines()
            else:
                outl.append(line)
    return ("\n".join(outl) + "\n").encode()


def b(v):
    return v.encode() if isinstance(v, str) else v


def hgetall(c, k):
    v = c.call("HGETALL", k)
    return {v[i].decode(): v[i + 1].decode() for i in range(0, len(v), 2)}


with Redis(out) as r:
    c = r.client()
    sha = {}

    with tap.check("%d scripts; each $(BUILD)/lua/<name>.lua is its file with "
                   "the includes in place" % len(names)):
        assert len(names) >= 29, names
        built = sorted(f[:-4] for f in os.listdir(BUILT) if f.endswith(".lua"))
        assert set(names) <= set(built), set(names) - set(built)
        for n in names:
            with open(os.path.join(BUILT, n + ".lua"), "rb") as f:
                assert f.read() == assemble(n), "%s: build/lua differs" % n
            assert b"--#include" not in assemble(n), n

    with tap.check("no C file holds Lua; queue/lua.h declares every script"):
        with open(os.path.join(ROOT, "queue", "lua.h")) as f:
            declared = set(re.findall(r"kn_lua_(\w+)\[\]", f.read()))
        assert declared == set(names), (declared ^ set(names))
        for d in ("adapters", "cli", "common", "config", "dispatcher", "model", "queue"):
            for root, _, files in os.walk(os.path.join(ROOT, d)):
                for fn in files:
                    if fn.endswith((".c", ".h")):
                        with open(os.path.join(root, fn), errors="replace") as f:
                            t = f.read()
                        assert "redis.call(" not in t, os.path.join(root, fn)

    with tap.check("SCRIPT LOAD of every script; kairand and kairanctl embed "
                   "exactly these bytes (same SHA-1)"):
        bins = {}
        for prog in ("kairand", "kairanctl"):
            with open(os.path.join(BUILD, prog), "rb") as f:
                bins[prog] = f.read()
        for n in names:
            text = assemble(n)
            sha[n] = c.call("SCRIPT", "LOAD", text).decode()
            assert sha[n] == hashlib.sha1(text).hexdigest(), n
            for prog, data in bins.items():
                assert text + b"\0" in data, "%s: not embedded in %s as is" % (n, prog)

    def ev(name, keys, args=()):
        tested.add(name)
        return c.call("EVALSHA", sha[name], len(keys), *keys, *args)

    def err(name, keys, args=()):
        try:
            ev(name, keys, args)
        except RedisError as e:
            return str(e)
        raise AssertionError("%s: no error" % name)

    # ---- broadcasts -------------------------------------------------------
    def bc(n, sfx=""):
        return P + "bc:" + n + sfx

    def submit_keys(n, tenant="t1", prefix=P):
        return [prefix + "bc:" + n, prefix + "bc:" + n + ":aud", prefix + "broadcasts",
                prefix + "bcs", prefix + "active", prefix + "idem:" + tenant,
                prefix + "categories"]

    with tap.check("submit: stores, announces, counts the category; the same "
                   "key or name again creates nothing"):
        fields = ["id", "b1", "tenant", "t1", "category", "emergency"]
        got = ev("submit", submit_keys("b1"), ["b1", NOW, "k1", len(fields)] + fields + ["i:1"])
        assert got == [1, b"b1"], got
        h = hgetall(c, bc("b1"))
        assert h["status"] == "queued" and h["inline_n"] == "1" and h["category"] == "emergency", h
        assert c.call("LRANGE", bc("b1", ":aud"), 0, -1) == [b"i:1"]
        assert c.call("XLEN", P + "broadcasts") == 1
        assert c.call("HGET", P + "categories", "emergency") == b"1"
        assert c.call("ZSCORE", P + "active", "b1") is not None
        assert c.call("HGET", P + "idem:t1", "k1") == b"b1"
        got = ev("submit", submit_keys("b2"), ["b2", NOW, "k1", len(fields)] + fields)
        assert got == [0, b"b1"], got
        got = ev("submit", submit_keys("b1"), ["b1", NOW, "", len(fields)] + fields)
        assert got == [0, b"b1"], got
        assert c.call("EXISTS", bc("b2")) == 0 and c.call("XLEN", P + "broadcasts") == 1
        assert c.call("HGET", P + "categories", "emergency") == b"1"

    with tap.check("submit: a key of the wrong type is refused before any write"):
        c.call("SET", "kw:bcs", "x")
        e = err("submit", submit_keys("b1", prefix="kw:"), ["b1", NOW, "", 0])
        assert e.startswith("WRONGTYPE kw:bcs holds a string"), e
        assert c.call("EXISTS", "kw:bc:b1") == 0 and c.call("EXISTS", "kw:broadcasts") == 0

    with tap.check("submit with a staging list (a large audience, sent in "
                   "MULTI): renamed to bc:aud when stored, deleted whenever "
                   "nothing is; a short list is refused"):
        fields = ["id", "s1", "tenant", "t1", "category", "notice"]
        sk = lambda n: submit_keys(n) + [P + "cats:t1", P + "tbcs:t1",
                                          bc(n, ":aud_in")]
        c.call("RPUSH", bc("s1", ":aud_in"), "i:1", "i:2", "i:3")
        got = ev("submit", sk("s1"), ["s1", NOW, "k9", len(fields)] + fields + [3])
        assert got == [1, b"s1"], got
        assert c.call("LRANGE", bc("s1", ":aud"), 0, -1) == [b"i:1", b"i:2", b"i:3"]
        assert c.call("EXISTS", bc("s1", ":aud_in")) == 0
        assert c.call("TTL", bc("s1", ":aud")) == -1
        assert hgetall(c, bc("s1"))["inline_n"] == "3"
        # the tenant's own index (the my page reads it)
        assert c.call("ZSCORE", P + "tbcs:t1", "s1") == str(NOW).encode()
        # The same key again: nothing stored, the staging list gone.
        c.call("RPUSH", bc("s2", ":aud_in"), "i:9")
        got = ev("submit", sk("s2"), ["s2", NOW, "k9", len(fields)] + fields + [1])
        assert got == [0, b"s1"], got
        assert c.call("EXISTS", bc("s2", ":aud_in")) == 0
        assert c.call("EXISTS", bc("s2", ":aud")) == 0
        # A category the tenant does not have: the same.
        c.call("RPUSH", bc("s3", ":aud_in"), "i:9")
        got = ev("submit", sk("s3"), ["s3", NOW, "", 4, "id", "s3", "category",
                                      "nosuch"] + [1])
        assert got[0] == 2, got
        assert c.call("EXISTS", bc("s3", ":aud_in")) == 0
        # One RPUSH of the transaction refused (say, for memory): the list
        # is short, nothing is stored, and the error says to submit again.
        c.call("RPUSH", bc("s4", ":aud_in"), "i:1", "i:2")
        e = err("submit", sk("s4"), ["s4", NOW, "", len(fields)] + fields + [3])
        assert "incomplete (2 of 3 entries); submit again" in e, e
        assert c.call("EXISTS", bc("s4")) == 0
        assert c.call("EXISTS", bc("s4", ":aud_in")) == 0

    with tap.check("reject: keeps a rejected broadcast once"):
        keys = [bc("rj"), P + "rejected", P + "bcs"]
        assert ev("reject", keys, ["rj", NOW, "bad subject", "subject", "{}", "t1"]) == 1
        h = hgetall(c, bc("rj"))
        assert h["status"] == "rejected" and h["reason"] == "bad subject" and h["expanded"] == "1"
        assert c.call("ZSCORE", P + "rejected", "rj") is not None
        assert ev("reject", keys, ["rj", NOW, "other", "x", "{}", "t1"]) == 0
        assert c.call("HGET", bc("rj"), "reason") == b"bad subject"

    with tap.check("resolve: groups and ids, encoded keys, de-duplicated and "
                   "sorted, once; unknown group or recipient writes nothing"):
        c.call("SADD", P + "grp:t1:2-A", "r2", "r1")
        c.call("SADD", P + "grp:t1:a%3Ab", "r3")          # group "a:b", kp-encoded
        c.call("HSET", P + "rcpt:t1:r%2F9", "c", "x")      # recipient "r/9"
        c.call("HSET", P + "rcpt:t1:r1", "c", "x")
        c.call("HSET", bc("rs"), "status", "queued")
        keys = [bc("rs"), bc("rs", ":aud")]
        got = ev("resolve", keys, [P, "t1", 10000, 2, "2-A", "a:b", "r/9", "r1"])
        assert got == [1, 4, 0], got
        assert c.call("LRANGE", bc("rs", ":aud"), 0, -1) == [b"d:r/9", b"d:r1", b"d:r2", b"d:r3"]
        assert c.call("HGET", bc("rs"), "status") == b"sending"
        assert ev("resolve", keys, [P, "t1", 10000, 1, "2-A"]) == [1, 4, 0]
        assert c.call("LLEN", bc("rs", ":aud")) == 4
        c.call("HSET", bc("ru"), "status", "queued")
        got = ev("resolve", [bc("ru"), bc("ru", ":aud")], [P, "t1", 10000, 1, "2-A", "nobody"])
        assert got[0] == 0 and got[1].startswith(b"audience.recipients[0]"), got
        got = ev("resolve", [bc("ru"), bc("ru", ":aud")], [P, "t1", 10000, 1, "2-B"])
        assert got[0] == 0 and got[1].startswith(b"audience.groups[0]"), got
        assert c.call("EXISTS", bc("ru", ":aud")) == 0 and c.call("HGET", bc("ru"), "resolved") is None
        c.call("HSET", bc("rc"), "status", "cancelled")
        assert ev("resolve", [bc("rc"), bc("rc", ":aud")], [P, "t1", 10000, 0]) == [2, 0]

    with tap.check("resolve: emg, the emergency decision, made once from the "
                   "category and the tenant's list (issue 16)"):
        cats = P + "cats:t1"
        c.call("HSET", cats, "地震", "emergency", "行事", "")
        for n, cat, want in (("re1", "emergency", 1), ("re2", "地震", 1),
                             ("re3", "行事", 0), ("re4", "notice", 0)):
            c.call("HSET", bc(n), "status", "queued", "category", cat)
            got = ev("resolve", [bc(n), bc(n, ":aud"), cats], [P, "t1", 10000, 1, "2-A"])
            assert got == [1, 2, want], (cat, got)
            assert c.call("HGET", bc(n), "emg") == str(want).encode()
        c.call("HSET", cats, "行事", "emergency")   # later changes: decided once
        assert ev("resolve", [bc("re3"), bc("re3", ":aud"), cats], [P, "t1", 10000, 1, "2-A"]) == [1, 2, 0]

    with tap.check("resolve: an audience larger than the step is written "
                   "in calls of about the step: ids, then each group by "
                   "SSCAN, each id once, its cursor and seen set gone at "
                   "the end; a cancel between calls ends it"):
        g1 = ["m%02d" % i for i in range(25)]
        g2 = ["m%02d" % i for i in range(20, 35)]
        c.call("SADD", P + "grp:t1:G-1", *g1)
        c.call("SADD", P + "grp:t1:g%3A2", *g2)           # group "g:2"
        c.call("HSET", P + "rcpt:t1:m03", "c", "x")
        c.call("HSET", bc("rq"), "status", "queued", "groups",
               json.dumps(["G-1", "g:2"]))
        keys = [bc("rq"), bc("rq", ":aud"), P + "cats:t1", bc("rq", ":seen")]
        got = ev("resolve", keys, [P, "t1", 4, 2, "G-1", "g:2", "r/9", "m03",
                                   "r/9"])
        assert got == [3, 2], got      # an id given twice: once
        assert c.call("LRANGE", bc("rq", ":aud"), 0, -1) == [b"d:r/9", b"d:m03"]
        calls, last = 1, 2
        while got[0] == 3:
            if calls == 2:   # as if Redis had restarted: the scan again
                c.call("HSET", bc("rq"), "res_r", "0" * 40)
            got = ev("resolve", keys, [P, "t1", 4])
            calls += 1
            assert got[0] in (1, 3) and got[1] >= last, got
            assert got[0] == 1 or got[1] - last <= 4 + 25, (got, last)
            assert got[0] == 1 or len(c.call("HGET", bc("rq"), "res_r")) == 40
            last = got[1]
            assert calls < 40, calls
        aud = c.call("LRANGE", bc("rq", ":aud"), 0, -1)
        want = {b"d:" + m.encode() for m in g1 + g2} | {b"d:r/9"}
        assert got == [1, 36, 0] and len(aud) == 36 and set(aud) == want, \
            (got, sorted(aud))
        assert calls >= 3, calls
        h = hgetall(c, bc("rq"))
        assert h["resolved"] == "1" and h["aud_n"] == "36" and \
            h["status"] == "sending" and "res_g" not in h and \
            "res_c" not in h and "res_r" not in h, h
        assert c.call("EXISTS", bc("rq", ":seen")) == 0
        assert ev("resolve", keys, [P, "t1", 4]) == [1, 36, 0]
        # Redis lost the first call's writes (a failover): the next call,
        # which would go on, starts again with the names bc keeps
        c.call("HSET", bc("rl"), "status", "queued", "groups",
               json.dumps(["G-1", "g:2"]), "rcpt_ids", json.dumps(["r/9"]))
        kl = [bc("rl"), bc("rl", ":aud"), P + "cats:t1", bc("rl", ":seen")]
        got = ev("resolve", kl, [P, "t1", 4])
        assert got == [3, 1], got
        while got[0] == 3:
            got = ev("resolve", kl, [P, "t1", 4])
        aud = c.call("LRANGE", bc("rl", ":aud"), 0, -1)
        assert got == [1, 36, 0] and set(aud) == want, (got, sorted(aud))
        # a cancel between two calls: the next one ends it, seen set gone
        c.call("HSET", bc("rx"), "status", "queued", "groups", '["G-1"]')
        kx = [bc("rx"), bc("rx", ":aud"), P + "cats:t1", bc("rx", ":seen")]
        assert ev("resolve", kx, [P, "t1", 4, 1, "G-1"]) == [3, 0]
        assert ev("resolve", kx, [P, "t1", 4])[0] == 3
        assert c.call("EXISTS", bc("rx", ":seen")) == 1
        c.call("HSET", bc("rx"), "status", "cancelled")
        assert ev("resolve", kx, [P, "t1", 4]) == [2, 0]
        assert c.call("EXISTS", bc("rx", ":seen")) == 0

    with tap.check("resolve: a group that grows (and rehashes) while it is "
                   "read in steps: every id there all along is written, "
                   "none twice"):
        first = ["a%05d" % i for i in range(3000)]
        for i in range(0, len(first), 500):
            c.call("SADD", P + "grp:t1:big", *first[i:i + 500])
        c.call("HSET", bc("rg"), "status", "queued", "groups", '["big"]')
        keys = [bc("rg"), bc("rg", ":aud"), P + "cats:t1", bc("rg", ":seen")]
        got = ev("resolve", keys, [P, "t1", 250, 1, "big"])
        n = 0
        while got[0] == 3:
            n += 1
            if n % 2 == 0 and n < 12:   # grow it: the table doubles
                c.call("SADD", P + "grp:t1:big",
                       *["b%02d%04d" % (n, i) for i in range(1500)])
            got = ev("resolve", keys, [P, "t1", 250])
        aud = c.call("LRANGE", bc("rg", ":aud"), 0, -1)
        assert got[0] == 1 and got[1] == len(aud), got
        assert len(set(aud)) == len(aud), "an id written twice"
        assert {b"d:" + m.encode() for m in first} <= set(aud)
        tap.diag("grew from 3,000 to %d; %d written in %d calls" %
                 (c.call("SCARD", P + "grp:t1:big"), len(aud), n + 1))

    streams = [P + "q:" + s for s in ("email:urgent", "email:normal", "line:urgent",
                                      "line:normal", "push:urgent", "push:normal")]

    def page_keys(n):
        return [bc(n), bc(n, ":r")] + streams + [bc(n, ":m")]

    def commit_page(keys, args):
        """commit_page's {code, jobs}; a page committed also returns the
        six streams' lengths after it (the expander's depth check)."""
        r = ev("commit_page", keys, args)
        if r[0] == 1:
            assert r[2:] == [c.call("XLEN", s) for s in streams], r
        else:
            assert len(r) == 2, r
        return r[:2]

    with tap.check("commit_page: the next page only, once, never ahead; a dead address gets "
                   "no job; a LINE group job; cancelled"):
        c.call("HSET", bc("cp"), "status", "sending", "ack", "1")
        c.call("SADD", P + "dead:email", "bi2")
        args = [0, 1, P, 0, "email:bi1", '{"b":"cp"}', "r1", 1, "email:bi2", '{"b":"cp"}', "r2"]
        assert commit_page(page_keys("cp"), args) == [1, 1]
        assert c.call("XLEN", streams[0]) == 1 and c.call("XLEN", streams[1]) == 0
        rr = hgetall(c, bc("cp", ":r"))
        assert rr == {"email:bi1": "q|r1", "email:bi2": "x|r2|0|dead"}, rr
        h = hgetall(c, bc("cp"))
        assert (h["jobs"], h["xc"], h["n:email:total"], h["n:email:dead"], h["unreachable"],
                h["ack_m"]) == ("1", "1", "1", "1", "1", "1"), h
        assert sorted(c.call("SMEMBERS", bc("cp", ":m"))) == [b"r1", b"r2"]
        assert commit_page(page_keys("cp"), args) == [0, 0]          # again: nothing
        # a page after the next (its commit came before the next one's):
        # nothing, and the checkpoint says where the broadcast is
        assert commit_page(page_keys("cp"), [2] + args[1:]) == [-2, 1]
        assert c.call("HGET", bc("cp"), "xc") == b"1"
        assert c.call("XLEN", streams[0]) == 1 and c.call("HGET", bc("cp"), "jobs") == b"1"
        # fields, records, sealed addresses, indexes: each a block
        grp = [1, 0, P, 103, 3, '{"b":"cp"}', "",
               "line:u1", "line:u2", "line:u1", "q|r1", "q|r2", "q|r1",
               "s1", "s2", "s1", "u1", "u2", "u1"]
        assert commit_page(page_keys("cp"), grp) == [1, 2]
        e = c.call("XRANGE", streams[3], "-", "+")
        assert len(e) == 1, e
        import json
        job = json.loads(e[0][1][1])
        assert job["r"] == ["r1", "r2"] and job["a"] == ["s1", "s2"] and job["i"] == ["u1", "u2"], job
        c.call("HSET", bc("cp"), "status", "cancelled")
        assert commit_page(page_keys("cp"), [2, 0, P]) == [-1, 0]

    with tap.check("commit_page: a whole LINE group job is enqueued as given "
                   "when every member is new, else with the new ones only"):
        import json
        c.call("HSET", bc("cw"), "status", "sending")
        c.call("SADD", P + "dead:line", "w4")
        whole = json.dumps({"b": "cw", "key": "line:p0.0", "r": ["r1", "r2"],
                            "a": ["s1", "s2"], "i": ["w1", "w2"]},
                           separators=(",", ":"))
        assert commit_page(page_keys("cw"),
                  [0, 0, P, 203, 2, whole, "", "line:w1", "line:w2",
                   "q|r1", "q|r2"]) == [1, 2]
        e = c.call("XRANGE", streams[3], "-", "+")
        assert e[-1][1][1].decode() == whole, e[-1]
        n0 = c.call("XLEN", streams[3])
        # w1 again (taken before), w3 twice, w4 dead: only w3, once.
        part = json.dumps({"b": "cw", "key": "line:p1.0",
                           "r": ["r1", "r3", "r3b", "r4"],
                           "a": ["s1", "s3", "s3", "s4"],
                           "i": ["w1", "w3", "w3", "w4"]})
        assert commit_page(page_keys("cw"),
                  [1, 0, P, 203, 4, part, "", "line:w1", "line:w3",
                   "line:w3", "line:w4", "q|r1", "q|r3", "q|r3b",
                   "q|r4"]) == [1, 1]
        e = c.call("XRANGE", streams[3], "-", "+")
        assert c.call("XLEN", streams[3]) == n0 + 1, e
        job = json.loads(e[-1][1][1])
        assert (job["r"], job["a"], job["i"], job["key"]) == (
            ["r3"], ["s3"], ["w3"], "line:p1.0"), job
        rr = hgetall(c, bc("cw", ":r"))
        assert rr == {"line:w1": "q|r1", "line:w2": "q|r2", "line:w3": "q|r3",
                      "line:w4": "x|r4|0|dead"}, rr
        h = hgetall(c, bc("cw"))
        assert (h["jobs"], h["n:line:total"], h["n:line:dead"]) == (
            "3", "3", "1"), h
        # All members taken before: no job at all.
        assert commit_page(page_keys("cw"),
                  [2, 0, P, 203, 1, whole, "", "line:w2", "q|r2"]) == [1, 0]
        assert c.call("XLEN", streams[3]) == n0 + 1

    with tap.check("expand_done: done when every job is final; leaves active, enters "
                   "the index of the just ended (trimmed to 15 minutes)"):
        c.call("HSET", bc("ed"), "status", "sending", "jobs", 1, "final", 0)
        c.call("ZADD", P + "active", NOW, "ed")
        c.call("ZADD", P + "ended", NOW - 15 * 60 * 1000 - 1, "old", NOW - 15 * 60 * 1000, "edge")
        assert ev("expand_done", [bc("ed"), P + "active"], ["ed", NOW]) == b"sending"
        assert c.call("ZSCORE", P + "ended", "ed") is None
        c.call("HSET", bc("ed"), "final", 1)
        assert ev("expand_done", [bc("ed"), P + "active"], ["ed", NOW]) == b"done"
        assert c.call("ZSCORE", P + "active", "ed") is None
        assert c.call("HGET", bc("ed"), "done_ms") == str(NOW).encode()
        assert c.call("ZRANGE", P + "ended", 0, -1) == [b"edge", b"ed"]
        assert ev("expand_done", [bc("ed"), P + "active"], ["ed", NOW + 5]) == b"done"
        assert c.call("ZSCORE", P + "ended", "ed") == str(NOW).encode()  # once
        c.call("SET", P + "act-str", "x")      # active of the wrong type: only an index
        c.call("HSET", bc("ed2"), "status", "sending", "jobs", 0, "final", 0)
        assert ev("expand_done", [bc("ed2"), P + "act-str"], ["ed2", NOW]) == b"done"

    with tap.check("precheck: status, expiry, recipient state; empty for the unknown"):
        c.call("HSET", bc("pc"), "status", "sending", "expires_ms", 5)
        c.call("HSET", bc("pc", ":r"), "email:x", "q|r1")
        assert ev("precheck", [bc("pc"), bc("pc", ":r")], ["email:x"]) == [b"sending", b"5", b"q|r1"]
        assert ev("precheck", [bc("none"), bc("none", ":r")], ["email:x"]) == [b"", b"0", b""]

    def pend(stream, group="g", consumer="c1"):
        eid = c.call("XADD", stream, "*", "j", "{}")
        try:
            c.call("XGROUP", "CREATE", stream, group, "0")
        except RedisError:
            pass
        c.call("XREADGROUP", "GROUP", group, consumer, "COUNT", 100, "STREAMS", stream, ">")
        return eid

    def finish_args(eid, state, n="fn", field="email:f1", rcpt="r1", job=None):
        code = {"delivered": "d", "failed": "f"}.get(state, "?")
        job = '{"b":"%s"}' % n if job is None else job
        return [eid, state, "250 ok", n, job, 1, 1, field,
                "%s|%s|%d|250 ok" % (code, rcpt, NOW)]

    with tap.check("finish: records, counts, acks and deletes, ends the broadcast; "
                   "twice counts once; failed goes to the DLQ"):
        st = P + "q:email:normal:f"
        c.call("HSET", bc("fn"), "status", "sending", "expanded", 1, "jobs", 2, "final", 0)
        c.call("HSET", bc("fn", ":r"), "email:f1", "q|r1", "email:f2", "q|r2")
        c.call("ZADD", P + "active", NOW, "fn")
        e1 = pend(st)
        keys = [P + "dlq", P + "active", st, bc("fn"), bc("fn", ":r")]
        assert ev("finish", keys, ["g", NOW] + finish_args(e1, "delivered")) == [1]
        assert c.call("HGET", bc("fn", ":r"), "email:f1") == ("d|r1|%d|250 ok" % NOW).encode()
        assert c.call("XLEN", st) == 0 and c.call("XPENDING", st, "g")[0] == 0
        assert ev("finish", keys, ["g", NOW] + finish_args(e1, "delivered")) == [0]
        h = hgetall(c, bc("fn"))
        assert h["final"] == "1" and h["n:email:delivered"] == "1" and h["status"] == "sending", h
        e2 = pend(st)
        got = ev("finish", keys, ["g", NOW] + finish_args(e2, "failed", field="email:f2", rcpt="r2"))
        assert got == [1], got
        h = hgetall(c, bc("fn"))
        assert h["final"] == "2" and h["status"] == "done" and h["n:email:failed"] == "1", h
        assert c.call("ZSCORE", P + "active", "fn") is None
        d = c.call("XRANGE", P + "dlq", "-", "+")
        assert len(d) == 1 and b"email:f2" in d[0][1], d

    with tap.check("finish: a job whose keys hold the wrong type goes to the DLQ "
                   "(-1); an unknown state or a DLQ of the wrong type is an error"):
        st = P + "q:email:normal:f"
        c.call("SET", bc("fw"), "x")
        e3 = pend(st)
        keys = [P + "dlq", P + "active", st, bc("fw"), bc("fw", ":r")]
        assert ev("finish", keys, ["g", NOW] + finish_args(e3, "delivered", n="fw")) == [-1]
        assert c.call("XLEN", P + "dlq") == 2 and c.call("XLEN", st) == 0
        e4 = pend(st)
        e = err("finish", keys, ["g", NOW] + finish_args(e4, "sent", n="fw"))
        assert "unknown state" in e, e
        c.call("SET", P + "dlq-str", "x")
        e = err("finish", [P + "dlq-str"] + keys[1:], ["g", NOW] + finish_args(e4, "delivered", n="fw"))
        assert e.startswith("WRONGTYPE"), e
        assert c.call("XLEN", st) == 1           # nothing written
        c.call("DEL", st)

    with tap.check("finish: a delivered job's text comes from its stream entry when "
                   "its DLQ entry needs it; records as sent, a final one kept; "
                   "a count that does not match the records is refused"):
        st = P + "q:line:normal:f"
        c.call("SET", bc("fj"), "x")
        e5 = c.call("XADD", st, "*", "j", '{"b":"fj","r":["r1","r2"]}')
        c.call("XGROUP", "CREATE", st, "g", "0")
        c.call("XREADGROUP", "GROUP", "g", "c1", "COUNT", 10, "STREAMS", st, ">")
        keys = [P + "dlq", P + "active", st, bc("fj"), bc("fj", ":r")]
        assert ev("finish", keys, ["g", NOW] + finish_args(e5, "delivered", n="fj", job="")) == [-1]
        d = c.call("XREVRANGE", P + "dlq", "+", "-", "COUNT", 1)[0][1]
        d = dict(zip(d[::2], d[1::2]))
        assert d[b"job"] == b'{"b":"fj","r":["r1","r2"]}' and d[b"field"] == b"email:f1", d
        c.call("DEL", bc("fj"))
        c.call("HSET", bc("fk"), "status", "sending", "jobs", 3, "final", 0)
        c.call("HSET", bc("fk", ":r"), "line:b", "d|r2|1|200")
        e6 = c.call("XADD", st, "*", "j", "{}")
        c.call("XREADGROUP", "GROUP", "g", "c1", "COUNT", 10, "STREAMS", st, ">")
        keys = [P + "dlq", P + "active", st, bc("fk"), bc("fk", ":r")]
        args = [e6, "delivered", "200", "fk", "", 1, 3, "line:a", "d|r1|%d|200" % NOW,
                "line:b", "d|r2|%d|200" % NOW, "line:a", "d|r1|%d|200" % NOW]
        bad = ["g", NOW] + args[:6] + [4] + args[7:]
        assert err("finish", keys, bad).startswith("ERR job 1")
        assert err("finish", keys, ["g", NOW] + args + ["x"]).startswith("ERR arguments left")
        assert ev("finish", keys, ["g", NOW] + args) == [1]
        h = hgetall(c, bc("fk", ":r"))
        assert h == {"line:a": "d|r1|%d|200" % NOW, "line:b": "d|r2|1|200"}, h
        h = hgetall(c, bc("fk"))
        assert h["final"] == "1" and h["n:line:delivered"] == "1", h
        assert err("finish", keys + [st], ["g", NOW] + args).startswith("ERR keys")

    with tap.check("finish: a job of more than 2,000 recipients goes to the DLQ with "
                   "its reason; a broadcast whose counters are no integers keeps "
                   "the others of the batch from nothing"):
        st = P + "q:line:normal:f2"
        c.call("XGROUP", "CREATE", st, "g", "0", "MKSTREAM")
        for n in ("fx", "fy", "fz"):
            c.call("HSET", bc(n), "status", "sending", "expanded", 1, "jobs", 1, "final", 0)
        c.call("HSET", bc("fx"), "final", "x", "n:line:delivered", "y")   # tampered
        e = [c.call("XADD", st, "*", "j", '{"b":"%s"}' % n) for n in ("fx", "fy", "fz")]
        c.call("XREADGROUP", "GROUP", "g", "c1", "COUNT", 10, "STREAMS", st, ">")
        keys, args = [P + "dlq", P + "active"], ["g", NOW]
        for n, eid in zip(("fx", "fy", "fz"), e):
            keys += [st, bc(n), bc(n, ":r")]
        big = 2001
        args += [e[0], "delivered", "200", "fx", "", 1, 1, "line:a", "d|r1|%d|200" % NOW]
        args += [e[1], "delivered", "200", "fy", "", 1, big]
        for k in range(big):
            args += ["line:m%d" % k, "d|r%d|%d|200" % (k, NOW)]
        args += [e[2], "delivered", "200", "fz", "", 1, 1, "line:a", "d|r1|%d|200" % NOW]
        n0 = c.call("XLEN", P + "dlq")
        assert ev("finish", keys, args) == [1, -1, 1]
        assert c.call("XLEN", st) == 0
        d = c.call("XREVRANGE", P + "dlq", "+", "-", "COUNT", 1)[0][1]
        d = dict(zip(d[::2], d[1::2]))
        assert c.call("XLEN", P + "dlq") == n0 + 1 and b"more than 2000" in d[b"reason"], d
        assert d[b"job"] == b'{"b":"fy"}' and d[b"field"].count(b",") == big - 1
        assert c.call("HLEN", bc("fy", ":r")) == 0
        h = hgetall(c, bc("fz"))
        assert (h["final"], h["n:line:delivered"], h["status"]) == ("1", "1", "done"), h
        h = hgetall(c, bc("fx"))
        assert h["status"] == "sending" and h["final"] == "x", h
        assert c.call("HGET", bc("fx", ":r"), "line:a").startswith(b"d|r1|")

    with tap.check("keep: resets the idle time of held jobs; names the lost ones"):
        su, sn = P + "q:line:urgent:k", P + "q:line:normal:k"
        e1 = pend(su)
        e2 = pend(sn, consumer="other")
        got = ev("keep", [su, sn], ["g", "c1", 1, e1, 2, e2, 1, "0-1"])
        assert got == [b"2", e2, b"1", b"0-1"], got
        assert c.call("XPENDING", su, "g", "-", "+", 10)[0][1] == b"c1"

    with tap.check("retry: parks the job, marks open fields; nothing when all are "
                   "final; refuses keys of the wrong type before any write"):
        st = P + "q:email:normal:r"
        c.call("HSET", bc("rt", ":r"), "email:a", "q|r1", "email:b", "d|r2|1|ok")
        e1 = pend(st)
        keys = [st, P + "retry", bc("rt", ":r")]
        assert ev("retry", keys, ["g", e1, NOW + 5, '{"q":"email:normal"}', "email:a,email:b",
                                  "r1,r2", "421 later"]) == 1
        assert c.call("HGET", bc("rt", ":r"), "email:a") == b"r|r1|421 later"
        assert c.call("HGET", bc("rt", ":r"), "email:b") == b"d|r2|1|ok"
        assert c.call("ZCARD", P + "retry") == 1 and c.call("XLEN", st) == 0
        e2 = pend(st)
        assert ev("retry", keys, ["g", e2, NOW, "{}", "email:b", "r2", "x"]) == 0
        assert c.call("ZCARD", P + "retry") == 1
        c.call("SET", P + "retry-str", "x")
        e3 = pend(st)
        e = err("retry", [st, P + "retry-str", bc("rt", ":r")], ["g", e3, NOW, "{}", "email:a", "r1", "x"])
        assert e.startswith("WRONGTYPE"), e
        assert c.call("XLEN", st) == 1

    with tap.check("a LINE multicast recorded once (docs/multicast-record.md): "
                   "commit_page names the group in its members, finish writes "
                   "one '@' field and counts them all, a second time -2 and "
                   "nothing; a member writer marks the group first"):
        st = streams[3]
        job = json.dumps({"b": "g1", "key": "line:p0.0", "gr": True,
                          "r": ["r1", "r2"], "a": ["s1", "s2"],
                          "i": ["g1a", "g1b"]}, separators=(",", ":"))
        gkeys = [P + "dlq", P + "active", st]

        def group_bc(n):
            c.call("HSET", bc(n), "status", "sending")
            assert commit_page(page_keys(n),
                      [0, 0, P, 203, 2, job, "line:p0.0", "line:%sa" % n,
                       "line:%sb" % n, "q|r1|line:p0.0",
                       "q|r2|line:p0.0"]) == [1, 2]
            c.call("HSET", bc(n), "expanded", 1)
            rr = hgetall(c, bc(n, ":r"))
            assert rr == {"line:%sa" % n: "q|r1|line:p0.0",
                          "line:%sb" % n: "q|r2|line:p0.0"}, rr
            return gkeys + [bc(n), bc(n, ":r")]

        def fast(eid, n, members=2):
            return [eid, "delivered", "200", n, "", 1, -members, "@line:p0.0",
                    "d|%d|%d|200" % (NOW, members)]

        def slow(eid, n, state="delivered"):
            code = {"delivered": "d", "failed": "f"}[state]
            return [eid, state, "200", n, job, 1, 2,
                    "line:%sa" % n, "%s|r1|%d|200" % (code, NOW),
                    "line:%sb" % n, "%s|r2|%d|200" % (code, NOW)]

        def pending(eid):
            return any(x[0] == eid for x in
                       c.call("XPENDING", st, "g", "-", "+", 100))

        # delivered: one record for the group, every member counted
        keys = group_bc("g1")
        c.call("ZADD", P + "active", NOW, "g1")
        e1 = pend(st)
        assert ev("finish", keys, ["g", NOW] + fast(e1, "g1")) == [2]
        rr = hgetall(c, bc("g1", ":r"))
        assert rr["@line:p0.0"] == "d|%d|2|200" % NOW, rr
        assert rr["line:g1a"] == "q|r1|line:p0.0", rr   # not rewritten
        h = hgetall(c, bc("g1"))
        assert (h["final"], h["n:line:delivered"], h["status"]) == (
            "2", "2", "done"), h
        assert not pending(e1)
        # a duplicate run recorded once: -2, nothing done, still pending;
        # then member by member: nothing final counted again, acked
        e2 = pend(st)
        assert ev("finish", keys, ["g", NOW + 1] + fast(e2, "g1")) == [-2]
        assert pending(e2)
        assert ev("finish", keys, ["g", NOW + 1] + slow(e2, "g1")) == [0]
        assert not pending(e2)
        h = hgetall(c, bc("g1"))
        assert (h["final"], h["n:line:delivered"]) == ("2", "2"), h
        assert hgetall(c, bc("g1", ":r"))["line:g1b"] == "q|r2|line:p0.0"
        # the readers: precheck and rstates read the members as delivered
        assert ev("precheck", [bc("g1"), bc("g1", ":r")], ["line:g1a"])[2] == \
            ("d|r1|%d|200" % NOW).encode()
        got = ev("rstates", [bc("g1", ":r")], ["line:g1b", "line:none",
                                                "line:g1a"])
        assert got == [("d|r2|%d|200" % NOW).encode(), None,
                       ("d|r1|%d|200" % NOW).encode()], got
        # retry of a delivered group: every member final, nothing parked
        e3 = pend(st)
        assert ev("retry", [st, P + "retry:g", bc("g1", ":r")],
                  ["g", e3, NOW, "{}", "line:g1a,line:g1b", "r1,r2", "x"]) == 0

        # a retry first: it marks the group; the original's duplicate
        # recorded once loses and comes member by member, counted once
        keys = group_bc("g2")
        e4 = pend(st)
        assert ev("retry", [st, P + "retry:g", bc("g2", ":r")],
                  ["g", e4, NOW, "{}", "line:g2a,line:g2b", "r1,r2",
                   "429"]) == 1
        rr = hgetall(c, bc("g2", ":r"))
        assert rr == {"@line:p0.0": "-", "line:g2a": "r|r1|429",
                      "line:g2b": "r|r2|429"}, rr
        assert ev("precheck", [bc("g2"), bc("g2", ":r")], ["line:g2a"])[2] == \
            b"r|r1|429"
        e5 = pend(st)
        assert ev("finish", keys, ["g", NOW] + fast(e5, "g2")) == [-2]
        assert ev("finish", keys, ["g", NOW] + slow(e5, "g2")) == [2]
        assert ev("finish", keys, ["g", NOW] + slow(e5, "g2")) == [0]
        h = hgetall(c, bc("g2"))
        assert (h["final"], h["n:line:delivered"]) == ("2", "2"), h

        # a failure first (member by member): it marks the group; a
        # delivery recorded once afterwards counts nothing
        keys = group_bc("g3")
        e6 = pend(st)
        assert ev("finish", keys, ["g", NOW] + slow(e6, "g3", "failed")) == [2]
        assert hgetall(c, bc("g3", ":r"))["@line:p0.0"] == "-"
        e7 = pend(st)
        assert ev("finish", keys, ["g", NOW] + fast(e7, "g3")) == [-2]
        assert ev("finish", keys, ["g", NOW] + slow(e7, "g3")) == [0]
        h = hgetall(c, bc("g3"))
        assert (h["final"], h["n:line:failed"]) == ("2", "2"), h
        assert "n:line:delivered" not in h, h
        # queued, not yet delivered: read as queued, without the group
        keys = group_bc("g4")
        assert ev("precheck", [bc("g4"), bc("g4", ":r")], ["line:g4a"])[2] == \
            b"q|r1"
        assert ev("rstates", [bc("g4", ":r")], ["line:g4a"]) == [b"q|r1"]
        # only a delivery is recorded once, only into an "@" field
        e8 = pend(st)
        bad = fast(e8, "g4")
        bad[1] = "failed"
        assert err("finish", keys, ["g", NOW] + bad).startswith("ERR job 1")
        bad = fast(e8, "g4")
        bad[7] = "line:g4a"
        assert err("finish", keys, ["g", NOW] + bad).startswith("ERR job 1")
        assert pending(e8)
        # a key of the wrong type: -2, so that it comes member by member
        # and the DLQ entry names its fields
        c.call("DEL", bc("g5"))
        c.call("SET", bc("g5"), "x")
        assert ev("finish", gkeys + [bc("g5"), bc("g5", ":r")],
                  ["g", NOW] + fast(e8, "g5")) == [-2]
        assert pending(e8)
        c.call("DEL", bc("g5"))
        # a group record tampered with ("d" without its shape) is no
        # delivery: read as queued, its members written and counted one by
        # one (before: retry dropped the job, a finish counted nothing)
        keys = group_bc("g7")
        c.call("HSET", bc("g7", ":r"), "@line:p0.0", "dX")
        assert ev("rstates", [bc("g7", ":r")], ["line:g7a"]) == [b"q|r1"]
        e9 = pend(st)
        assert ev("retry", [st, P + "retry:g", bc("g7", ":r")],
                  ["g", e9, NOW, "{}", "line:g7a", "r1", "429"]) == 1
        e10 = pend(st)
        assert ev("finish", keys, ["g", NOW] + slow(e10, "g7")) == [2]
        assert hgetall(c, bc("g7"))["n:line:delivered"] == "2"
        # rstates reads in parts (HMGET of more than Lua's unpack takes)
        c.call("HSET", bc("g6", ":r"), *sum((["line:m%d" % k, "q|r%d" % k]
                                             for k in range(2500)), []))
        got = ev("rstates", [bc("g6", ":r")],
                 ["line:m%d" % k for k in range(2500)] + ["line:none"])
        assert len(got) == 2501 and got[2499] == b"q|r2499" and got[-1] is None

    with tap.check("promote: due jobs back to their stream (key() from the job's "
                   "queue); an unreadable one to the DLQ"):
        z = P + "retry:p"
        c.call("ZADD", z, NOW - 1, '{"q":"push:urgent","n":1}', NOW - 1, "not json",
               NOW - 1, '{"q":"../x"}', NOW + 9999, '{"q":"push:normal"}')
        dlq0 = c.call("XLEN", P + "dlq")
        assert ev("promote", [z, P + "dlq"], [NOW, P, 100]) == 3
        assert c.call("XLEN", P + "q:push:urgent") == 1
        assert c.call("XLEN", P + "dlq") == dlq0 + 2
        assert c.call("ZCARD", z) == 1
        assert ev("promote", [z, P + "dlq"], [NOW, P, 100]) == 0

    with tap.check("cancel: once; 'already:<status>' after; '' when unknown"):
        c.call("HSET", bc("cn"), "status", "sending", "expanded", 1, "jobs", 0, "final", 0)
        assert ev("cancel", [bc("cn"), P + "active"], ["cn", NOW]) == b"cancelled"
        assert ev("cancel", [bc("cn"), P + "active"], ["cn", NOW]) == b"already:cancelled"
        assert ev("cancel", [bc("nope"), P + "active"], ["nope", NOW]) == b""
        assert c.call("EXISTS", bc("nope")) == 0

    with tap.check("dlq_retry: sends a dead letter again, uncounts it; once"):
        c.call("HSET", bc("dr"), "status", "done", "final", 1, "n:email:failed", 1, "done_ms", 1)
        c.call("HSET", bc("dr", ":r"), "email:z", "f|r1|1|550")
        de = c.call("XADD", P + "dlq:d", "*", "job", "{}")
        keys = [P + "dlq:d", bc("dr"), bc("dr", ":r"), P + "q:email:normal:d", P + "active"]
        args = [de, "email:z", '{"n":0}', "r1", "dr", NOW]
        assert ev("dlq_retry", keys, args) == 1
        h = hgetall(c, bc("dr"))
        assert h["status"] == "sending" and h["final"] == "0" and h["n:email:failed"] == "0", h
        assert "done_ms" not in h and c.call("HGET", bc("dr", ":r"), "email:z") == b"q|r1"
        assert c.call("XLEN", P + "q:email:normal:d") == 1
        assert ev("dlq_retry", keys, args) == 0
        assert c.call("XLEN", P + "q:email:normal:d") == 1

    with tap.check("dlq_retry: an entry whose fields and recipients do not pair up, a "
                   "field without a channel, or a broadcast key of the wrong type: -1, "
                   "nothing written, the entry kept"):
        c.call("HSET", bc("dm"), "status", "done", "final", 3, "n:line:failed", 3)
        c.call("HSET", bc("dm", ":r"), "line:1", "f|r1|1|x", "line:2", "f|r2|1|x",
               "line:3", "f|r3|1|x")
        de = c.call("XADD", P + "dlq:m", "*", "job", "{}")
        keys = [P + "dlq:m", bc("dm"), bc("dm", ":r"), P + "q:line:normal:m", P + "active"]
        before = (hgetall(c, bc("dm")), hgetall(c, bc("dm", ":r")))
        for f, r in (("line:1,line:2,line:3", "r1,,r3"),   # a recipient left empty
                     ("line:1,line:2", "r1,r2,r3"),
                     ("line:1,2", "r1,r2"),                  # a field without a channel
                     ("", "")):
            assert ev("dlq_retry", keys, [de, f, '{"n":0}', r, "dm", NOW]) == -1, (f, r)
        c.call("SET", bc("dw"), "x")
        assert ev("dlq_retry", [P + "dlq:m", bc("dw"), bc("dw", ":r"), P + "q:line:normal:m",
                                P + "active"], [de, "line:1", "{}", "r1", "dw", NOW]) == -1
        assert (hgetall(c, bc("dm")), hgetall(c, bc("dm", ":r"))) == before
        assert c.call("XLEN", P + "dlq:m") == 1 and c.call("EXISTS", P + "q:line:normal:m") == 0
        assert ev("dlq_retry", keys, [de, "line:1,line:2,line:3", '{"n":0}', "r1,r2,r3", "dm",
                                      NOW]) == 1
        h = hgetall(c, bc("dm"))
        assert h["final"] == "0" and h["n:line:failed"] == "0" and h["status"] == "sending", h
        assert hgetall(c, bc("dm", ":r")) == {"line:1": "q|r1", "line:2": "q|r2",
                                              "line:3": "q|r3"}

    with tap.check("fallback: the next channel's job once"):
        keys = [bc("fb"), bc("fb", ":r"), P + "q:line:normal:fb"]
        assert ev("fallback", keys, ["line:u9", "r1", "{}"]) == 1
        assert ev("fallback", keys, ["line:u9", "r1", "{}"]) == 0
        h = hgetall(c, bc("fb"))
        assert h["n:line:total"] == "1" and h["n:line:fallback"] == "1" and h["jobs"] == "1", h
        assert c.call("XLEN", P + "q:line:normal:fb") == 1

    with tap.check("mark_dead: dead, then alive"):
        assert ev("mark_dead", [P + "dead:push"], ["dead", "t1", "t2"]) == 2
        assert c.call("SCARD", P + "dead:push") == 2
        assert ev("mark_dead", [P + "dead:push"], ["alive", "t1"]) == 1
        assert c.call("SMEMBERS", P + "dead:push") == [b"t2"]

    with tap.check("line_events: applied in event time order; an older one ignored"):
        keys = [P + "dead:line", P + "line:event_ms"]
        assert ev("line_events", keys, ["alive", "u1", 200, "dead", "u1", 100]) == 1
        assert c.call("SISMEMBER", P + "dead:line", "u1") == 0
        assert ev("line_events", keys, ["dead", "u1", 300]) == 1
        assert c.call("SISMEMBER", P + "dead:line", "u1") == 1
        assert ev("line_events", keys, ["alive", "u1", 0]) == 0

    with tap.check("take: a token bucket; nothing granted says how long to wait; "
                   "a stray key of another type is dropped"):
        k = P + "rate:x"
        assert ev("take", [k], [1, 2, NOW, 3]) == [2, 0]
        got = ev("take", [k], [1, 2, NOW, 1])
        assert got[0] == 0 and got[1] > 0, got
        assert ev("take", [k], [1, 2, NOW + 1000, 1]) == [1, 0]
        assert 0 < c.call("PTTL", k) <= 60000
        c.call("DEL", k)
        c.call("LPUSH", k, "x")
        assert ev("take", [k], [1, 2, NOW, 1]) == [1, 0]
        assert c.call("TYPE", k) == "hash"

    with tap.check("cred_offer: compare-and-set on the generation; nothing "
                   "stored takes any offer; the loser gets the winner; a key "
                   "of another type is an error"):
        k = P + "cred:apns:T.K.f"
        assert ev("cred_offer", [k], [0, NOW, 0, "v1", 7200000]) == \
            [1, 1, str(NOW).encode(), b"0", b"v1"]
        assert 0 < c.call("PTTL", k) <= 7200000
        # a second process that also saw nothing: loses, gets v1
        assert ev("cred_offer", [k], [0, NOW + 1, 0, "v2", 7200000]) == \
            [0, 1, str(NOW).encode(), b"0", b"v1"]
        # replacing generation 1: stored as 2 (early kept as given)
        assert ev("cred_offer", [k], [1, NOW + 2, 1, "v3", 7200000]) == \
            [1, 2, str(NOW + 2).encode(), b"1", b"v3"]
        # a stale replacement of 1: loses
        assert ev("cred_offer", [k], [1, NOW + 3, 0, "v4", 7200000])[:2] == [0, 2]
        assert hgetall(c, k) == {"n": "2", "iat": str(NOW + 2), "early": "1",
                                 "v": "v3"}
        # expired (or deleted): any offer is stored, from 1 again
        c.call("DEL", k)
        assert ev("cred_offer", [k], [7, NOW + 4, 0, "v5", 7200000])[:2] == [1, 1]
        c.call("DEL", k)
        c.call("SET", k, "x")
        assert "WRONGTYPE" in err("cred_offer", [k], [0, NOW, 0, "v", 1000])
        assert c.call("GET", k) == b"x"
        c.call("DEL", k)

    with tap.check("failed: counts failures with a TTL; tells the key types"):
        k = P + "fail:s:1"
        c.call("SET", P + "ty:s", "x")
        assert ev("failed", [k, P + "ty:s", P + "ty:none"], [60000, 1]) == [1, b"string", b"none"]
        assert ev("failed", [k], [60000, 1]) == [2]
        assert ev("failed", [k], [60000, 0]) == [2]
        assert c.call("PTTL", k) > 0
        c.call("DEL", k)
        c.call("HSET", k, "a", 1)                # another type: dropped, counted anew
        assert ev("failed", [k], [60000, 1]) == [1]

    with tap.check("park: rejects the broadcast with the reason, acks the entry, "
                   "drops the counter; a broadcast hash of the wrong type goes to the DLQ"):
        st = P + "broadcasts:pk"
        e1 = pend(st)
        c.call("SET", P + "fail:pk", 3)
        keys = [bc("pk"), P + "rejected", P + "active", P + "dlq:pk", st, P + "fail:pk"]
        assert ev("park", keys, ["pk", NOW, "too many failures", "", "g", e1, "t1"]) == 1
        h = hgetall(c, bc("pk"))
        assert h["status"] == "rejected" and h["tenant"] == "t1" and h["done_ms"] == str(NOW), h
        assert c.call("ZSCORE", P + "rejected", "pk") is not None
        assert c.call("XLEN", st) == 0 and c.call("EXISTS", P + "fail:pk") == 0
        c.call("SET", bc("pw"), "x")
        e2 = pend(st)
        keys = [bc("pw"), P + "rejected", P + "active", P + "dlq:pk", st, P + "fail:pk"]
        assert ev("park", keys, ["pw", NOW, "r", "", "g", e2, "t1"]) == 2
        assert c.call("XLEN", P + "dlq:pk") == 1 and c.call("XLEN", st) == 0
        assert c.call("GET", bc("pw")) == b"x"

    with tap.check("sched_due: due broadcasts back to the stream, once"):
        c.call("ZADD", P + "sched", NOW - 1, "s1", NOW + 1000, "s2")
        keys = [P + "sched", P + "broadcasts:s"]
        assert ev("sched_due", keys, [NOW]) == 1
        assert ev("sched_due", keys, [NOW]) == 0
        assert c.call("XLEN", P + "broadcasts:s") == 1 and c.call("ZCARD", P + "sched") == 1

    with tap.check("purge_unlock: only the owner releases the lock"):
        c.call("SET", P + "lock:purge", "me")
        assert ev("purge_unlock", [P + "lock:purge"], ["other"]) == 0
        assert ev("purge_unlock", [P + "lock:purge"], ["me"]) == 1
        assert ev("purge_unlock", [P + "lock:purge"], ["me"]) == 0

    # ---- confirmation links ----------------------------------------------
    with tap.check("ack_view / ack_confirm: members only; a confirmation once"):
        keys = [bc("ak"), bc("ak", ":r"), bc("ak", ":ack"), bc("ak", ":m")]
        c.call("HSET", bc("ak"), "ack", "1", "subject", "s", "body", "b", "ack_m", "1")
        c.call("SADD", bc("ak", ":m"), "r1")
        assert ev("ack_view", keys, ["r1"]) == [b"s", b"b", b"0", b"", b"", b"", b"r1", b""]
        assert ev("ack_view", keys, ["r9"]) == []
        # a language (issue 16): its translation, and the language used last
        c.call("HSET", bc("ak"), "translations",
               '{"en":{"subject":"S-en","body":"B-en"},"pt":{"subject":1}}')
        assert ev("ack_view", keys, ["r1", "en"]) == [
            b"S-en", b"B-en", b"0", b"", b"", b"", b"r1", b"", b"en"]
        assert ev("ack_view", keys, ["r1", "vi"])[::8] == [b"s", b""]
        assert ev("ack_view", keys, ["r1", "pt"])[0] == b"s"
        assert ev("ack_view", keys, ["r9", "en"]) == []
        assert ev("ack_confirm", keys, ["r1", NOW]) == 1
        assert ev("ack_confirm", keys, ["r1", NOW + 1]) == 0
        assert ev("ack_confirm", keys, ["r9", NOW]) == -1
        assert c.call("HGET", bc("ak"), "acked") == b"1"
        assert ev("ack_view", keys, ["r1"])[3] == str(NOW).encode()
        # an older broadcast (no ack_m): the set is built from bc:r, once expanded
        keys = [bc("ao"), bc("ao", ":r"), bc("ao", ":ack"), bc("ao", ":m")]
        c.call("HSET", bc("ao"), "ack", "1", "expanded", "1")
        c.call("HSET", bc("ao", ":r"), "email:x", "d|r5|1|ok")
        assert ev("ack_confirm", keys, ["r5", NOW]) == 1
        assert c.call("HGET", bc("ao"), "ack_m") == b"1"
        c.call("HSET", bc("an"), "ack", "0")
        assert ev("ack_confirm", [bc("an")] + keys[1:], ["r5", NOW]) == -1

    with tap.check("commit_page notes siblings; ack_view lists them; ack_confirm per child, all, never another's"):
        c.call("HSET", bc("fa"), "status", "sending", "ack", "1", "tenant", "t1",
               "subject", "s", "body", "b")
        keys = page_keys("fa") + [bc("fa", ":fam")]
        args = [0, 0, P, 0, "email:m", '{"b":"fa"}', "k1", 0, "email:m", '{"b":"fa"}', "k2",
                0, "email:m", '{"b":"fa"}', "k3", 0, "email:o", '{"b":"fa"}', "k4"]
        assert commit_page(keys, args) == [1, 2]
        assert hgetall(c, bc("fa", ":fam")) == {"k1": "k2;k3"}
        ak = [bc("fa"), bc("fa", ":r"), bc("fa", ":ack"), bc("fa", ":m"), bc("fa", ":fam")]
        assert ev("ack_view", ak, ["k1"]) == [b"s", b"b", b"0", b"", b"", b"t1", b"k1", b"",
                                              b"k2", b"", b"k3", b""]
        assert ev("ack_confirm", ak, ["k1", NOW, "", "", "k2"]) == 1
        assert ev("ack_confirm", ak, ["k1", NOW, "", "", "k4"]) == 0      # not this guardian's
        assert ev("ack_confirm", ak, ["k2", NOW, "", "", "k1"]) == 0      # k2's link: k2 only
        assert ev("ack_confirm", ak, ["k1", NOW + 5, "", "", "*"]) == 2
        assert hgetall(c, bc("fa", ":ack")) == {"k1": str(NOW + 5), "k2": str(NOW),
                                                "k3": str(NOW + 5)}
        assert c.call("HGET", bc("fa"), "acked") == b"3"
        # a LINE group (the expander's block: fields, then records): k6
        # shares k5's address, so k5's job reaches k6 too; k7 is another
        # dead address (dead set not empty: asked); all in the set bc:m
        c.call("SADD", P + "dead:line", "fd")
        job = json.dumps({"b": "fa", "key": "line:p1.0", "r": ["k5", "k6", "k7"],
                          "a": ["A", "A", "D"], "i": ["f5", "f5", "fd"]})
        args = [1, 0, P, 203, 3, job, "line:p1.0", "line:f5", "line:f5",
                "line:fd", "q|k5|line:p1.0", "q|k6|line:p1.0", "q|k7|line:p1.0"]
        assert commit_page(keys, args) == [1, 1]
        assert hgetall(c, bc("fa", ":fam"))["k5"] == "k6"
        rr = hgetall(c, bc("fa", ":r"))
        assert (rr["line:f5"], rr["line:fd"]) == ("q|k5|line:p1.0", "x|k7|0|dead"), rr
        assert {b"k5", b"k6", b"k7"} <= set(c.call("SMEMBERS", bc("fa", ":m")))
        e = c.call("XRANGE", streams[3], "-", "+")
        assert json.loads(e[-1][1][1])["r"] == ["k5"], e[-1]
    with tap.check("ack_confirm: an answer within the choices, counted once; "
                   "none where the broadcast offers none"):
        keys = [bc("aq"), bc("aq", ":r"), bc("aq", ":ack"), bc("aq", ":m")]
        c.call("HSET", bc("aq"), "ack", "1", "ack_m", "1", "nchoices", "3",
               "choices", '["a","b","c"]')
        c.call("SADD", bc("aq", ":m"), "r1", "r2")
        for bad in ["", "3", "-1", "1.5", "01", "x"]:
            assert ev("ack_confirm", keys, ["r1", NOW, "{}", bad]) == -2, bad
        assert c.call("HLEN", bc("aq", ":ack")) == 0
        v = '{"t":%d,"a":2}' % NOW
        assert ev("ack_confirm", keys, ["r1", NOW, v, "2"]) == 1
        assert ev("ack_confirm", keys, ["r1", NOW, '{"t":1,"a":0}', "0"]) == 0
        assert c.call("HGET", bc("aq", ":ack"), "r1") == v.encode()
        assert c.call("HMGET", bc("aq"), "acked", "ans:2", "ans:0") == [b"1", b"1", None]
        assert ev("ack_view", keys, ["r1"])[3:5] == [v.encode(), b'["a","b","c"]']
        keys = [bc("ak"), bc("ak", ":r"), bc("ak", ":ack"), bc("ak", ":m")]
        c.call("SADD", bc("ak", ":m"), "r2")
        assert ev("ack_confirm", keys, ["r2", NOW, "{}", "0"]) == -3
        # per child with an answer: the same answer for each child "*" records
        c.call("HSET", bc("fa"), "nchoices", "2", "choices", '["x","y"]')
        c.call("HDEL", bc("fa", ":ack"), "k2", "k3")
        ak = [bc("fa"), bc("fa", ":r"), bc("fa", ":ack"), bc("fa", ":m"), bc("fa", ":fam")]
        v = '{"t":%d,"a":1}' % NOW
        assert ev("ack_confirm", ak, ["k1", NOW, v, "1", "*"]) == 2
        assert hgetall(c, bc("fa", ":ack")) == {"k1": str(NOW + 5), "k2": v, "k3": v}
        assert c.call("HGET", bc("fa"), "ans:1") == b"2"
        assert ev("ack_confirm", ak, ["k1", NOW, v, "7", "*"]) == -2

    # ---- directory (kairanctl) -------------------------------------------
    def row(id_, h, groups="", bidx="", active="", c_="{}"):
        return [id_, h, c_, "", "", "", groups, bidx, active, "", "", "", ""]

    with tap.check("rcpt_upsert: records, groups, blind indexes, tenant; the "
                   "same row again is unchanged; a changed one moves its entries"):
        got = ev("rcpt_upsert", [], [P, "t2", NOW] + row("r/1", "h1", "2-A;a:b", "email:e1 line:l1",
                                                          c_='{"ei":"e1","li":"l1"}'))
        assert got == [1, 0, 0], got
        assert c.call("HGET", P + "rcpt:t2:r%2F1", "active") == b"1"
        assert c.call("SMEMBERS", P + "grp:t2:a%3Ab") == [b"r/1"]
        assert sorted(c.call("SMEMBERS", P + "groups:t2")) == [b"2-A", b"a:b"]
        assert c.call("SMEMBERS", P + "bidx:t2:email:e1") == [b"r/1"]
        assert c.call("SMEMBERS", P + "rcpts:t2") == [b"r/1"]
        assert c.call("SISMEMBER", P + "tenants", "t2") == 1
        assert ev("rcpt_upsert", [], [P, "t2", NOW] + row("r/1", "h1")) == [0, 0, 1]
        got = ev("rcpt_upsert", [], [P, "t2", NOW] + row("r/1", "h2", "2-A", "email:e2",
                                                          c_='{"ei":"e2"}'))
        assert got == [0, 1, 0], got
        assert c.call("EXISTS", P + "grp:t2:a%3Ab") == 0
        assert c.call("SMEMBERS", P + "groups:t2") == [b"2-A"]
        assert c.call("EXISTS", P + "bidx:t2:email:e1") == 0
        assert c.call("SMEMBERS", P + "bidx:t2:email:e2") == [b"r/1"]

    with tap.check("rcpt_upsert: a row written again keeps each guardian's "
                   "\"pf\" by e-mail or LINE index, moved to where it is now; "
                   "a guardian not found again loses it (issue 16)"):
        pa = {"ox": ["行事"], "at": 5}
        pb = {"lg": "en", "xc": ["email"], "at": 6}
        old = {"ei": "ea", "pf": pa, "g": [{"li": "lb", "pf": pb}, {"ei": "ec"}]}
        c.call("HSET", P + "rcpt:t9:kp", "c", json.dumps(old), "hash", "x")
        # the school's new file: b first (same LINE, new e-mail), a second,
        # a new guardian d; c gone
        new = {"ei": "eb2", "li": "lb", "g": [{"ei": "ea"}, {"ei": "ed"}]}
        got = ev("rcpt_upsert", [], [P, "t9", NOW] + row("kp", "h9", "", "",
                                                          c_=json.dumps(new)))
        assert got == [0, 1, 0], got
        o = json.loads(c.call("HGET", P + "rcpt:t9:kp", "c"))
        assert o["pf"] == pb and o["g"][0]["pf"] == pa, o
        assert "pf" not in o["g"][1], o
        # without any pf the record is written as the file gave it
        c.call("HSET", P + "rcpt:t9:kq", "c", '{"ei":"e1"}', "hash", "x")
        ev("rcpt_upsert", [], [P, "t9", NOW] + row("kq", "h9", c_='{"ei":"e1","g":[]}'))
        assert c.call("HGET", P + "rcpt:t9:kq", "c") == b'{"ei":"e1","g":[]}'

    with tap.check("rcpt_active: sets active on a known recipient; 0 for the unknown"):
        assert ev("rcpt_active", [], [P, "t2", "r/1", "0", NOW]) == 1
        assert c.call("HGET", P + "rcpt:t2:r%2F1", "active") == b"0"
        assert ev("rcpt_active", [], [P, "t2", "r/404", "0", NOW]) == 0
        assert c.call("EXISTS", P + "rcpt:t2:r%2F404") == 0

    with tap.check("rcpt_edit: name, class, groups (entries moved), active, a "
                   "guardian's off flag; the row hash cleared; 0 / -1 for the unknown"):
        k2 = P + "rcpt:t2:r%2F1"
        c.call("HSET", k2, "c", '{"e":"x","g":[{"e":"y"}]}')
        assert ev("rcpt_edit", [], [P, "t2", "r/1", NOW, "ncga", "sealed", "3-B",
                                    "2-A;b;c", "0", "0", "0"]) == 1
        assert c.call("HGET", k2, "name") == b"sealed"
        assert c.call("HGET", k2, "class") == b"3-B"
        assert c.call("HGET", k2, "groups") == b"2-A;b;c"
        assert c.call("HGET", k2, "active") == b"0"
        assert c.call("HGET", k2, "hash") == b""
        assert c.call("SMEMBERS", P + "grp:t2:b") == [b"r/1"]
        assert ev("rcpt_edit", [], [P, "t2", "r/1", NOW, "gn", "", "", "2-A",
                                    "", "0", "0"]) == 1
        assert c.call("EXISTS", P + "grp:t2:b") == 0
        assert c.call("HEXISTS", k2, "name") == 0
        assert sorted(c.call("SMEMBERS", P + "groups:t2")) == [b"2-A"]
        assert ev("rcpt_edit", [], [P, "t2", "r/1", NOW, "G", "", "", "", "",
                                    "1", "1"]) == 1
        o = json.loads(c.call("HGET", k2, "c"))
        assert o["g"][0]["off"] is True and "off" not in o, o
        assert ev("rcpt_edit", [], [P, "t2", "r/1", NOW, "G", "", "", "", "",
                                    "1", "0"]) == 1
        assert "off" not in json.loads(c.call("HGET", k2, "c"))["g"][0]
        assert ev("rcpt_edit", [], [P, "t2", "r/1", NOW, "G", "", "", "", "",
                                    "2", "1"]) == -1
        assert ev("rcpt_edit", [], [P, "t2", "r/404", NOW, "a", "", "", "", "1",
                                    "0", "0"]) == 0
        c.call("HSET", k2, "c", '{"ei":"e2"}', "active", "1")

    with tap.check("rcpt_delete: removes the record and its entries; twice counts 0"):
        assert ev("rcpt_delete", [], [P, "t2", "r/1", "r/404"]) == 1
        for k in ("rcpt:t2:r%2F1", "grp:t2:2-A", "bidx:t2:email:e2", "rcpts:t2", "groups:t2"):
            assert c.call("EXISTS", P + k) == 0, k
        assert ev("rcpt_delete", [], [P, "t2", "r/1"]) == 0

    with tap.check("rekey_rcpt / rekey_aud: compare and set"):
        k = P + "rcpt:t1:rk"
        assert ev("rekey_rcpt", [k], ["c0", "c1", "name", "", ""]) == -1
        c.call("HSET", k, "c", "c0", "name", "n0", "phone", "p0")
        assert ev("rekey_rcpt", [k], ["c0", "c1", "name", "", ""]) == 0
        assert ev("rekey_rcpt", [k], ["c0", "c1", "name", "n0", "n1",
                                      "phone", "p9", "p1"]) == 0
        assert ev("rekey_rcpt", [k], ["c0", "c1", "name", "n0", "n1",
                                      "kana", "", "", "phone", "p0", "p1"]) == 1
        assert hgetall(c, k) == {"c": "c1", "name": "n1", "phone": "p1"}
        a = bc("rk", ":aud")
        c.call("RPUSH", a, "e0", "e1")
        assert ev("rekey_aud", [a], [1, "e1", "E1"]) == 1
        assert ev("rekey_aud", [a], [1, "e1", "E2"]) == 0
        assert ev("rekey_aud", [a], [5, "e1", "E2"]) == 0
        assert c.call("LRANGE", a, 0, -1) == [b"e0", b"E1"]

    with tap.check("token_create / token_revoke: never overwrite; revoke once"):
        keys = [P + "token:tk1", P + "tokens"]
        assert ev("token_create", keys, ["tk1", "role", "admin", "revoked_ms", "0"]) == 1
        assert ev("token_create", keys, ["tk1", "role", "viewer"]) == 0
        assert c.call("HGET", P + "token:tk1", "role") == b"admin"
        assert ev("token_revoke", [P + "token:tk1"], [NOW]) == 1
        assert ev("token_revoke", [P + "token:tk1"], [NOW + 1]) == 0
        assert ev("token_revoke", [P + "token:nope"], [NOW]) == -1

    # ---- bounces (issue 18) -------------------------------------------------
    WEEK = 7 * 24 * 3600 * 1000
    WIN = 2 * WEEK

    def bkeys(n, t="t1"):
        return [bc(n), bc(n, ":r"), P + "supp:" + t, P + "soft:" + t]

    with tap.check("bounce_ref: stores what a reference names with a TTL; a "
                   "key of another type is left alone"):
        assert ev("bounce_ref", [P + "bref:abc"],
                  [60000, "bc", "b1", "f", "email:bi1", "r", "r1"]) == 1
        assert hgetall(c, P + "bref:abc") == {"bc": "b1", "f": "email:bi1",
                                              "r": "r1"}
        assert 0 < c.call("PTTL", P + "bref:abc") <= 60000
        c.call("SET", P + "bref:str", "x")
        assert ev("bounce_ref", [P + "bref:str"], [60000, "bc", "b1"]) == 0

    with tap.check("bounce: delivered -> bounced once, counts moved, hard "
                   "suppresses; delayed counts soft; 3 soft in the window "
                   "suppress; wrong types refused"):
        c.call("HSET", bc("bo"), "n:email:delivered", "3", "tenant", "t1")
        c.call("HSET", bc("bo", ":r"), "email:h1", "d|r1|1|250 ok",
               "email:s1", "d|r2|1|250 ok", "email:q1", "q|r3")
        args = lambda f, kind, bcast="bo": [f, kind, "5.1.1;0;dsn", NOW, "r",
                                            bcast, "sealed", WIN, 3]
        assert ev("bounce", bkeys("bo"), args("email:h1", "hard")) == [1, 1]
        assert c.call("HGET", bc("bo", ":r"), "email:h1").startswith(b"b|r|")
        h = hgetall(c, bc("bo"))
        assert h["n:email:delivered"] == "2" and h["n:email:bounced"] == "1", h
        assert c.call("HGET", P + "supp:t1", "h1").startswith(b"h|")
        assert ev("bounce", bkeys("bo"), args("email:h1", "soft")) == [0, 0]
        assert ev("bounce", bkeys("bo"), args("email:h1", "hard")) == [0, 0]
        assert hgetall(c, bc("bo"))["n:email:bounced"] == "1"
        # delayed: the record stays, soft counted; each broadcast once
        for i, bn in enumerate(["bo", "bo", "bx", "by"]):
            out = ev("bounce", bkeys("bo"), args("email:s1", "delayed", bn))
            assert out == [1, 1 if i == 3 else 0], (i, out)
        assert c.call("HGET", bc("bo", ":r"), "email:s1").startswith(b"d|")
        assert c.call("HGET", P + "supp:t1", "s1").startswith(b"s|")
        assert c.call("HEXISTS", P + "soft:t1", "s1") == 0
        # a queued record is not changed, but a hard bounce suppresses it
        assert ev("bounce", bkeys("bo"), args("email:q1", "hard")) == [1, 1]
        assert c.call("HGET", bc("bo", ":r"), "email:q1") == b"q|r3"
        assert "not an e-mail" in err("bounce", bkeys("bo"),
                                      args("line:u1", "hard"))
        c.call("SET", P + "soft:t9", "x")
        assert "WRONGTYPE" in err("bounce", bkeys("bo", "t9"),
                                  args("email:h1", "hard"))

    with tap.check("sendgrid_events: a request once, each event id once, "
                   "unknown references counted, bounces recorded"):
        c.call("HSET", P + "bref:ref1", "bc", "sg", "f", "email:g1", "r", "r1",
               "t", "t1", "a", "sealed", "c", "1")
        c.call("HSET", bc("sg"), "n:email:delivered", "1")
        c.call("HSET", bc("sg", ":r"), "email:g1", "d|r1|1|202")
        a = [P, NOW, 60000, WIN, 3, "ev1", "ref1", "hard", "5.1.1",
             "ev2", "nope", "hard", "5.0.0", "ev1", "ref1", "hard", "5.1.1"]
        assert ev("sendgrid_events", [P + "sgsig:x1"], a) == [0, 1, 1, 1]
        assert c.call("HGET", bc("sg", ":r"), "email:g1") == \
            b"b|r1|%d|5.1.1;1;sendgrid" % NOW
        assert ev("sendgrid_events", [P + "sgsig:x1"], a) == [1, 0, 0, 0]
        assert ev("sendgrid_events", [P + "sgsig:x2"], a) == [0, 0, 3, 0]
        assert c.call("HGET", P + "supp:t1", "g1").startswith(b"h|")
        assert 0 < c.call("PTTL", P + "sgev:ev1") <= 60000

    with tap.check("commit_page: an address in supp:<tenant> gets no job, "
                   "recorded and counted suppressed"):
        c.call("HSET", bc("cs"), "status", "sending", "tenant", "t1")
        c.call("HSET", P + "supp:t1", "sx", "h|1|5.1.1;0;dsn|r|b|s")
        args = [0, 0, P, 0, "email:sx", '{"b":"cs"}', "r1", 0, "email:ok",
                '{"b":"cs"}', "r2"]
        assert commit_page(page_keys("cs"), args) == [1, 1]
        rr = hgetall(c, bc("cs", ":r"))
        assert rr == {"email:sx": "s|r1|0|suppressed", "email:ok": "q|r2"}, rr
        assert hgetall(c, bc("cs"))["n:email:suppressed"] == "1"

    with tap.check("commit_page: a guardian's opt-out (300) is recorded and "
                   "counted opted_out, no job; a later job for the same "
                   "address (a sibling's guardian) replaces it (issue 16)"):
        c.call("HSET", bc("co"), "status", "sending", "tenant", "t1")
        args = [0, 0, P, 300, "email:oa", "c1", 300, "email:ob", "c2",
                300, "email:ob", "c3", 0, "email:ob", '{"b":"co"}', "c4"]
        assert commit_page(page_keys("co"), args) == [1, 1]
        rr = hgetall(c, bc("co", ":r"))
        assert rr == {"email:oa": "o|c1|0|opted_out", "email:ob": "q|c4"}, rr
        h = hgetall(c, bc("co"))
        assert h["n:email:opted_out"] == "1" and h["n:email:total"] == "1", h
        assert c.call("XLEN", streams[0]) >= 1
        # the next page: an opt-out recorded before, then a LINE group job
        # with that address: the job wins, the count moves back
        args = [1, 0, P, 300, "line:la", "c5", 200 + 3, 2,
                '{"b":"co","r":["c5","c6"],"a":["A","B"],"i":["la","lb"]}', "",
                "line:la", "line:lb", "q|c5", "q|c6"]
        assert commit_page(page_keys("co"), args) == [1, 2]
        rr = hgetall(c, bc("co", ":r"))
        assert rr["line:la"] == "q|c5" and rr["line:lb"] == "q|c6", rr
        h = hgetall(c, bc("co"))
        assert h.get("n:line:opted_out", "0") == "0" and h["n:line:total"] == "2", h

    with tap.check("sheet_issue: a live sheet is kept unless reissued; the "
                   "old one voided; a taken ID refused"):
        reg, st = P + "reg:t1:s1", P + "sheets:t1"

        def issue(new, reissue="0", mx="2"):
            return ev("sheet_issue", [reg, P + "sheet:" + new, st],
                      [P, "t1", "s1", new, "h-" + new, mx, NOW, reissue])
        assert issue("AAAA") == 1
        assert hgetall(c, P + "sheet:AAAA") == {
            "t": "t1", "r": "s1", "h": "h-AAAA", "max": "2", "used": "0",
            "issued_ms": str(NOW)}
        assert issue("CCCC") == 0                     # live: skipped
        assert c.call("EXISTS", P + "sheet:CCCC") == 0
        assert issue("AAAA", "1") == -1               # the ID is taken
        assert issue("CCCC", "1") == 1                # reissue voids AAAA
        assert c.call("EXISTS", P + "sheet:AAAA") == 0
        assert c.call("SMEMBERS", st) == [b"CCCC"]
        assert c.call("HGET", reg, "sheet") == b"CCCC"
        c.call("HSET", P + "sheet:CCCC", "used", "2")  # used up: not live
        assert issue("EEEE") == 1
        assert c.call("EXISTS", P + "sheet:CCCC") == 0
        assert c.call("SMEMBERS", st) == [b"EEEE"]

    with tap.check("reg_verify: registers once into reg:<T>:<id> g; the "
                   "others' addresses returned; reissued or used-up sheets "
                   "refused; a known address not added twice"):
        rv = P + "rver:h1"

        def pending(ei="EI1", e="E1", s_="SH1", key=rv):
            c.call("HSET", key, "t", "t1", "r", "s9", "s", s_, "e", e,
                   "ei", ei, "nm", "NM", "rl", "", "cs", NOW)
        c.call("HSET", P + "sheet:SH1", "t", "t1", "r", "s9", "used", "0",
               "max", "2")
        c.call("HSET", P + "reg:t1:s9", "sheet", "SH1")
        c.call("HSET", P + "rcpt:t1:s9", "name", "SEALEDNAME", "c",
               '{"id":"s9","e":"D0","ei":"DI0","g":[{"e":"D1","ei":"DI1"}]}')
        assert ev("reg_verify", [rv], [P, NOW]) == [0]     # nothing pending
        pending()
        assert ev("reg_verify", [rv], [P, NOW + 1]) == [
            1, b"t1", b"s9", b"SEALEDNAME", b"NM", b"", b"D0", b"D1"]
        assert c.call("EXISTS", rv) == 0
        g = json.loads(c.call("HGET", P + "reg:t1:s9", "g"))
        assert g == [{"e": "E1", "ei": "EI1", "nm": "NM", "at": NOW + 1,
                      "cs": NOW}], g
        assert c.call("HGET", P + "sheet:SH1", "used") == b"1"
        assert c.call("SMEMBERS", P + "regd:t1") == [b"s9"]
        pending()                                        # the same address
        assert ev("reg_verify", [rv], [P, NOW]) == [3]
        pending(ei="EI2", e="E2")
        assert ev("reg_verify", [rv], [P, NOW])[6:] == [b"D0", b"D1", b"E1"]
        assert c.call("HGET", P + "sheet:SH1", "used") == b"2"
        pending(ei="EI3", e="E3")                        # used up
        assert ev("reg_verify", [rv], [P, NOW]) == [2]
        # a sign-up's second address replaces its guardian's: no sheet use
        g = json.loads(c.call("HGET", P + "reg:t1:s9", "g"))
        g[1]["tk"] = "TKA"
        c.call("HSET", P + "reg:t1:s9", "g", json.dumps(g))
        pending(ei="EI5", e="E5")
        c.call("HSET", rv, "tk", "TKA")
        assert ev("reg_verify", [rv], [P, NOW]) == [
            1, b"t1", b"s9", b"SEALEDNAME", b"NM", b""]
        g = json.loads(c.call("HGET", P + "reg:t1:s9", "g"))
        assert [x["ei"] for x in g] == ["EI1", "EI5"], g
        assert c.call("HGET", P + "sheet:SH1", "used") == b"2"
        pending(ei="EI4", e="E4", s_="OLD")              # reissued meanwhile
        assert ev("reg_verify", [rv], [P, NOW]) == [2]
        assert len(json.loads(c.call("HGET", P + "reg:t1:s9", "g"))) == 2

    with tap.check("reg_device: a code once; one sign-up one guardian; a "
                   "known token refused; rotation replaces the token"):
        c.call("HSET", P + "sheet:SH2", "t", "t1", "r", "s8", "used", "0",
               "max", "1")
        c.call("HSET", P + "reg:t1:s8", "sheet", "SH2")
        ra = P + "rapp:a1"
        c.call("HSET", ra, "t", "t1", "r", "s8", "s", "SH2", "tk", "TK1")
        args = [P, "new", NOW, "fcm", "T1", "TI1", "CRED1"]
        assert ev("reg_device", [ra], args) == [1, b"t1", b"s8"]
        assert ev("reg_device", [ra], args) == [0]          # used once
        g = json.loads(c.call("HGET", P + "reg:t1:s8", "g"))
        assert g == [{"tk": "TK1", "at": NOW,
                      "p": [{"k": "fcm", "t": "T1", "ti": "TI1"}]}], g
        assert c.call("HGET", P + "sheet:SH2", "used") == b"1"
        assert c.call("HGETALL", P + "rdev:CRED1") == [
            b"t", b"t1", b"r", b"s8", b"tk", b"TK1", b"ti", b"TI1"]
        assert c.call("SMEMBERS", P + "rdevs:t1") == [b"CRED1"]
        # the same sign-up again: joins its guardian (the sheet is full);
        # the page's language becomes the guardian's, a bad one is ignored
        c.call("HSET", ra, "t", "t1", "r", "s8", "s", "SH2", "tk", "TK1",
               "lg", "vi")
        assert ev("reg_device", [ra], [P, "new", NOW, "apns", "T2", "TI2",
                                       "CRED2"]) == [1, b"t1", b"s8"]
        g = json.loads(c.call("HGET", P + "reg:t1:s8", "g"))[0]
        assert len(g["p"]) == 2 and g["pf"] == {"lg": "vi", "at": NOW}, g
        # a language chosen already (the my page) is never overwritten
        c.call("HSET", ra, "t", "t1", "r", "s8", "s", "SH2", "tk", "TK1",
               "lg", "en")
        assert ev("reg_device", [ra], [P, "new", NOW, "apns", "T6", "TI6",
                                       "CRED6"]) == [1, b"t1", b"s8"]
        g = json.loads(c.call("HGET", P + "reg:t1:s8", "g"))[0]
        assert g["pf"]["lg"] == "vi" and len(g["p"]) == 3, g
        c.call("HSET", ra, "t", "t1", "r", "s8", "s", "SH2", "tk", "TK1",
               "lg", "x<y")
        assert ev("reg_device", [ra], [P, "new", NOW, "apns", "T7", "TI7",
                                       "CRED7"]) == [1, b"t1", b"s8"]
        g = json.loads(c.call("HGET", P + "reg:t1:s8", "g"))[0]
        assert g["pf"]["lg"] == "vi" and len(g["p"]) == 4, g
        # another sign-up: the sheet is used up; a known token: {3}
        c.call("HSET", ra, "t", "t1", "r", "s8", "s", "SH2", "tk", "TK9")
        assert ev("reg_device", [ra], [P, "new", NOW, "fcm", "T3", "TI3",
                                       "CRED3"]) == [2]
        c.call("HSET", ra, "t", "t1", "r", "s8", "s", "SH2", "tk", "TK1")
        assert ev("reg_device", [ra], [P, "new", NOW, "fcm", "T1", "TI1",
                                       "CRED4"]) == [3]
        # rotation
        assert ev("reg_device", [P + "rdev:CRED1"],
                  [P, "rotate", NOW, "fcm", "T5", "TI5", "CRED1"]) == [
            1, b"t1", b"s8"]
        p_ = json.loads(c.call("HGET", P + "reg:t1:s8", "g"))[0]["p"]
        assert p_[0] == {"k": "fcm", "t": "T5", "ti": "TI5"}, p_
        assert c.call("HGET", P + "rdev:CRED1", "ti") == b"TI5"
        assert ev("reg_device", [P + "rdev:NOPE"],
                  [P, "rotate", NOW, "fcm", "T6", "TI6", "NOPE"]) == [0]
        c.call("DEL", P + "reg:t1:s8")                   # erased meanwhile
        assert ev("reg_device", [P + "rdev:CRED1"],
                  [P, "rotate", NOW, "fcm", "T6", "TI6", "CRED1"]) == [0]
        assert c.call("EXISTS", P + "rdev:CRED1") == 0

    with tap.check("reg_line: a live code links once (sheet counted, the "
                   "others told); wrong codes counted per user and overall, "
                   "then nothing is read; used-up sheet refused"):
        c.call("HSET", P + "sheet:SH3", "t", "t1", "r", "s7", "used", "0",
               "max", "2")
        c.call("HSET", P + "reg:t1:s7", "sheet", "SH3")
        c.call("HSET", P + "rcpt:t1:s7", "name", "SN7", "c",
               '{"id":"s7","e":"D7","ei":"DI7"}')
        rl, fu, fa = P + "rline:c1", P + "rlfail:LI1", P + "rlfail:all"

        def code(key=rl, tk="TKL", lg=None):
            c.call("HSET", key, "t", "t1", "r", "s7", "s", "SH3", "tk", tk,
                   "cs", NOW, *(["lg", lg] if lg else []))

        def link(uid="L1", li="LI1", key=rl, fail=fu, per="3", overall="10"):
            return ev("reg_line", [key, fail, fa],
                      [P, NOW, uid, li, "600000", per, overall])
        assert link() == [0]                               # no such code
        assert c.call("GET", fu) == b"1" and c.call("GET", fa) == b"1"
        assert 0 < c.call("PTTL", fu) <= 600000
        code(lg="pt")
        # the live code's page language last (its replies are worded in it)
        assert link() == [1, b"t1", b"s7", b"SN7", b"", b"", b"D7", b"pt"]
        assert c.call("EXISTS", rl) == 0                   # single use
        g = json.loads(c.call("HGET", P + "reg:t1:s7", "g"))
        assert g == [{"l": "L1", "li": "LI1", "at": NOW, "tk": "TKL",
                      "cs": NOW, "pf": {"lg": "pt", "at": NOW}}], g
        assert c.call("HGET", P + "sheet:SH3", "used") == b"1"
        assert c.call("SISMEMBER", P + "regd:t1", "s7") == 1
        code(tk="TKM", lg="vi")
        assert link() == [3, b"vi"]                        # already linked
        assert link() == [0]                               # used by [3]
        c.call("SET", fu, "3")
        code(tk="TKM", lg="vi")
        assert link() == [4]             # throttled: no language, as [0]
        assert c.call("EXISTS", rl) == 1                   # not even read
        c.call("SET", fa, "10")
        assert link(uid="L2", li="LI2", fail=P + "rlfail:LI2") == [4]
        c.call("SET", fa, "0")
        assert link(uid="L2", li="LI2", fail=P + "rlfail:LI2")[:3] == [
            1, b"t1", b"s7"]
        assert c.call("HGET", P + "sheet:SH3", "used") == b"2"
        code(tk="TKN")                                     # sheet used up
        assert link(uid="L3", li="LI3", fail=P + "rlfail:LI3") == [2, b""]
        # the same sign-up as an earlier guardian: joins it, no sheet use
        code(tk="TKL")
        assert link(uid="L4", li="LI4", fail=P + "rlfail:LI4") == [
            1, b"t1", b"s7", b"SN7", b"", b"", b""]
        g = json.loads(c.call("HGET", P + "reg:t1:s7", "g"))
        assert g[0]["li"] == "LI4" and len(g) == 2, g

    with tap.check("pref_set: finds the guardian by an address index in the "
                   "record, its g and the registrations; sets language, "
                   "order and opt-outs; no change is no write; unknown -1"):
        c.call("HSET", P + "rcpt:t1:s8", "c", json.dumps(
            {"id": "s8", "e": "D8", "ei": "EA", "p": [{"k": "fcm", "t": "T",
                                                      "ti": "TA"}],
             "g": [{"e": "D9", "ei": "EB", "nm": "N"}]}))
        c.call("HSET", P + "reg:t1:s8", "g", json.dumps(
            [{"e": "D10", "ei": "EC", "at": 5}]))

        def ps(idx, patch, now=NOW, child="s8"):
            return ev("pref_set", [], [P, "t1", child, idx, now,
                                       json.dumps(patch)])

        def rec():
            return json.loads(c.call("HGET", P + "rcpt:t1:s8", "c"))
        r = ps("EA", {"lg": "en"})
        assert r[:2] == [1, b"{}"] and json.loads(r[2]) == {
            "lg": "en", "at": NOW}, r
        assert rec()["pf"] == {"lg": "en", "at": NOW}
        assert "pf" not in rec()["g"][0]
        r = ps("TA", {"lg": "en"}, now=NOW + 5)          # push index: same one
        assert r[0] == 0, r
        assert rec()["pf"]["at"] == NOW
        r = ps("EB", {"ox_add": "行事", "ch": ["line", "email"]}, now=NOW + 1)
        assert r[0] == 1 and json.loads(r[2]) == {
            "ch": ["line", "email"], "ox": ["行事"], "at": NOW + 1}, r
        assert rec()["g"][0]["nm"] == "N" and rec()["g"][0]["pf"]["ox"] == ["行事"]
        assert ps("EB", {"ox_add": "行事"})[0] == 0     # already out
        r = ps("EB", {"xc": ["email"]}, now=NOW + 2)
        assert r[0] == 1 and json.loads(r[2])["xc"] == ["email"], r
        assert ps("EB", {"xc": ["email"]})[0] == 0
        r = ps("EB", {"ox_del": "行事", "ch": [], "xc": []}, now=NOW + 2)
        assert r[0] == 1 and json.loads(r[2]) == {"at": NOW + 2}, r
        r = ps("EC", {"ox": ["a", "b"]}, now=NOW + 3)
        assert r[0] == 1, r
        g = json.loads(c.call("HGET", P + "reg:t1:s8", "g"))
        assert g == [{"e": "D10", "ei": "EC", "at": 5,
                      "pf": {"ox": ["a", "b"], "at": NOW + 3}}], g
        assert ps("EZ", {"lg": "en"}) == [-1]              # no such guardian
        assert ps("EA", {"lg": "en"}, child="nobody") == [-1]
        assert ev("pref_set", [], [P, "t1", "s8", "EA", NOW, "[1"]) == [-2]

    with tap.check("every script has its check here"):
        assert tested == set(names), set(names) - tested

    c.close()
tap.done()
