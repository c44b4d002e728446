#!/usr/bin/python3
"""test_tenant_index.py - one school's view on an instance shared by many
(a prefecture's schools, issue 20): its history, its active list and its
guardians' my page read the school's own index tbcs:<tenant>, which the
submit script keeps and the first kairand of 0.5.0 fills from bcs.

  [1] broadcasts stored before the index existed (tbcs deleted, the
      migration mark removed): kairand fills tbcs:<tenant> from bcs at
      start, logs it once, marks it done; a second start adds nothing.
  [2] another school has 150 active broadcasts older than ours and 450
      newer ones: our limited_admin's GET /v1/broadcasts?active=1 lists
      our active broadcast (and our just-ended one), none of theirs; an
      admin token without a tenant still sees every school's.
  [3] GET /v1/broadcasts?limit=10 (the history) gives our four
      broadcasts on the first page, newest first, none of theirs.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_tenant_index.py
"""

import http.client
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("tenant-index")
T, U = "sakura", "ume"


def get(port, path, token):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    st, body = r.status, r.read()
    c.close()
    return st, json.loads(body) if body else None


with Redis(out) as r:
    port = free_port()
    k = Kairan(out, r, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "rate": "100000"}})
    P = k.prefix

    def token(role, name, tenant=None):
        args = ["token", "create", "--role", role, "--name", name]
        if tenant:
            args += ["--tenant", tenant]
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.strip().split()[-1]

    TOK = token("limited_admin", "教頭", T)
    ADMIN = token("admin", "県教委")
    mine = []
    for i in range(3):
        mine.append(k.submit({"tenant": T, "subject": "お知らせ %d" % i,
                              "body": "本文", "channels": ["email"],
                              "recipients": [{"id": "c-%d" % i,
                                              "email": "p%d@example.jp" % i}]}))
    # As before 0.5.0: no tenant index, no migration mark.
    r.call("DEL", P + "tbcs:" + T)
    r.call("HDEL", P + "migrations", "tbcs")

    d = k.start()
    d.wait_output('"listening"', 15)

    with tap.check("[1] the first start fills tbcs:<tenant> from bcs once"):
        wait_for(lambda: r.call("HEXISTS", P + "migrations", "tbcs") == 1,
                 60, what="the migration mark")
        got = [x.decode() for x in r.call("ZRANGE", P + "tbcs:" + T, 0, -1)]
        assert got == mine, (got, mine)
        for bid in mine:
            k.wait_done(bid, 60)
        log = d.stderr_text()
        assert "tenants' broadcast indexes filled" in log, log[-2000:]
        d.stop()
        d = k.start()
        d.wait_output('"listening"', 15)
        assert "tenants' broadcast indexes filled" not in d.stderr_text()

    # Another school: 150 active broadcasts older than ours, 450 newer
    # ones, stored as kairand stores them (hash, bcs, tbcs, active).
    now = int(time.time() * 1000)
    theirs = []
    for i in range(600):
        bid = "b-ume-%03d" % i
        created = now - 3600000 + i if i < 150 else now + 1000 + i
        r.call("HSET", P + "bc:" + bid, "status", "sending", "tenant", U,
               "category", "notice", "priority", "normal",
               "created_ms", str(created), "subject", "梅 %d" % i)
        r.call("ZADD", P + "bcs", created, bid)
        r.call("ZADD", P + "tbcs:" + U, created, bid)
        if i < 150:
            r.call("ZADD", P + "active", created, bid)
        theirs.append(bid)
    # Ours, active: a broadcast still sending.
    live = "b-sakura-live"
    r.call("HSET", P + "bc:" + live, "status", "sending", "tenant", T,
           "category", "notice", "priority", "normal",
           "created_ms", str(now), "subject", "運動会")
    for z in ("bcs", "tbcs:" + T, "active"):
        r.call("ZADD", P + z, now, live)

    with tap.check("[2] ?active=1: our active broadcast and our one just "
                   "ended, none of the other school's 150 active"):
        st, j = get(port, "/v1/broadcasts?active=1", TOK)
        assert st == 200, (st, j)
        ids = [b["id"] for b in j["broadcasts"]]
        assert live in ids, ids[:10]
        assert not any(x.startswith("b-ume-") for x in ids), ids[:10]
        # ended a moment ago: still listed (its final bar); the other two
        # too (all three ended within the last minutes)
        assert set(mine) <= set(ids), ids
        st, j = get(port, "/v1/broadcasts?active=1", ADMIN)
        assert st == 200 and any(b["id"].startswith("b-ume-")
                                 for b in j["broadcasts"]), j

    with tap.check("[3] the history's first page holds our four, newest "
                   "first, none of the other school's 450 newer"):
        st, j = get(port, "/v1/broadcasts?limit=10", TOK)
        assert st == 200, (st, j)
        ids = [b["id"] for b in j["broadcasts"]]
        assert ids == [live] + mine[::-1], ids

    d.stop()

tap.diag("test_tenant_index.py took %.1fs" % (time.monotonic() - T0))
tap.done()
