#!/usr/bin/python3
"""test_compose.py - the endpoints of the console's 新規連絡 (issue 14):
groups, directory search, categories, templates, preview and "send to me",
over real HTTP with staff sessions.

One redis-server, one kairand (outbox adapter), two tenants (sakura with a
class list imported by kairanctl, ume with one of its own), staff accounts
made with kairanctl staff.

  [1] kairanctl staff add --email / staff email: a bad address exit 2; the
      address stored sealed (no plaintext in Redis); "" removes it.
  [2] GET /v1/groups: the tenant's groups (Japanese names) with member
      counts; a sender only its own groups; another tenant's session never
      sees sakura's; no session 401.
  [3] GET /v1/directory: by name, kana, id and class; limit; bad limit and
      an over-long or control q 400; a sender only among its groups'
      members; another tenant finds nothing; script-like names come back
      as JSON text.
  [4] GET /v1/categories: the four built-in and the tenant's own.
  [5] templates: three shipped (read-only, 409 on PUT/DELETE); PUT, GET,
      DELETE; a bad name, an unknown member, a bad choice list 400; not
      JSON 415; another tenant sees none of them; the count cap (409).
  [6] preview: the e-mail's decoded subject (drill mark) and text as the
      mail adapter builds it; LINE bubbles of at most 5,000 UTF-16 units;
      push title/body cut into 4,096 bytes; recipients per channel for two
      groups; nothing stored; the submit's errors (400 field, 403 for a
      sender's other group, CR/LF in a subject).
  [7] send to me: 409 without an address; with one, a broadcast to that
      address only ("【テスト送信】" subject, one .eml); a bearer token 403.
  [8] a school of 1,200 children: the preview counts every one, a search
      finds by name; the times are shown, never asserted.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_compose.py
"""

import glob
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("compose")


def request(port, method, path, body=None, headers=None, raw=None):
    """harness.http_request; `raw`: bytes sent as they are (no JSON)."""
    return http_request(port, method, path, raw if body is None else body, headers)


class Session(StaffSession):
    """A browser-like client: one cookie, the CSRF token, our Origin
    (harness.StaffSession); headers and a raw body as request()."""

    def call(self, method, path, body=None, headers=None, raw=None):
        return super().call(method, path, raw if body is None else body,
                            headers=headers)


def q(s):
    return urllib.parse.quote(s, safe="")


CSV_SAKURA = """ID,氏名,ふりがな,クラス,グループ,保護者氏名,電話番号,メール,LINE,FCMトークン
s-1,山田 太郎,やまだ たろう,2年A組,2年A組;サッカー部,山田 父,,taro@example.jp,U0123456789abcdef0123456789abcdef,
s-2,佐藤 花子,さとう はなこ,2年A組,2年A組,,,,U1123456789abcdef0123456789abcdef,fcm-token-s2
s-3,<script>alert(1)</script>,,2年B組,2年B組,,,evil@example.jp,,
s-4,鈴木 一郎,すずき いちろう,2年B組,2年B組;サッカー部,鈴木 父,,ichiro@example.jp,,
s-4,,,,,鈴木 母,,haha@example.jp,,
s-5,高橋 七海,たかはし ななみ,3年C組,3年C組,,070-1234-5678,,,
"""

CSV_UME = """ID,氏名,クラス,グループ,メール
u-1,梅田 一,1組,1組,ume1@example.jp
"""

with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port}})
    P = k.prefix
    PW = {}

    def add(tenant, login, role, groups=None, email=None, name="佐藤 一郎"):
        args = ["staff", "add", "--tenant", tenant, "--login", login,
                "--name", name, "--role", role]
        if groups:
            args += ["--groups", groups]
        if email:
            args += ["--email", email]
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        PW[(tenant, login)] = cp.stdout.rstrip("\n").split("\n")[-1]

    for name, text in (("sakura", CSV_SAKURA), ("ume", CSV_UME)):
        path = os.path.join(out, name + ".csv")
        with open(path, "w") as f:
            f.write(text)
        cp = k.ctl("recipients", "import", "--tenant", name, path)
        assert cp.returncode == 0, cp.stderr
    cp = k.ctl("category", "add", "--tenant", "sakura", "行事")
    if cp.returncode != 0:
        tap.diag("category add: %s" % cp.stderr.strip())

    with tap.check("[1] staff add --email: a bad address is exit 2, nothing added"):
        cp = k.ctl("staff", "add", "--tenant", "sakura", "--login", "bad",
                   "--name", "x", "--role", "admin", "--email", "not an address")
        assert cp.returncode == 2 and "--email" in cp.stderr, (cp.returncode, cp.stderr)
        assert redis.call("EXISTS", P + "staff:sakura:bad") == 0

    add("sakura", "kocho", "admin", email="kocho@school.example.jp", name="校長 先生")
    add("sakura", "tannin", "sender", groups="2年A組,サッカー部", name="担任 先生")
    add("ume", "umeadmin", "admin")

    with tap.check("[1] the staff address is stored sealed, never in clear"):
        v = redis.call("HGET", P + "staff:sakura:kocho", "email")
        assert v and b"kocho@" not in v and b"example" not in v, v
        for key in redis.call("KEYS", P + "staff:*"):
            for f_, val in zip(*[iter(redis.call("HGETALL", key))] * 2):
                assert b"kocho@school" not in val, (key, f_)

    with tap.check("[1] staff list --json says whether an address is set, never the address"):
        cp = k.ctl("staff", "list", "--tenant", "sakura", "--json")
        rows = {r_["login"]: r_ for r_ in json.loads(cp.stdout)}
        assert rows["kocho"]["email"] is True and rows["tannin"]["email"] is False, rows
        assert "kocho@" not in cp.stdout

    with tap.check("[1] staff email sets and \"\" removes; an unknown login exit 3"):
        cp = k.ctl("staff", "email", "--tenant", "sakura", "tannin", "tannin@school.example.jp")
        assert cp.returncode == 0, cp.stderr
        assert redis.call("HEXISTS", P + "staff:sakura:tannin", "email") == 1
        cp = k.ctl("staff", "email", "--tenant", "sakura", "tannin", "")
        assert cp.returncode == 0, cp.stderr
        assert redis.call("HEXISTS", P + "staff:sakura:tannin", "email") == 0
        cp = k.ctl("staff", "email", "--tenant", "sakura", "nobody", "a@b.jp")
        assert cp.returncode != 0 and "nobody" in cp.stderr, cp
        cp = k.ctl("staff", "email", "--tenant", "sakura", "tannin", "a\nb@c")
        assert cp.returncode == 2, cp

    d = k.start()
    d.wait_output('"listening"', 15)

    NEWPW = {"kocho": "kocho no atarashii pasuwado", "tannin": "tannin sensei no pasuwado",
             "umeadmin": "ume no kanrisha desu yo"}

    def first_login(tenant, login):
        s = Session(port)
        r = s.call("POST", "/v1/session", {"tenant": tenant, "login": login,
                                            "password": PW[(tenant, login)]})
        assert r.status == 200, r
        r = s.call("POST", "/v1/session/password",
                   {"current": PW[(tenant, login)], "new": NEWPW[login]})
        assert r.status == 200, r
        return s

    kocho = first_login("sakura", "kocho")
    tannin = first_login("sakura", "tannin")
    ume = first_login("ume", "umeadmin")

    with tap.check("[2] groups: every group of the tenant with its member count"):
        r = kocho.call("GET", "/v1/groups")
        assert r.status == 200, r
        got = {g["name"]: g["members"] for g in r.json["groups"]}
        assert got == {"2年A組": 2, "2年B組": 2, "サッカー部": 2, "3年C組": 1}, got

    with tap.check("[2] a sender sees only its own groups"):
        r = tannin.call("GET", "/v1/groups")
        assert r.status == 200, r
        got = {g["name"]: g["members"] for g in r.json["groups"]}
        assert got == {"2年A組": 2, "サッカー部": 2}, got

    with tap.check("[2] another tenant sees only its own; no session 401"):
        r = ume.call("GET", "/v1/groups")
        assert r.status == 200 and [g["name"] for g in r.json["groups"]] == ["1組"], r
        assert "2年A組" not in r.body
        r = ume.call("GET", "/v1/groups?tenant=sakura")
        assert r.status == 200 and "2年A組" not in r.body, r
        r = request(port, "GET", "/v1/groups")
        assert r.status == 401, r

    with tap.check("[3] directory: found by name, kana, id and class"):
        r = kocho.call("GET", "/v1/directory?q=" + q("山田"))
        assert r.status == 200, r
        assert [x["id"] for x in r.json["recipients"]] == ["s-1"], r
        x = r.json["recipients"][0]
        assert x["name"] == "山田 太郎" and x["class"] == "2年A組", x
        assert set(x["groups"]) == {"2年A組", "サッカー部"}, x
        assert "taro@" not in r.body and "U0123" not in r.body, r
        r = kocho.call("GET", "/v1/directory?q=" + q("はなこ"))
        assert [x["id"] for x in r.json["recipients"]] == ["s-2"], r
        r = kocho.call("GET", "/v1/directory?q=S-4")
        assert [x["id"] for x in r.json["recipients"]] == ["s-4"], r
        r = kocho.call("GET", "/v1/directory?q=" + q("2年B組"))
        assert sorted(x["id"] for x in r.json["recipients"]) == ["s-3", "s-4"], r
        r = kocho.call("GET", "/v1/directory?limit=2")
        assert len(r.json["recipients"]) == 2 and r.json["matches"] == 5, r

    with tap.check("[3] directory: script-like names are JSON text"):
        r = kocho.call("GET", "/v1/directory?q=" + q("<script>"))
        assert r.status == 200, r
        assert r.json["recipients"][0]["name"] == "<script>alert(1)</script>", r
        assert r.headers["content-type"][0].startswith("application/json"), r.headers

    with tap.check("[3] directory: bad limit, long or control q are 400"):
        for bad in ("limit=0", "limit=101", "limit=x", "limit=-1"):
            r = kocho.call("GET", "/v1/directory?" + bad)
            assert r.status == 400 and r.json["field"] == "limit", (bad, r)
        r = kocho.call("GET", "/v1/directory?q=" + q("あ" * 65))
        assert r.status == 400 and r.json["field"] == "q", r
        r = kocho.call("GET", "/v1/directory?q=a%0Ab")
        assert r.status == 400 and r.json["field"] == "q", r
        r = kocho.call("GET", "/v1/directory?q=a%ffb")
        assert r.status == 400 and r.json["field"] == "q", r

    with tap.check("[3] directory: a sender searches its groups' members only"):
        r = tannin.call("GET", "/v1/directory")
        assert r.status == 200, r
        assert sorted(x["id"] for x in r.json["recipients"]) == ["s-1", "s-2", "s-4"], r
        r = tannin.call("GET", "/v1/directory?q=" + q("高橋"))
        assert r.json["recipients"] == [], r

    with tap.check("[3] directory: another tenant finds nothing of sakura's"):
        r = ume.call("GET", "/v1/directory?q=" + q("山田"))
        assert r.status == 200 and r.json["recipients"] == [], r
        r = ume.call("GET", "/v1/directory?tenant=sakura&q=s-1")
        assert r.json["recipients"] == [], r

    with tap.check("[4] categories: the built-in four and the tenant's own"):
        r = kocho.call("GET", "/v1/categories")
        assert r.status == 200, r
        names = [c["name"] for c in r.json["categories"]]
        assert names[:4] == ["notice", "event", "drill", "emergency"], names
        assert [c for c in r.json["categories"] if c["name"] == "emergency"][0]["emergency"]
        r2 = ume.call("GET", "/v1/categories")
        assert "行事" not in r2.body, r2

    TPL = {"subject": "遠足のお知らせ", "body": "明日は遠足です。\nお弁当を持たせてください。",
           "category": "event", "channels": ["email", "line"], "policy": "all"}

    with tap.check("[5] templates: the three shipped examples, read-only"):
        r = kocho.call("GET", "/v1/templates")
        assert r.status == 200, r
        shipped = {t["name"]: t for t in r.json["templates"] if t["shipped"]}
        assert set(shipped) == {"臨時休校", "地震 安否確認", "不審者情報"}, shipped.keys()
        assert shipped["地震 安否確認"]["ack"] is True and len(shipped["地震 安否確認"]["choices"]) == 3
        r = kocho.call("PUT", "/v1/templates/" + q("臨時休校"), TPL)
        assert r.status == 409, r
        # Japanese first for the office, English after.
        assert r.json["error"].startswith("「臨時休校」は見本のため変えられません"), r
        assert "shipped example" in r.json["error"], r
        r = kocho.call("DELETE", "/v1/templates/" + q("臨時休校"))
        assert r.status == 409, r

    with tap.check("[5] every shipped example is a valid broadcast (previews 200)"):
        for t in shipped.values():
            bc = {k_: v for k_, v in t.items() if k_ not in ("name", "shipped")}
            bc["audience"] = {"groups": ["2年A組"]}
            r = kocho.call("POST", "/v1/broadcasts/preview", bc)
            assert r.status == 200, (t["name"], r)

    with tap.check("[5] templates: save, list, replace, delete"):
        r = tannin.call("PUT", "/v1/templates/" + q("遠足"), TPL)
        assert r.status == 200 and r.json["created"] is True, r
        r = kocho.call("GET", "/v1/templates")
        mine = [t for t in r.json["templates"] if not t["shipped"]]
        assert len(mine) == 1 and mine[0]["name"] == "遠足" and mine[0]["subject"] == TPL["subject"], mine
        r = kocho.call("PUT", "/v1/templates/" + q("遠足"), dict(TPL, subject="変更"))
        assert r.status == 200 and r.json["created"] is False, r
        # A name is normalised like a group name (full-width to ASCII).
        r = kocho.call("PUT", "/v1/templates/" + q("ＡＢＣ"), TPL)
        assert r.status == 200 and r.json["name"] == "ABC", r
        r = kocho.call("DELETE", "/v1/templates/ABC")
        assert r.status == 200, r
        r = kocho.call("DELETE", "/v1/templates/ABC")
        assert r.status == 404, r
        assert r.json["error"].startswith("テンプレート「ABC」はありません"), r

    with tap.check("[5] templates: bad name, unknown member, bad choices 400; not JSON 415"):
        r = kocho.call("PUT", "/v1/templates/" + q("a;b"), TPL)
        assert r.status == 400 and r.json["field"] == "name", r
        # The reason in Japanese first (model/label.c's), then English.
        assert r.json["error"].startswith("テンプレート名: 「;」"), r
        assert "the template's name:" in r.json["error"], r
        r = kocho.call("PUT", "/v1/templates/" + q("a\tb"), TPL)
        assert r.status == 400 and r.json["field"] == "name", r
        r = kocho.call("PUT", "/v1/templates/x", dict(TPL, audience={"groups": ["2年A組"]}))
        assert r.status == 400, r
        r = kocho.call("PUT", "/v1/templates/x", dict(TPL, choices=["a", "b"]))
        assert r.status == 400 and r.json["field"] == "choices", r
        r = kocho.call("PUT", "/v1/templates/x", dict(TPL, subject="a\r\nBcc: x@y"))
        assert r.status == 400 and r.json["field"] == "subject", r
        r = kocho.call("PUT", "/v1/templates/x", None, {"Content-Type": "text/plain"},
                       raw=b"subject=x")
        assert r.status == 415, r
        r = kocho.call("PUT", "/v1/templates/x", None, {"Content-Type": "application/json"},
                       raw=b"[1,2]")
        assert r.status == 400, r
        assert redis.call("HEXISTS", P + "tpl:sakura", "x") == 0

    with tap.check("[5] templates: another tenant sees none of sakura's and cannot delete"):
        r = ume.call("GET", "/v1/templates")
        assert "遠足" not in r.body, r
        r = ume.call("DELETE", "/v1/templates/" + q("遠足"))
        assert r.status == 404, r
        assert redis.call("HEXISTS", P + "tpl:sakura", "遠足") == 1

    with tap.check("[5] templates: at most 100 a tenant (409 beyond)"):
        for i in range(99):
            r = ume.call("PUT", "/v1/templates/t%d" % i, TPL)
            assert r.status == 200, r
        r = ume.call("PUT", "/v1/templates/t99", TPL)
        assert r.status == 200, r
        r = ume.call("PUT", "/v1/templates/t100", TPL)
        assert r.status == 409 and "100" in r.json["error"], r
        r = ume.call("PUT", "/v1/templates/t5", dict(TPL, subject="置き換え"))
        assert r.status == 200, r

    BC = {"category": "notice", "subject": "<b>運動会</b>のお知らせ",
          "body": "保護者各位\n運動会は10月1日です。", "channels": ["email", "line", "push"],
          "audience": {"groups": ["2年A組", "2年B組"]}}

    with tap.check("[6] preview: the e-mail as a mail client shows it"):
        before = (redis.call("XLEN", P + "broadcasts"), len(redis.call("KEYS", P + "bc:*")))
        r = kocho.call("POST", "/v1/broadcasts/preview", dict(BC, drill=True))
        assert r.status == 200, r
        e = r.json["texts"]["email"]
        assert e["subject"] == "【訓練】<b>運動会</b>のお知らせ", e
        assert "桜高校" in e["from"] and "noreply@sakura.example.jp" in e["from"], e
        assert e["body"].startswith("※これは訓練です。"), e
        assert "運動会は10月1日です。" in e["body"] and "\r" not in e["body"], e
        assert r.json["stored"] is False

    with tap.check("[6] preview: recipients per channel for two groups"):
        rc = r.json["recipients"]
        # s-1 (email, line), s-2 (line, push), s-3 (email), s-4 and its
        # second guardian (2 e-mails)
        assert rc["children"] == 4 and rc["guardians"] == 5, rc
        assert rc["messages"] == {"email": 4, "line": 2, "push": 1}, rc
        assert rc["no_contact"] == 0, rc
        r2 = kocho.call("POST", "/v1/broadcasts/preview",
                        dict(BC, policy="preferred", audience={"groups": ["2年A組", "3年C組"]}))
        rc = r2.json["recipients"]
        assert rc["children"] == 3 and rc["no_contact"] == 1, rc
        assert rc["messages"] == {"email": 1, "line": 1, "push": 0}, rc

    with tap.check("[6] preview: nothing stored or sent"):
        after = (redis.call("XLEN", P + "broadcasts"), len(redis.call("KEYS", P + "bc:*")))
        assert before == after, (before, after)
        assert not glob.glob(os.path.join(k.outbox, "*", "*.eml")), "sent?"

    with tap.check("[6] preview: LINE bubbles of at most 5,000 UTF-16 units, push cut to 4,096 bytes"):
        long_body = ("あ" * 99 + "\n") * 120  # 12,000 characters
        r = kocho.call("POST", "/v1/broadcasts/preview", dict(BC, body=long_body))
        assert r.status == 200, r
        msgs = r.json["texts"]["line"]["messages"]
        assert len(msgs) >= 4 and all(m["units"] <= 5000 for m in msgs), [m["units"] for m in msgs]
        assert msgs[0]["text"] == "<b>運動会</b>のお知らせ", msgs[0]
        p = r.json["texts"]["push"]
        for plat in ("fcm", "apns"):
            assert p[plat]["bytes"] <= 4096, p[plat]["bytes"]
            assert p[plat]["body"].endswith("…"), p[plat]["body"][-10:]
            assert len(p[plat]["body"]) < len(long_body)
        tap.diag("12,000-character body: %d LINE bubbles; push body %d chars (fcm %d B, apns %d B)"
                 % (len(msgs), len(p["fcm"]["body"]), p["fcm"]["bytes"], p["apns"]["bytes"]))

    with tap.check("[6] preview: an ack broadcast shows the link words on every channel"):
        r = kocho.call("POST", "/v1/broadcasts/preview",
                       dict(BC, ack=True, choices=["はい", "いいえ"]))
        assert r.status == 200, r
        t = r.json["texts"]
        assert "http://127.0.0.1:%d/a/" % port in t["email"]["body"], t["email"]["body"]
        assert "/a/" in t["line"]["messages"][-1]["text"]
        assert "/a/" in t["push"]["fcm"]["body"]

    with tap.check("[6] preview: the submit's own errors"):
        r = kocho.call("POST", "/v1/broadcasts/preview", dict(BC, subject="a\nBcc: x@y"))
        assert r.status == 400 and r.json["field"] == "subject", r
        r = kocho.call("POST", "/v1/broadcasts/preview", dict(BC, channels=["fax"]))
        assert r.status == 400 and r.json["field"].startswith("channels"), r
        r = kocho.call("POST", "/v1/broadcasts/preview", dict(BC, tenant="ume"))
        assert r.status == 403 and r.json["field"] == "tenant", r
        r = tannin.call("POST", "/v1/broadcasts/preview", BC)
        assert r.status == 403 and r.json["field"].startswith("audience.groups"), r
        r = tannin.call("POST", "/v1/broadcasts/preview", dict(BC, audience={"groups": ["2年A組"]}))
        assert r.status == 200 and r.json["recipients"]["children"] == 2, r
        r = kocho.call("POST", "/v1/broadcasts/preview", None, {"Content-Type": "text/plain"},
                       raw=b"{}")
        assert r.status == 415, r
        r = ume.call("POST", "/v1/broadcasts/preview", BC)
        # ume has no such groups: counted as nobody, sakura's members never seen
        assert r.status == 200 and r.json["recipients"]["children"] == 0, r

    with tap.check("[7] send to me: 409 when the account has no address"):
        r = tannin.call("POST", "/v1/broadcasts/test", dict(BC, audience={"groups": ["2年A組"]}))
        assert r.status == 409 and r.json["field"] == "email", r
        assert "kairanctl staff email" in r.json["error"], r

    with tap.check("[7] send to me: one e-mail to the staff member's own address only"):
        r = kocho.call("POST", "/v1/broadcasts/test", dict(BC, send_at="2099-01-01T09:00:00+09:00"))
        assert r.status == 202, r
        bid = r.json["id"]
        h = k.wait_done(bid, 60)
        assert h.get("n:email:delivered") == "1", h
        assert "n:line:total" not in h and "n:push:total" not in h, h
        emls = glob.glob(os.path.join(k.outbox, bid, "*.eml"))
        assert len(emls) == 1, emls
        raw = open(emls[0], "rb").read().decode("utf-8", "replace")
        assert "kocho@school.example.jp" in raw, raw[:500]
        assert "taro@example.jp" not in raw and "ichiro@" not in raw
        for path in glob.glob(os.path.join(k.outbox, "*", "*.eml")):
            assert os.path.dirname(path).endswith(bid), path
        assert h["subject"].startswith("【テスト送信】"), h["subject"]
        tap.diag("send to me: %s delivered to the one address" % bid)

    with tap.check("[7] send to me: a bearer token is 403; no plaintext address in Redis"):
        cp = k.ctl("token", "create", "--role", "limited_admin", "--name", "sys",
                   "--tenant", "sakura")
        tok = cp.stdout.strip()
        r = request(port, "POST", "/v1/broadcasts/test", BC,
                    {"Authorization": "Bearer " + tok})
        assert r.status == 403, r
        for key in redis.call("KEYS", P + "*"):
            if redis.call("TYPE", key) == b"string":
                assert b"kocho@school" not in redis.call("GET", key), key

    with tap.check("[8] a school of 1,200 children: preview and search answer (times shown, not asserted)"):
        import time
        rows = ["ID,氏名,クラス,グループ,メール,LINE"]
        for i in range(1200):
            rows.append("b-%04d,生徒 %d,%d組,%d年;%d組,g%d@example.jp,U%032x"
                        % (i, i, i % 30, i % 6 + 1, i % 30, i, i))
        path = os.path.join(out, "big.csv")
        with open(path, "w") as f:
            f.write("\n".join(rows) + "\n")
        cp = k.ctl("recipients", "import", "--tenant", "ume", path)
        assert cp.returncode == 0, cp.stderr
        groups = ["%d年" % g for g in range(1, 7)]
        t0 = time.monotonic()
        r = ume.call("POST", "/v1/broadcasts/preview",
                     dict(BC, audience={"groups": groups}))
        t_pv = (time.monotonic() - t0) * 1000
        assert r.status == 200, r
        rc = r.json["recipients"]
        assert rc["children"] == 1200 and rc["messages"] == {"email": 1200, "line": 1200, "push": 0}, rc
        assert rc["truncated"] is False
        t0 = time.monotonic()
        r = ume.call("GET", "/v1/directory?q=" + q("生徒 119"))
        t_dir = (time.monotonic() - t0) * 1000
        assert r.status == 200 and r.json["matches"] == 11, r  # 119, 1190-1199
        r = ume.call("GET", "/v1/groups")
        assert {g["name"]: g["members"] for g in r.json["groups"]}["1年"] == 200, r
        tap.diag("1,200 children: preview %.0f ms, directory search %.0f ms (over HTTP, loaded machine)"
                 % (t_pv, t_dir))

    d.stop()
    tap.ok("kocho@school" not in d.stderr_text(),
           "kairand log holds no staff address")

tap.done()
