#!/usr/bin/python3
"""test_rejected_leaks.py - a rejected raw producer entry keeps no value
(issue 11, item 6): its reason names the field and what is wrong, and of
its JSON only a few harmless fields survive; everything else is masked.

One redis-server with appendonly yes (aof-use-rdb-preamble no), one
kairand at log_level debug.  Raw `XADD kairan:broadcasts * job <json>`
entries carrying personal data in wrong places:
  - an address among audience.recipients (the directory ids), a name in
    the subject;
  - an address as the producer's id, a name in the body;
  - inline recipients under a misspelt key ("recipeints");
  - a recipient whose address sits under a misspelt key ("emial");
  - an address used as a key name;
  - an invalid address (two '@');
  - an address as the tenant;
  - not JSON at all (an address inside);
  - an unknown group whose name is personal (stored, then rejected when
    the audience is resolved).
  [1] each ends rejected; its reason names the field (checked per entry)
      and holds no value; the harmless fields (category, priority,
      channels) are kept in the masked JSON.
  [2] none of the addresses, their local parts, the names (UTF-8 and JSON
      \\u-escaped) in any Redis key or value (SCAN, every type).
  [3] none in the AOF except inside the producer's own XADD commands
      (documented: "in the AOF until its next rewrite"); after
      BGREWRITEAOF none at all.
  [4] none in kairand's log, `kairanctl status` (text and --json), nor
      GET /v1/queues and GET /v1/broadcasts/{id}.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_rejected_leaks.py
"""

import glob
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("rejleaks")
STREAM = "kairan:broadcasts"


def base(**kw):
    b = {"tenant": "sakura-hs", "category": "notice", "priority": "urgent",
         "subject": "お知らせ", "body": "本文です", "channels": ["email"]}
    b.update(kw)
    return {k: v for k, v in b.items() if v is not None}


def enc(b):
    return json.dumps(b, ensure_ascii=False).encode()


# (name, job bytes, field the reason must name, secrets it carries)
CASES = [
    ("an address among audience.recipients",
     enc(base(subject="山田花子さんへ",
              audience={"recipients": ["hanako.yamada@docomo.ne.jp"]})),
     "audience.recipients[0]", ["hanako.yamada@docomo.ne.jp", "山田花子"]),
    ("an address as the producer's id",
     enc(base(id="yamamoto.taro@docomo.ne.jp", body="山本太郎様",
              recipients=[{"id": "r-0", "email": "ok@example.jp"}])),
     "id", ["yamamoto.taro@docomo.ne.jp", "山本太郎"]),
    ("inline recipients under a misspelt key",
     enc(base(recipeints=[{"id": "r-1", "name": "佐藤一郎",
                           "email": "ichiro.sato@ezweb.ne.jp"}])),
     "recipeints", ["ichiro.sato@ezweb.ne.jp", "佐藤一郎"]),
    ("an address under a misspelt key of a recipient",
     enc(base(recipients=[{"id": "r-2", "name": "鈴木次郎",
                           "emial": "suzuki.jiro@au.com"}])),
     "recipients[0].emial", ["suzuki.jiro@au.com", "鈴木次郎"]),
    ("an address as a key name",
     enc(base(recipients=[{"id": "r-3", "takahashi.mai@softbank.ne.jp": "x",
                           "email": "ok@example.jp"}])),
     "recipients[0].?", ["takahashi.mai@softbank.ne.jp"]),
    ("an invalid address",
     enc(base(recipients=[{"id": "r-4", "name": "小林", "email":
                           "kobayashi.yu@@docomo.ne.jp"}])),
     "recipients[0].email", ["kobayashi.yu@", "kobayashi.yu", "小林"]),
    ("an address as the tenant",
     enc(base(tenant="watanabe.ken@i.softbank.jp",
              recipients=[{"id": "r-5", "email": "ito.hiro@docomo.ne.jp"}])),
     "tenant", ["watanabe.ken@i.softbank.jp", "ito.hiro@docomo.ne.jp"]),
    ("not JSON",
     b'{"tenant": "sakura-hs", "email": kimura.sho@docomo.ne.jp, "name": "\xe6\x9c\xa8\xe6\x9d\x91"',
     "json", ["kimura.sho@docomo.ne.jp", "木村"]),
]
GROUP_SECRET = "nakamura-sachiko-family"


def needles(secrets):
    res = []
    for s in secrets:
        forms = {s, s.lower(), json.dumps(s)[1:-1]}
        if "@" in s and s.index("@") > 3:
            forms.add(s.split("@")[0])
        res += [f.encode() for f in forms]
    return res


ALL = [n for c in CASES for n in needles(c[3])]


def find(blobs, ns, where):
    found = []
    for b in blobs:
        for n in ns:
            i = b.find(n)
            if i >= 0:
                found.append("%s: %r in %r" % (where, n, b[max(0, i - 60):i + 60]))
    return found


def redis_blobs(r):
    c = r.client()
    blobs, cursor = [], b"0"
    while True:
        cursor, keys = c.call("SCAN", cursor, "COUNT", 1000)
        for key in keys:
            blobs.append(key)
            t = c.call("TYPE", key)
            t = t.decode() if isinstance(t, bytes) else t
            vals = {"string": lambda: [c.call("GET", key)],
                    "hash": lambda: c.call("HGETALL", key),
                    "list": lambda: c.call("LRANGE", key, 0, -1),
                    "set": lambda: c.call("SMEMBERS", key),
                    "zset": lambda: c.call("ZRANGE", key, 0, -1),
                    "stream": lambda: [x for e in c.call("XRANGE", key, "-", "+")
                                       for x in [e[0]] + list(e[1])],
                    }.get(t, lambda: [])()
            blobs.extend(v for v in vals if isinstance(v, bytes))
        if cursor in (b"0", 0, "0"):
            c.close()
            return blobs


def resp_commands(data):
    """The commands of an AOF written as RESP (no RDB preamble)."""
    cmds, i = [], 0
    while i < len(data):
        assert data[i:i + 1] == b"*", ("not RESP at %d" % i, data[i:i + 40])
        j = data.index(b"\r\n", i)
        n = int(data[i + 1:j])
        i = j + 2
        args = []
        for _ in range(n):
            j = data.index(b"\r\n", i)
            ln = int(data[i + 1:j])
            args.append(data[j + 2:j + 2 + ln])
            i = j + 2 + ln + 2
        cmds.append(args)
    return cmds


def aof_files(r):
    return sorted(p for p in glob.glob(os.path.join(r.dir, "appendonlydir", "*"))
                  if not p.endswith(".manifest"))


def aof_blobs(r, skip_producer_xadd):
    blobs = []
    for p in aof_files(r):
        with open(p, "rb") as f:
            data = f.read()
        for c in resp_commands(data):
            if skip_producer_xadd and c[0].upper() == b"XADD" and \
                    c[1] == STREAM.encode() and b"job" in c:
                continue
            blobs.append(b"\0".join(c))
    return blobs


def api(port, path, token):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    c.request("GET", path, headers={"Authorization": "Bearer " + token})
    resp = c.getresponse()
    raw = resp.read()
    c.close()
    return resp.status, raw


r = Redis(out, appendonly=True, extra_args=["--aof-use-rdb-preamble", "no"])
r.start()
port = free_port()
k = Kairan(out, r, email="outbox",
           conf={"dispatcher": {"log_level": "debug"},
                 "http": {"listen": "127.0.0.1:%d" % port}})
cp = k.ctl("token", "create", "--role", "admin", "--name", "rejected leaks")
assert cp.returncode == 0, cp.stderr
ADMIN = cp.stdout.strip()
r.call("SADD", "kairan:groups:sakura-hs", "2-A")
d = k.start()
d.wait_output('"listening"', 15)

eids = []
with tap.check("raw XADD entries added"):
    for name, job, field, _ in CASES:
        eids.append(r.call("XADD", STREAM, "*", "job", job).decode())
    grp_eid = r.call("XADD", STREAM, "*", "job", enc(base(
        audience={"groups": [GROUP_SECRET]}))).decode()

rejected = {}
with tap.check("[1] every entry ends rejected, none left in the stream"):
    wait_for(lambda: r.call("XLEN", STREAM) == 0, 30, what="empty stream")
    wait_for(lambda: r.call("ZCARD", "kairan:rejected") == len(CASES) + 1, 30,
             what="%d rejected" % (len(CASES) + 1))
    for bid in r.call("ZRANGE", "kairan:rejected", 0, -1):
        h = k.bc(bid.decode())
        rejected[bid.decode()] = h
    assert all(h.get("status") == "rejected" for h in rejected.values())

for name, job, field, secrets in CASES:
    with tap.check("[1] %s: the reason names %s, no value" % (name, field)):
        hs = [h for h in rejected.values()
              if h.get("reason", "").startswith(field + ":")]
        assert hs, (field, [h.get("reason") for h in rejected.values()])
        h = hs[0]
        tap.diag("%s -> [%s] %s" % (name, h.get("field"), h.get("reason")))
        tap.diag("   masked: %s" % h.get("masked"))
        assert not find([h["reason"].encode()], needles(secrets), "reason")
        m = h.get("masked", "")
        if field != "json":
            j = json.loads(m)
            assert j.get("priority") == "urgent" and j.get("channels") == ["email"], m
            assert j.get("subject") == "***" and j.get("body") == "***", m
        else:
            assert m.startswith("(not JSON"), m

with tap.check("[1] an unknown group: the reason names its place, not the group"):
    hs = [h for h in rejected.values()
          if h.get("reason", "").startswith("audience.groups[0]:")]
    assert hs and GROUP_SECRET not in hs[0]["reason"], \
        [h.get("reason") for h in rejected.values()]
    tap.diag("group -> %s" % hs[0]["reason"])

with tap.check("[2] no plaintext in any Redis key or value"):
    found = find(redis_blobs(r), ALL, "redis")
    assert not found, "\n".join(found[:10])

with tap.check("[3] the AOF holds them only in the producer's own XADDs"):
    assert find(aof_blobs(r, False), ALL, "aof"), "the AOF scan is blind"
    found = find(aof_blobs(r, True), ALL, "aof")
    assert not found, "\n".join(found[:10])

with tap.check("[3] after BGREWRITEAOF: none in the AOF"):
    before = [os.path.basename(p) for p in aof_files(r)]
    r.call("BGREWRITEAOF")

    def rewritten():
        info = r.call("INFO", "persistence").decode()
        kv = dict(x.split(":", 1) for x in info.split("\r\n") if ":" in x)
        return (kv.get("aof_rewrite_in_progress") == "0" and
                kv.get("aof_rewrite_scheduled") == "0" and
                [os.path.basename(p) for p in aof_files(r)] != before)
    wait_for(rewritten, 20, what="BGREWRITEAOF")
    found = find(aof_blobs(r, False), ALL, "aof")
    assert not found, "\n".join(found[:10])

with tap.check("[4] none in kairanctl status, /v1/queues, /v1/broadcasts/{id}"):
    blobs = []
    for args in (("status",), ("status", "--json")):
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        blobs.append(cp.stdout.encode() + cp.stderr.encode())
    st, raw = api(port, "/v1/queues", ADMIN)
    assert st == 200, (st, raw)
    rej = json.loads(raw)["rejected"]
    assert len(rej) == len(CASES) + 1, rej
    blobs.append(raw)
    for bid in rejected:
        st, raw = api(port, "/v1/broadcasts/" + bid, ADMIN)
        blobs.append(raw)
    found = find(blobs, ALL + [GROUP_SECRET.encode()], "output")
    assert not found, "\n".join(found[:10])

d.stop()
with tap.check("[4] none in kairand's log (debug level)"):
    log = open(d.stderr_path, "rb").read()
    assert b"broadcast rejected" in log
    found = find([log], ALL + [GROUP_SECRET.encode()], "log")
    assert not found, "\n".join(found[:10])

r.stop()
tap.done()
