#!/usr/bin/python3
"""test_keys.py - key names cannot collide; a producer's id is its tenant's
own (issue 11, items 1, 2 and 7).

One redis-server, one kairand (outbox adapter, HTTP on a free port).

  [1] Every key suffix kairan uses (":aud", ":r", ":ack", ":m", and whole key
      shapes such as "bc:X", "rcpt:t:i") given as a broadcast's id through
      every entry path (kairanctl submit, POST /v1/broadcasts, raw XADD):
      each is stored under a name of kairan's own ("b-..."), the producer's
      id as its key; "X:aud" then "X" both go out, and another tenant's
      urgent broadcast submitted behind them is delivered: nothing holds
      the expander.
  [2] The same id from another tenant is that tenant's own broadcast; the
      same id again from the same tenant (any path) names the first one
      and creates nothing; GET /v1/broadcasts?key=K finds it; another
      tenant's token gets 404 for it, exactly as for a name that does not
      exist (read and cancel), never 403 or 409.
  [3] Recipient ids and group names holding ':' (and every suffix) in a
      CSV import: tenant "ume"'s recipient "x:r1" is not tenant "ume:x"'s
      "r1" (a tenant name with ':' is refused); each recipient gets its own
      key, reached only through its own tenant; a broadcast to a group
      named like a suffix reaches exactly its members.
  [4] kairanctl migrate moves keys of an older kairan (and, schema 3, adds
      the categories its broadcasts used to their tenant's list and
      normalises tokens' group lists) (a broadcast "a:b"
      at bc:a:b, a recipient "x:r1" at rcpt:ume:x:r1) and makes old ids
      idempotency keys; running it again changes nothing.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_keys.py
"""

import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("keys")
SUFFIXES = ["X:aud", "X", "X:r", "X:ack", "X:m", "bc:X", "rcpt:ume:r1", "grp:ume:g",
            "idem:ume", "X:aud:r", "aud"]


def bcast(tenant, key=None, group=None, n=1, tag="", **kw):
    b = {"tenant": tenant, "category": "notice", "subject": "件名 " + tag,
         "body": "本文", "channels": ["email"]}
    if key is not None:
        b["id"] = key
    if group is not None:
        b["audience"] = {"groups": [group]}
    else:
        b["recipients"] = [{"id": "r-%d" % i,
                            "email": "g%d.%s@example.jp" % (i, tenant)}
                           for i in range(n)]
    b.update(kw)
    return b


def request(port, method, path, token=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    h = {}
    if token:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        body = json.dumps(body, ensure_ascii=False).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


def eml_count(k, bid):
    d = os.path.join(k.outbox, bid)
    return len([f for f in os.listdir(d) if f.endswith(".eml")]) \
        if os.path.isdir(d) else 0


def bc_names(redis):
    return [x.decode() for x in redis.call("ZRANGE", "kairan:bcs", "0", "-1")]


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "rate": "100000"}})

    def token(role, name, tenant=None, groups=None):
        args = ["token", "create", "--role", role, "--name", name]
        if tenant:
            args += ["--tenant", tenant]
        if groups:
            args += ["--groups", groups]
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.strip()

    T_ume = token("limited_admin", "ume office", tenant="ume")
    T_momo = token("limited_admin", "momo office", tenant="momo")
    T_admin = token("admin", "hq")
    d = k.start()
    names = {}  # (path, key) -> name

    with tap.check("[1] every key suffix as an id, by kairanctl: stored under kairan's own name"):
        for key in SUFFIXES:
            name = k.submit(bcast("ume", key=key, tag="cli " + key))
            assert name.startswith("b-") and ":" not in name, name
            assert k.bc(name).get("key") == key, (key, k.bc(name))
            names[("cli", key)] = name

    with tap.check("[1] ... by POST /v1/broadcasts: 202 with kairan's name and the key"):
        for key in SUFFIXES:
            st, j = request(port, "POST", "/v1/broadcasts", T_momo,
                            bcast("momo", key=key, tag="api " + key))
            assert st == 202, (st, j)
            assert j["id"].startswith("b-") and j["key"] == key, j
            names[("api", key)] = j["id"]

    with tap.check("[1] ... by raw XADD: stored under a kairan name, the id as its key"):
        for key in SUFFIXES:
            redis.call("XADD", "kairan:broadcasts", "*", "job",
                       json.dumps(bcast("kiku", key=key, tag="raw " + key),
                                  ensure_ascii=False))

        def raw_stored():
            got = {}
            for n in bc_names(redis):
                h = k.bc(n)
                if h.get("tenant") == "kiku":
                    got[h.get("key")] = n
            return got if len(got) == len(SUFFIXES) else None
        got = wait_for(raw_stored, 60, 0.1, "raw broadcasts stored")
        for key, n in got.items():
            assert n.startswith("b-"), n
            names[("raw", key)] = n

    with tap.check("[1] all of them are delivered, then another tenant's urgent one too"):
        urgent = k.submit(bcast("sakura", priority="urgent", tag="urgent"))
        for n in list(names.values()) + [urgent]:
            h = k.wait_done(n, 120)
            assert h.get("status") == "done", (n, h)
            assert eml_count(k, n) == 1, (n, eml_count(k, n))

    with tap.check("[2] the same id again names the first broadcast and creates nothing"):
        before = len(bc_names(redis))
        for key in ("X:aud", "X"):
            assert k.submit(bcast("ume", key=key)) == names[("cli", key)]
            st, j = request(port, "POST", "/v1/broadcasts", T_ume,
                            bcast("ume", key=key))
            assert st == 200 and j["duplicate"] is True, (st, j)
            assert j["id"] == names[("cli", key)], j
        redis.call("XADD", "kairan:broadcasts", "*", "job",
                   json.dumps(bcast("kiku", key="X")))
        # The raw entry is consumed (the stream is emptied by the expander).
        wait_for(lambda: redis.call("XLEN", "kairan:broadcasts") == 0, 30,
                 0.05, "raw entry consumed")
        assert len(bc_names(redis)) == before, (len(bc_names(redis)), before)

    with tap.check("[2] another tenant's same id is its own broadcast"):
        for key in SUFFIXES:
            ns = {names[(p, key)] for p in ("cli", "api", "raw")}
            assert len(ns) == 3, (key, ns)

    with tap.check("[2] GET ?key=K finds the tenant's broadcast; admin names the tenant"):
        st, j = request(port, "GET", "/v1/broadcasts?key=X%3Aaud", T_ume)
        assert st == 200 and j["id"] == names[("cli", "X:aud")], (st, j)
        assert j["key"] == "X:aud", j
        st, j = request(port, "GET", "/v1/broadcasts?key=X%3Aaud", T_momo)
        assert st == 200 and j["id"] == names[("api", "X:aud")], (st, j)
        st, j = request(port, "GET", "/v1/broadcasts?key=X&tenant=kiku", T_admin)
        assert st == 200 and j["id"] == names[("raw", "X")], (st, j)
        st, j = request(port, "GET", "/v1/broadcasts?key=X", T_admin)
        assert st == 400 and j["field"] == "tenant", (st, j)
        st, j = request(port, "GET", "/v1/broadcasts?key=nope", T_ume)
        assert st == 404, (st, j)

    with tap.check("[2] another tenant's broadcast: 404 exactly as for a missing one"):
        other = names[("cli", "X")]
        st1, j1 = request(port, "GET", "/v1/broadcasts/" + other, T_momo)
        st2, j2 = request(port, "GET", "/v1/broadcasts/b-20260101-000000000000",
                          T_momo)
        assert st1 == 404 and st2 == 404, (st1, j1, st2, j2)
        assert set(j1) == set(j2) and j1["field"] == j2["field"], (j1, j2)
        st, j = request(port, "POST", "/v1/broadcasts/%s/cancel" % other, T_momo)
        assert st == 404, (st, j)
        st, j = request(port, "GET", "/v1/broadcasts?key=X&tenant=ume", T_momo)
        assert st == 200 and j["id"] == names[("api", "X")], (st, j)

    # ---- [3] the directory ----
    ids = ["x:r1", "r1", "X:aud", "X", "a:b:c", "rcpt:ume:r1"]
    csv = "id,email,groups\n" + "".join(
        "%s,%s@example.jp,%s\n" % (i, "m%d" % n, "g:%d;grp:ume:g" % (n % 2))
        for n, i in enumerate(ids))
    path = os.path.join(out, "ume.csv")
    with open(path, "w") as f:
        f.write(csv)

    with tap.check("[3] a tenant name with ':' is refused with what to use"):
        cp = k.ctl("recipients", "import", "--tenant", "ume:x", path)
        assert cp.returncode == 2, (cp.returncode, cp.stderr)
        assert "letters, digits" in cp.stderr, cp.stderr

    with tap.check("[3] ids and groups with ':' each get their own key"):
        cp = k.ctl("recipients", "import", "--tenant", "ume", path)
        assert cp.returncode == 0, cp.stderr
        for i in ids:
            enc = i.replace(":", "%3A")
            assert redis.call("EXISTS", "kairan:rcpt:ume:" + enc) == 1, i
        for i in ids:
            if ":" in i:
                assert redis.call("EXISTS", "kairan:rcpt:ume:" + i) == 0, i
        assert redis.call("SCARD", "kairan:grp:ume:grp%3Aume%3Ag") == len(ids)
        assert redis.call("SCARD", "kairan:grp:ume:g%3A0") == 3

    with tap.check("[3] a broadcast to group 'g:1' reaches exactly its three members"):
        n = k.submit(bcast("ume", group="g:1", tag="group"))
        h = k.wait_done(n, 60)
        assert h.get("status") == "done", h
        assert eml_count(k, n) == 3, eml_count(k, n)

    with tap.check("[3] audience.recipients 'x:r1' of tenant ume is ume's, not 'ume:x''s"):
        n = k.submit({"tenant": "ume", "category": "notice", "subject": "s",
                      "body": "b", "channels": ["email"],
                      "audience": {"recipients": ["x:r1"]}})
        k.wait_done(n, 60)
        assert eml_count(k, n) == 1, eml_count(k, n)
        cp = k.ctl("submit", "-", input=json.dumps(
            {"tenant": "ume:x", "category": "notice", "subject": "s",
             "body": "b", "channels": ["email"],
             "audience": {"recipients": ["r1"]}}))
        assert cp.returncode != 0 and "tenant" in cp.stderr, cp.stderr

    d.stop()

    # ---- [4] migrate ----
    with tap.check("[4] kairanctl migrate moves old keys and keeps old ids as keys"):
        redis.call("HSET", "kairan:bc:a:b", "status", "done", "tenant", "ume",
                   "id", "a:b")
        redis.call("RPUSH", "kairan:bc:a:b:aud", "d:x")
        redis.call("ZADD", "kairan:bcs", "1", "a:b")
        redis.call("HSET", "kairan:bc:old-1", "status", "done", "tenant", "ume",
                   "id", "old-1", "category", "行事")
        redis.call("SADD", "kairan:tokens", "oldtok")
        redis.call("HSET", "kairan:token:oldtok", "role", "sender",
                   "tenant", "ume", "groups", "２年Ａ組,soccer")
        redis.call("ZADD", "kairan:bcs", "2", "old-1")
        redis.call("SADD", "kairan:rcpts:ume", "y:r9")
        redis.call("HSET", "kairan:rcpt:ume:y:r9", "active", "1")
        cp = k.ctl("migrate")
        assert cp.returncode == 0, (cp.stdout, cp.stderr)
        assert redis.call("EXISTS", "kairan:bc:a:b") == 0
        assert redis.call("HGET", "kairan:bc:a%3Ab", "key") == b"a:b"
        assert redis.call("LLEN", "kairan:bc:a%3Ab:aud") == 1
        assert redis.call("HGET", "kairan:idem:ume", "a:b") == b"a:b"
        assert redis.call("HGET", "kairan:idem:ume", "old-1") == b"old-1"
        assert redis.call("EXISTS", "kairan:rcpt:ume:y%3Ar9") == 1
        assert redis.call("GET", "kairan:schema") == b"3"
        # schema 3: categories an older kairan took join the tenant's list;
        # tokens' groups are NFKC like group names
        assert redis.call("HKEYS", "kairan:cats:ume") == ["行事".encode()]
        assert redis.call("HGET", "kairan:token:oldtok", "groups").decode() == "2年A組,soccer"
        assert "1 categories added" in cp.stdout and "1 token group" in cp.stdout, cp.stdout
        assert k.submit(bcast("ume", key="a:b")) == "a:b"
        cp = k.ctl("migrate")
        assert cp.returncode == 0 and "0 records moved" in cp.stdout, cp.stdout

tap.done()
