#!/usr/bin/python3
"""test_resolve_steps.py - a directory audience larger than 10 expansion
pages is resolved in steps (queue/lua/resolve.lua, dispatcher/
expand_audience.c), so that Redis answers others between them: one call
of 1,000,000 ids held Redis 1.2 s, two overlapping groups 3 s.

  [1] two overlapping groups and two recipient ids that are also in them
      (1,200 recipients, pages of 10: steps of 100 ids): kairand makes
      the calls one after the other (counted in Redis' slow log, which
      logs every call here); every recipient gets exactly one LINE
      message; the step's place and the seen set are gone at the end.
  [2] kairand stopped in the middle of a resolution (what a crash leaves:
      the calls made so far stay, each whole): the next kairand goes on
      from there; every recipient once.
  [3] a broadcast cancelled between two steps: no job, the seen set gone.
  [4] one step a turn: another school's 20 recipients submitted with it
      are expanded (every page committed) before the large audience's
      last step (the order of the calls in Redis' slow log).
  [5] Redis restarted between two steps (its AOF reloaded): a SCAN
      cursor of the old process would skip members in the new one (its
      hash seed differs), so the steps start the groups again; 50,000
      members, every one written once.  And a recipient id given twice
      is written once; a Redis user refused INFO gets the audience at
      once.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_resolve_steps.py
"""

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("resolve-steps")
N, PAGE = 1200, 10
STEP = 10 * PAGE
LUA = open(os.path.join(BUILD, "lua", "resolve.lua"), "rb").read()
SHA = hashlib.sha1(LUA).hexdigest()


def audience():
    return {"groups": ["g1", "g2"], "recipients": ["s-0003", "s-1100"]}


def account(r, k, bid):
    """Every one of the N recipients exactly once, delivered."""
    h = k.wait_done(bid, 120)
    assert h.get("status") == "done", h
    states = resolve_states(r.call("HGETALL", k.prefix + "bc:%s:r" % bid))
    assert len(states) == N, (len(states), N)
    assert int(h["n:line:total"]) == N and int(h["jobs"]) == N, h
    assert int(h["aud_n"]) == N, h
    assert int(h["xc"]) == N // PAGE, h
    assert "res_g" not in h and "res_c" not in h, h
    assert r.call("EXISTS", k.prefix + "bc:%s:seen" % bid) == 0
    aud = r.call("LRANGE", k.prefix + "bc:%s:aud" % bid, 0, -1)
    assert len(aud) == N and len(set(aud)) == N, len(aud)
    wait_for(lambda: int(k.bc(bid).get("n:line:delivered", "0")) >= N, 60,
             what="delivered")


def resolve_calls(r):
    """kairand's calls of the resolve script in the slow log."""
    n = 0
    for e in r.call("SLOWLOG", "GET", -1):
        args = e[3]
        if args and args[0].upper() == b"EVALSHA" and \
                args[1].decode() == SHA:
            n += 1
    return n


with Redis(out) as r:
    k = Kairan(out, r, conf=pipeline_conf(PAGE))
    rows = ["id,name,groups,line"]
    for i in range(N):
        g = "g1" if i < 800 else "g2"
        if 500 <= i < 800:
            g = "g1;g2"
        rows.append("s-%04d,生徒%d,%s,U%032x" % (i, i, g, 0x9000 + i))
    path = os.path.join(out, "dir.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\r\n".join(rows) + "\r\n")
    cp = k.ctl("recipients", "import", "--tenant", "steps", path, timeout=120)
    assert cp.returncode == 0, cp.stderr

    def submit(subject):
        return k.submit({"tenant": "steps", "priority": "normal",
                         "subject": subject, "body": "本文",
                         "channels": ["line"], "audience": audience()})

    rows = ["id,name,groups,line"]
    rows += ["c-%02d,児童%d,c,U%032x" % (i, i, 0xa000 + i) for i in range(20)]
    path = os.path.join(out, "small.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\r\n".join(rows) + "\r\n")
    cp = k.ctl("recipients", "import", "--tenant", "small", path, timeout=60)
    assert cp.returncode == 0, cp.stderr
    r.call("CONFIG", "SET", "slowlog-log-slower-than", "0")
    r.call("CONFIG", "SET", "slowlog-max-len", "100000")

    with tap.check("[1] 1,200 recipients in steps of 100: the calls one "
                   "after the other, every recipient once"):
        r.call("SLOWLOG", "RESET")
        d = k.start()
        bid = submit("段階 1")
        account(r, k, bid)
        calls = resolve_calls(r)
        tap.diag("resolve calls: %d" % calls)
        # the ids, then 1,200 group members (300 of them twice) in steps
        # of about 100
        assert calls >= (N + 300) // STEP, calls
        d.stop()
        assert d.returncode == 0, d.stderr_text()[-2000:]

    with tap.check("[2] stopped in the middle of a resolution: the next "
                   "kairand goes on from there, every recipient once"):
        bid = submit("段階 2")          # no kairand: nobody takes it yet
        P = k.prefix
        keys = [P + "bc:" + bid, P + "bc:%s:aud" % bid, P + "cats:steps",
                P + "bc:%s:seen" % bid]
        got = r.call("EVAL", LUA, 4, *keys, P, "steps", STEP, 2, "g1", "g2",
                     "s-0003", "s-1100")
        assert got == [3, 2], got
        for _ in range(5):            # what the stopped kairand had done
            got = r.call("EVAL", LUA, 4, *keys, P, "steps", STEP)
            assert got[0] == 3, got
        before = int(got[1])
        assert 2 < before < N and r.call("HGET", keys[0], "res_g") \
            is not None, got
        r.call("SLOWLOG", "RESET")
        d = k.start()
        account(r, k, bid)
        assert resolve_calls(r) >= (N - before) // STEP, resolve_calls(r)
        d.stop()
        assert d.returncode == 0, d.stderr_text()[-2000:]

    with tap.check("[3] cancelled between two steps: no job, the seen set "
                   "gone"):
        bid = submit("段階 3")
        P = k.prefix
        keys = [P + "bc:" + bid, P + "bc:%s:aud" % bid, P + "cats:steps",
                P + "bc:%s:seen" % bid]
        assert r.call("EVAL", LUA, 4, *keys, P, "steps", STEP, 2, "g1",
                      "g2")[0] == 3
        assert r.call("EXISTS", keys[3]) == 0  # no ids yet: nothing seen
        assert r.call("EVAL", LUA, 4, *keys, P, "steps", STEP)[0] == 3
        assert r.call("EXISTS", keys[3]) == 1
        cp = k.ctl("cancel", bid)
        assert cp.returncode == 0, cp.stderr
        d = k.start()
        h = k.wait_done(bid, 60)
        assert h.get("status") == "cancelled", h
        assert int(h.get("jobs", "0")) == 0, h
        wait_for(lambda: r.call("EXISTS", keys[3]) == 0, 30,
                 what="the seen set to be dropped")
        d.stop()
        assert d.returncode == 0, d.stderr_text()[-2000:]

    with tap.check("[4] one step a turn: another school's broadcast "
                   "submitted with it is expanded before the last step"):
        r.call("SLOWLOG", "RESET")
        big = submit("段階 4")
        small = k.submit({"tenant": "small", "priority": "normal",
                          "subject": "学級だより", "body": "本文",
                          "channels": ["line"],
                          "audience": {"groups": ["c"]}})
        d = k.start()
        account(r, k, big)
        h = k.wait_done(small, 60)
        assert h.get("status") == "done" and int(h["jobs"]) == 20, h
        commit = hashlib.sha1(open(os.path.join(
            BUILD, "lua", "commit_page.lua"), "rb").read()).hexdigest()
        steps, pages = [], []
        for e in r.call("SLOWLOG", "GET", -1):
            a = [x.decode("utf-8", "replace") for x in e[3]]
            if len(a) < 4 or a[0].upper() != "EVALSHA":
                continue
            if a[1] == SHA and P + "bc:" + big in a:
                steps.append(e[0])
            if a[1] == commit and P + "bc:" + small in a:
                pages.append(e[0])
        tap.diag("large audience: %d steps; small broadcast: %d pages"
                 % (len(steps), len(pages)))
        assert len(steps) >= (N + 300) // STEP and pages, (steps, pages)
        assert max(pages) < max(steps), \
            "the small broadcast waited for every step: %r %r" % (
                pages, steps)
        d.stop()
        assert d.returncode == 0, d.stderr_text()[-2000:]

with tap.check("[5] Redis restarted between two steps: every member of "
               "50,000 written once; an id given twice, once"):
    r2 = Redis(out, appendonly=True)
    try:
        P = "kairan:"
        r2.call("EVAL", "for i = 1, 50000, 1000 do local t = {} "
                "for j = i, i + 999 do t[#t + 1] = 'm' .. j end "
                "redis.call('SADD', KEYS[1], unpack(t)) end", 1,
                P + "grp:t1:all")
        r2.call("HSET", P + "rcpt:t1:m7", "c", "x")
        r2.call("HSET", P + "bc:rs", "status", "queued", "groups", '["all"]')
        keys = [P + "bc:rs", P + "bc:rs:aud", P + "cats:t1", P + "bc:rs:seen"]
        got = r2.call("EVAL", LUA, 4, *keys, P, "t1", 5000, 1, "all",
                      "m7", "m7")
        assert got == [3, 1], got
        for _ in range(5):
            got = r2.call("EVAL", LUA, 4, *keys, P, "t1", 5000)
            assert got[0] == 3, got
        rid = r2.call("HGET", keys[0], "res_r")
        r2.stop()
        r2.start()
        assert r2.call("HGET", keys[0], "res_r") == rid  # the AOF kept it
        calls = 0
        while got[0] == 3:
            got = r2.call("EVAL", LUA, 4, *keys, P, "t1", 5000)
            calls += 1
            assert calls < 40, calls
        aud = r2.call("LRANGE", keys[1], 0, -1)
        tap.diag("after the restart: %d calls; %d written" % (calls, len(aud)))
        assert got == [1, 50000, 0] and len(aud) == 50000 and \
            len(set(aud)) == 50000, (got, len(aud), len(set(aud)))
        assert r2.call("EXISTS", keys[3]) == 0
        assert r2.call("HGET", keys[0], "res_r") is None
        # a user the ACL refuses INFO and UNLINK (an older ACL file): the
        # audience at once, as before 0.5.0
        r2.call("ACL", "SETUSER", "old", "on", ">pw", "~*", "+@all",
                "-info", "-unlink")
        r2.call("HSET", P + "bc:ro", "status", "queued", "groups", '["all"]')
        ko = [P + "bc:ro", P + "bc:ro:aud", P + "cats:t1", P + "bc:ro:seen"]
        with r2.client() as c:
            c.call("AUTH", "old", "pw")
            got = c.call("EVAL", LUA, 4, *ko, P, "t1", 5000, 1, "all")
        assert got == [1, 50000, 0], got
        assert r2.call("EXISTS", ko[3]) == 0
    finally:
        r2.stop()

tap.done()
