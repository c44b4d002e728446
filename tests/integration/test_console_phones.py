#!/usr/bin/python3
"""test_console_phones.py - the 配信状況 page's phoning (issue 14) and its
bounced / suppressed rows (issue 18), over real HTTP (one redis-server,
one kairand with the outbox adapter).

  [1] GET /v1/broadcasts/{name}/recipients/{rcpt}/phones: the sender of
      the broadcast, the tenant's admin and limited_admin get the child's
      guardians' whole numbers ({"phones": [{"guardian", "phone"}]},
      no-store); another sender, another tenant's admin, a child not in
      the audience, an unknown broadcast or child, hostile ids: the same
      404 with no number; an operator session 403; no session 401.
  [2] each answer writes one operation-log line recipients.phone (who,
      broadcast, child) and no log or op line ever holds the number.
  [3] the recipients rows of a bounced and a suppressed delivery (states
      written in Redis as the bounce path writes them) carry the state and
      the teacher's reason (reason, reason_ja); the masked phone stays.
  [4] the sender moved to another class (staff groups): its old
      broadcast's children are 404 on phones and a re-send finds nobody
      (409); the school's admin still reads them.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_console_phones.py
"""

import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("console_phones")


# A request of its own and a browser-like session: harness.py.
request = http_request
Session = StaffSession


NUMBERS = ("090-1111-2222", "080-3333-4444", "070-5555-6666")

with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port}})
    PW = {}

    def add(tenant, login, role, groups=None):
        args = ["staff", "add", "--tenant", tenant, "--login", login,
                "--name", login, "--role", role]
        if groups:
            args += ["--groups", groups]
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        PW[(tenant, login)] = cp.stdout.rstrip("\n").split("\n")[-1]

    add("sakura", "sato", "sender", groups="2-A")
    add("sakura", "ito", "sender", groups="2-A")
    add("sakura", "kocho", "admin")
    add("sakura", "kyoto", "limited_admin")
    add("sakura", "unyo", "operator")
    add("momo", "kocho", "admin")
    d = k.start()
    d.wait_output('"listening"', 15)

    def login(tenant, who):
        s = Session(port)
        r = s.call("POST", "/v1/session", {"tenant": tenant, "login": who,
                                           "password": PW[(tenant, who)]})
        assert r.status == 200, r
        newpw = "%s no atarashii pasuwado %s" % (who, tenant)
        r = s.call("POST", "/v1/session/password",
                   {"current": PW[(tenant, who)], "new": newpw})
        assert r.status == 200, r
        return s

    CLASS = "\r\n".join([
        "ID,氏名,クラス,グループ,保護者氏名,電話番号,メール",
        "r-1,山田 一郎,A,2-A,山田 花子,090-1111-2222,r1@example.jp",
        "r-2,田中 二郎,A,2-A,<img src=x onerror=alert(1)>,080-3333-4444,r2@example.jp",
        "r-3,鈴木 三郎,A,2-A,,,r3@example.jp",
        "r-6,別の 組,B,2-B,別の 親,070-5555-6666,r6@example.jp",
    ]) + "\r\n"
    path = os.path.join(out, "class.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write(CLASS)
    cp = k.ctl("recipients", "import", "--tenant", "sakura", path)
    assert cp.returncode == 0, cp.stderr

    sato, ito = login("sakura", "sato"), login("sakura", "ito")
    kocho, kyoto = login("sakura", "kocho"), login("sakura", "kyoto")
    unyo, momo = login("sakura", "unyo"), login("momo", "kocho")

    r = sato.call("POST", "/v1/broadcasts", {
        "category": "notice", "ack": True, "subject": "臨時休校", "body": "本文",
        "channels": ["email"], "audience": {"groups": ["2-A"]}})
    assert r.status == 202, r
    bid = r.json["id"]
    k.wait_done(bid, 60)
    P = "/v1/broadcasts/%s/recipients/%%s/phones" % bid

    def oplines():
        p = os.path.join(k.dir, "audit", "operations.jsonl")
        return [json.loads(x) for x in open(p, encoding="utf-8")] if os.path.exists(p) else []

    with tap.check("[1] the sender, the admin and the limited_admin get the whole numbers"):
        for who in (sato, kocho, kyoto):
            r = who.call("GET", P % "r-1")
            assert r.status == 200, r
            assert r.json == {"phones": [{"guardian": "山田 花子", "phone": "090-1111-2222"}]}, r.json
            assert r.h("cache-control") == "no-store", r.headers
        r = sato.call("GET", P % "r-2")
        assert r.json == {"phones": [{"guardian": "<img src=x onerror=alert(1)>",
                                      "phone": "080-3333-4444"}]}, r.json
        r = sato.call("GET", P % "r-3")
        assert r.status == 200 and r.json == {"phones": []}, r

    with tap.check("[1] another sender, another tenant, not in the audience, unknown: 404 alike"):
        n0 = len(oplines())
        seen = set()
        for who, rc in ((ito, "r-1"), (momo, "r-1"), (sato, "r-6"), (kocho, "r-6"),
                        (sato, "r-9"), (kocho, "r-nope")):
            r = who.call("GET", P % rc)
            assert r.status == 404, (rc, r)
            assert not any(n in r.body for n in NUMBERS) and "山田" not in r.body, r
            seen.add(r.body)
        r = kocho.call("GET", "/v1/broadcasts/b-nope/recipients/r-1/phones")
        assert r.status == 404, r
        seen.add(r.body)
        assert len(seen) == 1, seen  # nothing tells them apart
        assert len(oplines()) == n0, oplines()[n0:]

    with tap.check("[1] an operator session 403, no session 401"):
        r = unyo.call("GET", P % "r-1")
        assert r.status == 403 and "090" not in r.body, r
        r = request(port, "GET", P % "r-1")
        assert r.status == 401, r

    with tap.check("[1] hostile ids: 404 or 400, nothing echoed as markup, no number"):
        for p in ("/v1/broadcasts/%s/recipients/..%%2fr-1/phones" % bid,
                  "/v1/broadcasts/%s/recipients/%%3Cimg%%3E/phones" % bid,
                  "/v1/broadcasts/%s/recipients/r-1%%00/phones" % bid,
                  "/v1/broadcasts/%s/recipients/%s/phones" % (bid, "r" * 300),
                  "/v1/broadcasts/%s/recipients/r-1%%0d%%0aX:1/phones" % bid,
                  "/v1/broadcasts/..%2f" + bid + "/recipients/r-1/phones",
                  "/v1/broadcasts/%3Cimg%3E/recipients/r-1/phones",
                  "/v1/broadcasts/%s/recipients/d:r-1/phones" % bid,
                  "/v1/broadcasts/%s/recipients/*/phones" % bid):
            r = kocho.call("GET", p)
            assert r.status in (400, 404), (p, r)
            assert "<img" not in r.body and not any(n in r.body for n in NUMBERS), (p, r)
            assert r.h("x") is None, r.headers

    with tap.check("[2] one op-log line recipients.phone each: who, broadcast, child; no number"):
        ops = [o for o in oplines() if o.get("op") == "recipients.phone"]
        assert len(ops) == 5, ops  # 3 x r-1, r-2, r-3
        o = ops[0]
        assert o["broadcast"] == bid and o["id"] == "r-1" and o["tenant"] == "sakura", o
        assert o["login"] == "sato" and o["actor"].startswith("token:"), o
        assert [x["login"] for x in ops[:3]] == ["sato", "kocho", "kyoto"], ops
        for f in glob.glob(os.path.join(k.dir, "audit", "*")):
            with open(f, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            assert not any(n in text for n in NUMBERS), f
        text = d.stdout_text() + d.stderr_text()
        assert not any(n in text for n in NUMBERS), "a number in kairand's log"

    with tap.check("[3] bounced and suppressed rows: state, the teacher's reason, phone masked"):
        rk = k.prefix + "bc:" + bid + ":r"
        v = redis.call("HGETALL", rk)
        fields = {v[i].decode(): v[i + 1].decode() for i in range(0, len(v), 2)}
        done = set()
        for f, val in fields.items():
            code, rc, ms = val.split("|")[:3]
            if rc == "r-2":
                redis.call("HSET", rk, f, "b|r-2|%s|5.1.1;1;dsn" % ms)
                done.add(rc)
            elif rc == "r-3":
                redis.call("HSET", rk, f, "s|r-3|%s|" % ms)
                done.add(rc)
        assert done == {"r-2", "r-3"}, fields
        r = sato.call("GET", "/v1/broadcasts/%s/recipients" % bid)
        assert r.status == 200, r
        rows = {x["recipient"]: x for x in r.json["recipients"]}
        b, s = rows["r-2"], rows["r-3"]
        assert b["state"] == "bounced" and b["child_state"] == "not_reached", b
        assert "ドメイン指定受信" in b["reason_ja"] and "receive filter" in b["reason"], b
        assert b["phone"] == "***4444", b
        assert s["state"] == "suppressed" and "新しいアドレス" in s["reason_ja"], s
        assert "suppressed" in s["reason"], s
        assert rows["r-1"]["state"] == "delivered" and rows["r-1"]["reason"] is None, rows["r-1"]
        r = sato.call("GET", "/v1/broadcasts/" + bid)
        c = r.json["counts"]["email"]
        tap.diag("counts: %s" % json.dumps(c))

    with tap.check("[4] a sender moved to another class: its old broadcast's "
                   "children no longer reachable (phones 404, re-send 409)"):
        r = kocho.call("POST", "/v1/staff/sato/groups", {"groups": ["2-B"]})
        assert r.status == 200, r
        sato2 = Session(port)
        r = sato2.call("POST", "/v1/session", {
            "tenant": "sakura", "login": "sato",
            "password": "sato no atarashii pasuwado sakura"})
        assert r.status == 200, r
        r = sato2.call("GET", P % "r-1")
        assert r.status == 404 and "090" not in r.body, r
        r = kocho.call("GET", P % "r-1")  # the school's admin still may
        assert r.status == 200, r
        r = sato2.call("POST", "/v1/broadcasts/%s/resend" % bid, {})
        assert r.status == 409 and r.json["field"] == "to", r

    with tap.check("kairand stops cleanly (no sanitizer report)"):
        rc = d.stop()
        err = d.stderr_text()
        assert "Sanitizer" not in err and "runtime error" not in err, err[-2000:]
        assert rc == 0, (rc, err[-2000:])

tap.done()
