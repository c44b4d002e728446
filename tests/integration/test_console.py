#!/usr/bin/python3
"""test_console.py - the staff console's server side (issue 14, console-core):
its files, GET /v1/session and POST /v1/broadcasts/{name}/resend, over
real HTTP (one redis-server, one kairand with the outbox adapter).

  [1] /c/<tenant>/ serves index.html and /c/<tenant>/<file> every file of
      web/console/ with its Content-Type, the console CSP (Trusted Types)
      and no-store; an invalid tenant, an unknown file and a path that
      tries to leave the folder are 404; /c/<tenant> redirects to the
      folder; the page holds no data (the same bytes for every tenant).
  [2] GET /v1/session: who the session is (tenant, login, name, role,
      must_change_password), never the CSRF token; allowed while the
      initial password is owed; 401 without a session or after logout;
      an API token gets its own tenant and role.
  [3] resend: a sender's ack broadcast to its group (5 children: one
      confirms, one has only a phone number) is re-sent to the three
      unconfirmed with a contact: a new broadcast with the same subject,
      body and choices, delivered to exactly those three; another sender
      of the tenant and another tenant's admin get 404 and learn nothing;
      the tenant's admin may; a broadcast not yet ended, a "to" that does
      not fit, nobody left, hostile names and bodies, no CSRF token: each
      refused with what to fix; the operation log says broadcast.resend.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_console.py
"""

import email
import email.policy
import glob
import http.client
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("console")
WEB = os.path.join(ROOT, "web", "console")


# A request of its own and a browser-like session: harness.py.
request = http_request
Session = StaffSession


CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "require-trusted-types-for 'script'; trusted-types 'none'")
CTYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".js": "text/javascript; charset=utf-8",
          ".json": "application/json; charset=utf-8"}

with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port}})
    PW = {}

    def add(tenant, login, role, name="佐藤 一郎", groups=None):
        args = ["staff", "add", "--tenant", tenant, "--login", login,
                "--name", name, "--role", role]
        if groups:
            args += ["--groups", groups]
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        PW[(tenant, login)] = cp.stdout.rstrip("\n").split("\n")[-1]

    add("sakura", "sato", "sender", name="佐藤 <b>先生</b>", groups="2-A")
    add("sakura", "ito", "sender", name="伊藤", groups="2-A")
    add("sakura", "kocho", "admin", name="校長")
    add("momo", "kocho", "admin", name="桃の校長")
    admin_tok = k.ctl("token", "create", "--role", "admin", "--name", "ops").stdout.strip()
    d = k.start()
    d.wait_output('"listening"', 15)

    def login(tenant, who, newpw=None):
        s = Session(port)
        r = s.call("POST", "/v1/session", {"tenant": tenant, "login": who,
                                           "password": PW[(tenant, who)]})
        assert r.status == 200, r
        if newpw:
            r = s.call("POST", "/v1/session/password",
                       {"current": PW[(tenant, who)], "new": newpw})
            assert r.status == 200, r
            PW[(tenant, who)] = newpw
        return s

    with tap.check("[1] /c/<tenant>/ and every file of web/console/: type, CSP, no-store"):
        files = sorted(os.listdir(WEB))
        assert "index.html" in files and "console.js" in files, files
        for f in files + [""]:
            r = request(port, "GET", "/c/sakura/" + f)
            name = f or "index.html"
            with open(os.path.join(WEB, name), "rb") as fh:
                assert r.status == 200 and r.raw == fh.read(), (f, r)
            ext = os.path.splitext(name)[1]
            assert r.h("content-type") == CTYPES.get(ext, r.h("content-type")), (f, r.headers)
            assert r.h("content-security-policy") == CSP, r.headers
            assert r.h("cache-control") == "no-store", r.headers
            assert r.h("x-content-type-options") == "nosniff", r.headers
        size = sum(os.path.getsize(os.path.join(WEB, f)) for f in files
                   if f.endswith((".js", ".css")))
        tap.diag("console files: %d, JS+CSS %d bytes" % (len(files), size))
        assert size < 150 * 1024, size  # issue 14: under 150 KB together

    with tap.check("[1] one strings file per language, the same keys in both"):
        with open(os.path.join(WEB, "strings-ja.json"), encoding="utf-8") as f:
            ja = json.load(f)
        with open(os.path.join(WEB, "strings-en.json"), encoding="utf-8") as f:
            en = json.load(f)
        assert set(ja) == set(en), sorted(set(ja) ^ set(en))
        assert ja["login.id"] == "ログインID" and ja["login.password"] == "パスワード"
        assert ja["login.submit"] == "ログイン" and ja["pw.submit"] == "変更する"
        assert [ja["common.nav." + p] for p in ("home", "compose", "roster", "staff")] == \
            ["ホーム", "新規連絡", "名簿", "職員"]

    with tap.check("[1] the page holds no data: the same bytes for every tenant"):
        a = request(port, "GET", "/c/sakura/").raw
        b = request(port, "GET", "/c/momo/").raw
        assert a == b, "index differs between tenants"

    with tap.check("[1] bad tenants, unknown files and escapes are 404; /c/<t> redirects"):
        for p in ("/c/sa:kura/", "/c/%2e%2e/", "/c/-x/", "/c/" + "a" * 65 + "/",
                  "/c/sakura/nope.js", "/c/sakura/..%2fstatus.js",
                  "/c/sakura/%2e%2e%2fkairan.conf", "/c/sakura/index.html/x",
                  "/c//", "/c/sakura/.", "/c/%3Cimg%3E/console.js",
                  "/c/sakura/console.js%00"):
            r = request(port, "GET", p)
            assert r.status in (400, 404), (p, r)
            assert "<" not in r.body or r.json is not None, (p, r)
        r = request(port, "GET", "/c/sakura")
        assert r.status == 301 and r.h("location") == "/c/sakura/", (r, r.headers)
        r = request(port, "GET", "/c/sa%3Ckura")
        assert r.status == 404, r
        r = request(port, "POST", "/c/sakura/", {})
        assert r.status == 405, r

    with tap.check("[2] GET /v1/session: 401 without a session; who the session is, no csrf"):
        r = request(port, "GET", "/v1/session")
        assert r.status == 401, r
        s = Session(port)
        r = s.call("POST", "/v1/session", {"tenant": "sakura", "login": "sato",
                                           "password": PW[("sakura", "sato")]})
        assert r.status == 200 and r.json["must_change_password"] is True, r
        # Allowed while the initial password is owed (the console asks on start).
        r = s.call("GET", "/v1/session")
        assert r.status == 200, r
        assert r.json == {"tenant": "sakura", "login": "sato", "name": "佐藤 <b>先生</b>",
                          "role": "sender", "session": True,
                          "must_change_password": True, "totp_required": False}, r.json
        assert s.csrf not in r.body and "csrf" not in r.json, r
        r = s.call("POST", "/v1/session/password",
                   {"current": PW[("sakura", "sato")], "new": "sato sensei no pasuwado"})
        assert r.status == 200, r
        PW[("sakura", "sato")] = "sato sensei no pasuwado"
        r = s.call("GET", "/v1/session")
        assert r.status == 200 and r.json["must_change_password"] is False, r
        ka = login("sakura", "kocho", "kocho no atarashii pasuwado")
        r = ka.call("GET", "/v1/session")
        assert r.status == 200 and r.json["role"] == "admin", r
        r = s.call("DELETE", "/v1/session")
        assert r.status == 200, r
        r = request(port, "GET", "/v1/session", headers={"Cookie": "kairan_session=" + "A" * 43})
        assert r.status == 401, r

    with tap.check("[2] GET /v1/session with an API token: its tenant and role, login null"):
        r = request(port, "GET", "/v1/session",
                    headers={"Authorization": "Bearer " + admin_tok})
        assert r.status == 200 and r.json["role"] == "admin" and r.json["login"] is None, r
        assert r.json["session"] is False and r.json["name"] == "ops", r

    CLASS = "\r\n".join([
        "ID,氏名,クラス,グループ,保護者氏名,電話番号,メール",
        "r-1,山田 一郎,A,2-A,山田 花子,090-1111-2222,r1@example.jp",
        "r-2,<img src=x onerror=alert(1)>,A,2-A,田中 母,,r2@example.jp",
        "r-3,鈴木 三郎,A,2-A,,,r3@example.jp",
        "r-4,佐藤 四郎,A,2-A,,,r4@example.jp",
        "r-5,高橋 五郎,A,2-A,高橋 父,080-3333-4444,",
        "r-6,別の 組,B,2-B,,,r6@example.jp",
    ]) + "\r\n"
    path = os.path.join(out, "class.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write(CLASS)
    cp = k.ctl("recipients", "import", "--tenant", "sakura", path)
    assert cp.returncode == 0, cp.stderr

    def mails(bid):
        got = {}
        for p in glob.glob(os.path.join(k.outbox, bid, "*.eml")):
            with open(p, "rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.default)
            body = msg.get_body(("plain",)).get_content()
            m = re.search(r"https?://[^/\s]+(/a/[A-Za-z0-9_.-]+)", body)
            got[str(msg["To"]).lower()] = (str(msg["Subject"]), m.group(1) if m else None)
        return got

    sato = login("sakura", "sato")  # password changed in [2]
    ito = login("sakura", "ito", "ito sensei no pasuwado")
    kocho = login("sakura", "kocho")
    momo = login("momo", "kocho", "momo no kocho no pasuwado")
    SUBJ = "【訓練】安否確認 <script>alert(1)</script> {{7*7}}"

    with tap.check("[3] a sender's ack broadcast reaches its group; one child confirms"):
        r = sato.call("POST", "/v1/broadcasts", {
            "category": "drill", "drill": True, "ack": True,
            "subject": SUBJ, "body": "本文 </script>", "channels": ["email"],
            "choices": ["無事", "けがあり"], "audience": {"groups": ["2-A"]}})
        assert r.status == 202, r
        bid = r.json["id"]
        k.wait_done(bid, 60)
        m = mails(bid)
        assert sorted(m) == ["r%d@example.jp" % i for i in range(1, 5)], m
        r = request(port, "POST", m["r1@example.jp"][1], None)
        st = request(port, "GET", m["r1@example.jp"][1])
        assert st.status == 200, st
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", m["r1@example.jp"][1], body=b"a=0",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        rr = c.getresponse()
        rr.read()
        c.close()
        assert rr.status in (200, 303), rr.status
        r = sato.call("GET", "/v1/broadcasts/" + bid)
        assert r.json["ack"]["confirmed"] == 1, r.json["ack"]

    with tap.check("[3] another sender and another tenant's admin get 404 and learn nothing"):
        for who in (ito, momo):
            r = who.call("POST", "/v1/broadcasts/%s/resend" % bid, {})
            assert r.status == 404, r
            assert SUBJ not in r.body and "r-" not in r.body, r
        r = request(port, "POST", "/v1/broadcasts/%s/resend" % bid, {})
        assert r.status == 401, r
        n_before = len(redis.call("ZRANGE", "kairan:bcs", 0, -1))
        assert n_before == 1, n_before

    with tap.check("[3] hostile names and bodies, no CSRF token: refused, nothing made"):
        for p, body, want in (
                ("/v1/broadcasts/..%2fx/resend", {}, 404),
                ("/v1/broadcasts/%3Cimg%3E/resend", {}, 404),
                ("/v1/broadcasts/b-nope/resend", {}, 404),
                ("/v1/broadcasts/%s/resend" % bid, {"to": "everyone"}, 400),
                ("/v1/broadcasts/%s/resend" % bid, {"to": 1}, 400),
                ("/v1/broadcasts/%s/resend" % bid, {"to": "unreached", "x": 1}, 400),
                ("/v1/broadcasts/%s/resend" % bid, [], 400)):
            r = sato.call("POST", p, body)
            assert r.status == want, (p, body, r)
            assert "<img" not in r.body, r
        saved = sato.csrf
        sato.csrf = None
        r = sato.call("POST", "/v1/broadcasts/%s/resend" % bid, {})
        sato.csrf = saved
        assert r.status == 403, r
        r = sato.call("POST", "/v1/broadcasts/%s/resend" % bid, {"to": "unreached"})
        assert r.status == 409 and "nobody" in r.json["error"], r
        assert len(redis.call("ZRANGE", "kairan:bcs", 0, -1)) == 1

    with tap.check("[3] resend: a new broadcast to the three unconfirmed with a contact"):
        r = sato.call("POST", "/v1/broadcasts/%s/resend" % bid, {})
        assert r.status == 202, r
        assert r.json["resend_of"] == bid and r.json["recipients"] == 3, r.json
        nb = r.json["id"]
        assert nb != bid
        k.wait_done(nb, 60)
        m = mails(nb)
        assert sorted(m) == ["r2@example.jp", "r3@example.jp", "r4@example.jp"], m
        r = sato.call("GET", "/v1/broadcasts/" + nb)
        assert r.status == 200, r
        assert r.json["subject"] == SUBJ and r.json["body"] == "本文 </script>", r.json
        assert r.json["drill"] is True and r.json["category"] == "drill", r.json
        assert [a["choice"] for a in r.json["ack"]["answers"]] == ["無事", "けがあり"], r.json
        assert r.json["ack"]["recipients"] == 3, r.json["ack"]
        ops = []
        for line in open(os.path.join(k.dir, "audit", "operations.jsonl")):
            ops.append(json.loads(line))
        assert any(o.get("op") == "broadcast.resend" and o.get("broadcast") == nb
                   for o in ops), ops[-3:]

    with tap.check("[3] the tenant's admin may resend the sender's broadcast; the new one is the admin's"):
        r = kocho.call("POST", "/v1/broadcasts/%s/resend" % bid, {"to": "unconfirmed"})
        assert r.status == 202 and r.json["recipients"] == 3, r
        r = ito.call("GET", "/v1/broadcasts/" + r.json["id"])
        assert r.status == 404, r

    with tap.check("[3] not ended yet (scheduled) and no confirmation asked: 409 and 400"):
        r = sato.call("POST", "/v1/broadcasts", {
            "category": "notice", "subject": "予定", "body": "b", "channels": ["email"],
            "send_at": "2030-01-01T07:00:00+09:00", "expires_at": "2030-01-01T18:00:00+09:00",
            "audience": {"groups": ["2-A"]}})
        assert r.status == 202, r
        sch = r.json["id"]
        r = sato.call("POST", "/v1/broadcasts/%s/resend" % sch, {})
        assert r.status == 409 and "not ended" in r.json["error"], r
        r = sato.call("POST", "/v1/broadcasts/%s/cancel" % sch, {})
        assert r.status in (200, 202), r
        wait_for(lambda: k.bc(sch).get("cancelled_ms"), 30, what="cancelled")
        r = sato.call("POST", "/v1/broadcasts/%s/resend" % sch, {"to": "unconfirmed"})
        assert r.status == 400 and r.json["field"] == "to", r
        r = sato.call("POST", "/v1/broadcasts/%s/resend" % sch, {})
        assert r.status == 409 and "nobody" in r.json["error"], r

    d.stop()

tap.done()
