#!/usr/bin/python3
"""test_staff.py - staff accounts, sessions, CSRF, throttling and TOTP
over real HTTP (issue 13, "Staff accounts").

One redis-server, one kairand (outbox adapter, [http] on a free port,
public_url http://127.0.0.1:<port>), accounts made with kairanctl staff.

  [1] kairanctl staff add/list: bad input exit 2, a duplicate login exit
      1, the initial password alone on the last line, no hash listed; the
      stored hash is Argon2id with m >= 19456 KiB, t >= 2, p = 1, a 16-byte
      salt and a 32-byte tag (decoded from the encoded string).
  [2] login: the cookie (HttpOnly, SameSite=Strict, Path=/), the id only
      hashed in Redis; an initial password must be changed first (403 on
      other routes); weak and common passwords refused; a cross-origin POST
      and a POST without the CSRF token refused; the session id changes at
      every login and the old one stops working.
  [3] a session acts as a token of its role, tenant and groups: a sender
      submits to its group, not to another, reads its broadcast and
      cancels its own scheduled broadcast; a tenant's admin cannot read
      another tenant's broadcast.
  [4] a session is refused after logout, deactivation, password reset,
      role change and tenant close; a deactivated account cannot log in,
      and its right password gets the same answer as a wrong one (status,
      headers, body, counted as a failure) while the login log says
      "deactivated".
  [5] throttling: 5 failures from one address lock that address (429,
      even with the right password), the owner logs in from another
      address; failures from many addresses lock browsers without the
      account's device cookie (429 before any hash), the owner's browser
      still logs in; an unknown login gets the same status and body
      (more in test_login_device.py).
  [6] TOTP: setup and confirm, login needs the code, a code is accepted
      once; with http.require_2fa_admin an admin without TOTP may only set
      it up.
  [7] concurrent logins beyond the hash bound wait their turn, one from
      each address (else 503 with Retry-After), so a login flood from a
      few addresses never keeps a teacher out; login log lines for every
      attempt; no password in any log.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_staff.py
"""

import base64
import hashlib
import hmac
import json
import os
import re
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("staff")
AUDIT = os.path.join(out, "audit")


request = http_request


class Session(StaffSession):
    """A browser: the session cookie, the device cookies (one an account,
    model/device.h), the CSRF token, our Origin (harness.StaffSession)."""

    def __init__(self, port, ip=None):
        super().__init__(port, ip=ip, keep_devices=True)


def totp_code(secret_b32, step):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 15
    v = struct.unpack(">I", mac[off:off + 4])[0] & 0x7fffffff
    return "%06d" % (v % 1000000)


def read_audit(name):
    try:
        with open(os.path.join(AUDIT, name)) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port},
                     "retention": {"audit_dir": AUDIT}})
    P = "kairan:"
    PW = {}

    def add(tenant, login, role, name="佐藤 一郎", groups=None):
        args = ["staff", "add", "--tenant", tenant, "--login", login,
                "--name", name, "--role", role]
        if groups:
            args += ["--groups", groups]
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        last = cp.stdout.rstrip("\n").split("\n")[-1]
        assert re.fullmatch(r"[A-Za-z2-9]{20}", last), cp.stdout
        PW[(tenant, login)] = last
        return last

    with tap.check("[1] staff add: bad input is exit 2 with a reason (a gaiji in "
                   "--name: its place)"):
        for args in (["--tenant", "sakura", "--login", "Sato", "--name", "x", "--role", "admin"],
                     ["--tenant", "sakura", "--login", "sato", "--name", "x", "--role", "root"],
                     ["--tenant", "sakura", "--login", "sato", "--name", "x", "--role", "sender"],
                     ["--tenant", "sa:kura", "--login", "sato", "--name", "x", "--role", "admin"],
                     ["--login", "sato", "--name", "x", "--role", "admin"],
                     ["--tenant", "sakura", "--login", "sato", "--role", "admin"]):
            cp = k.ctl("staff", "add", *args)
            assert cp.returncode == 2 and cp.stdout == "", (args, cp)
            assert "kairanctl:" in cp.stderr, cp.stderr
        cp = k.ctl("staff", "add", "--tenant", "sakura", "--login", "sato",
                   "--name", "佐藤 \ue000郎", "--role", "admin")
        assert cp.returncode == 2 and "--name: contains a user-defined " \
            "character (gaiji: U+E000, private use) at character 4 " \
            "(\"佐藤 〓郎\")" in cp.stderr, cp

    with tap.check("[1] staff add prints the initial password alone on its last line"):
        add("sakura", "sato", "sender", groups="2-A,2-B")
        add("sakura", "kocho", "admin", name="校長")
        add("sakura", "mori", "limited_admin")
        add("sakura", "ito", "sender", groups="2-B")
        add("momo", "sato", "admin")  # the same login in another tenant
        assert PW[("sakura", "sato")] != PW[("momo", "sato")]

    with tap.check("[1] a login is unique per tenant: a second add is exit 1"):
        cp = k.ctl("staff", "add", "--tenant", "sakura", "--login", "sato",
                   "--name", "x", "--role", "admin")
        assert cp.returncode == 1 and "already" in cp.stderr, cp

    with tap.check("[1] staff list shows accounts, never a hash"):
        cp = k.ctl("staff", "list", "--tenant", "sakura", "--json")
        assert cp.returncode == 0, cp.stderr
        rows = {r["login"]: r for r in json.loads(cp.stdout)}
        assert set(rows) == {"sato", "kocho", "mori", "ito"}, rows
        assert rows["sato"]["state"] == "new" and rows["sato"]["role"] == "sender"
        assert "argon2" not in cp.stdout and PW[("sakura", "sato")] not in cp.stdout
        cp = k.ctl("staff", "list", "--tenant", "sakura")
        assert "校長" in cp.stdout and "argon2" not in cp.stdout

    with tap.check("[1] the stored hash is Argon2id, m >= 19456 KiB, t >= 2, p = 1"):
        enc = redis.call("HGET", P + "staff:sakura:sato", "hash").decode()
        m = re.fullmatch(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)", enc)
        assert m, enc
        assert int(m.group(1)) >= 19456 and int(m.group(2)) >= 2 and int(m.group(3)) == 1, enc
        salt = base64.b64decode(m.group(4) + "=" * (-len(m.group(4)) % 4))
        tag = base64.b64decode(m.group(5) + "=" * (-len(m.group(5)) % 4))
        assert len(salt) == 16 and len(tag) == 32, (len(salt), len(tag))
        tap.diag("stored: $argon2id$v=19$m=%s,t=%s,p=%s (salt %d B, tag %d B)"
                 % (m.group(1), m.group(2), m.group(3), len(salt), len(tag)))

    d = k.start()
    d.wait_output('"listening"', 15)

    NEWPW = {"sato": "さくら 中学 2-A 担任", "kocho": "kocho no atarashii pasuwado",
             "mori": "mori sensei desu yoroshiku", "ito": "ito sensei no pasuwado"}

    def first_login(tenant, login):
        """Log in with the initial password and change it; returns the
        session."""
        s = Session(port)
        r = s.login(tenant, login, PW[(tenant, login)])
        assert r.status == 200 and r.json["must_change_password"] is True, r
        r = s.call("POST", "/v1/session/password",
                   {"current": PW[(tenant, login)], "new": NEWPW[login]})
        assert r.status == 200, r
        PW[(tenant, login)] = NEWPW[login]
        return s

    with tap.check("[2] login: 200, cookie HttpOnly SameSite=Strict Path=/, id hashed in Redis"):
        s = Session(port)
        t0 = time.monotonic()
        r = s.login("sakura", "sato", PW[("sakura", "sato")])
        tap.diag("one login (Argon2id verify on the pool + Redis): %.0f ms"
                 % ((time.monotonic() - t0) * 1000))
        assert r.status == 200, r
        assert r.json["role"] == "sender" and r.json["must_change_password"] is True, r
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", r.json["csrf"]), r
        sc = s.set_cookie
        assert sc.startswith("kairan_session="), sc
        for part in ("HttpOnly", "SameSite=Strict", "Path=/"):
            assert part in sc, sc
        sid = s.cookie.split("=", 1)[1]
        assert len(sid) == 43
        keys = [x.decode() for x in redis.call("KEYS", P + "sess:*")]
        want = P + "sess:" + hashlib.sha256(sid.encode()).hexdigest()
        assert keys == [want], keys
        dump = b"".join(redis.call("DUMP", x) or b"" for x in keys)
        assert sid.encode() not in dump and r.json["csrf"].encode() not in dump

    with tap.check("[2] a login posted from another origin is refused (403)"):
        r = Session(port).call("POST", "/v1/session",
                               {"tenant": "sakura", "login": "sato",
                                "password": PW[("sakura", "sato")]},
                               origin="https://evil.example")
        assert r.status == 403 and r.headers.get("set-cookie") is None, r

    with tap.check("[2] an initial password must be changed first: other routes 403"):
        r = s.call("GET", "/v1/broadcasts?active=1")
        assert r.status == 403 and "change the initial password" in r.json["error"], r

    with tap.check("[2] a short, a common, and the login as password are refused (400 field new)"):
        for bad in ("short", "password1234", "qwertyuiop12", "sato"):
            r = s.call("POST", "/v1/session/password",
                       {"current": PW[("sakura", "sato")], "new": bad})
            assert r.status == 400 and r.json["field"] == "new", (bad, r)

    with tap.check("[2] cross-origin POST refused; POST without the CSRF token refused"):
        body = {"current": PW[("sakura", "sato")], "new": NEWPW["sato"]}
        r = s.call("POST", "/v1/session/password", body, origin="https://evil.example")
        assert r.status == 403 and "cross-site" in r.json["error"], r
        r = s.call("POST", "/v1/session/password", body, origin=False)
        assert r.status == 403, r
        r = s.call("POST", "/v1/session/password", body, csrf=False)
        assert r.status == 403 and "CSRF" in r.json["error"], r
        saved = s.csrf
        s.csrf = "A" * 43
        r = s.call("POST", "/v1/session/password", body)
        assert r.status == 403 and "CSRF" in r.json["error"], r
        s.csrf = saved

    with tap.check("[2] password change: wrong current 403; right one 200, a new session"):
        r = s.call("POST", "/v1/session/password",
                   {"current": "not the password!", "new": NEWPW["sato"]})
        assert r.status == 403 and r.json["field"] == "current", r
        old = s.cookie
        r = s.call("POST", "/v1/session/password",
                   {"current": PW[("sakura", "sato")], "new": NEWPW["sato"]})
        assert r.status == 200 and r.json["must_change_password"] is False, r
        PW[("sakura", "sato")] = NEWPW["sato"]
        assert s.cookie and s.cookie != old
        r = request(port, "GET", "/v1/broadcasts?active=1", headers={"Cookie": old})
        assert r.status == 401, r
        r = s.call("GET", "/v1/broadcasts?active=1")
        assert r.status == 200, r

    with tap.check("[2] the session id changes at login; the old one stops working"):
        old = s.cookie
        r = s.login("sakura", "sato", PW[("sakura", "sato")])
        assert r.status == 200 and r.json["must_change_password"] is False, r
        assert s.cookie != old
        r = request(port, "GET", "/v1/broadcasts?active=1", headers={"Cookie": old})
        assert r.status == 401, r
        assert s.call("GET", "/v1/broadcasts?active=1").status == 200

    sato = s
    BC = {}
    with tap.check("[3] a sender's session submits to its group (202), not to another (403)"):
        bc = {"tenant": "sakura", "category": "notice", "subject": "遠足のお知らせ",
              "body": "本文", "channels": ["email"], "audience": {"groups": ["2-A"]},
              "send_at": "2099-01-01T09:00:00+09:00"}
        r = sato.call("POST", "/v1/broadcasts", bc)
        assert r.status == 202, r
        BC["sato"] = r.json["id"]
        bc2 = dict(bc, audience={"groups": ["3-C"]})
        r = sato.call("POST", "/v1/broadcasts", bc2)
        assert r.status == 403 and r.json["field"].startswith("audience.groups"), r
        r = sato.call("POST", "/v1/broadcasts", bc, csrf=False)
        assert r.status == 403, r
        h = k.bc(BC["sato"])
        assert h.get("sender") == "佐藤 一郎", h

    with tap.check("[3] the sender reads its broadcast; another sender cannot"):
        r = sato.call("GET", "/v1/broadcasts/" + BC["sato"])
        assert r.status == 200, r
        ito = first_login("sakura", "ito")
        r = ito.call("GET", "/v1/broadcasts/" + BC["sato"])
        assert r.status == 404, r
        r = ito.call("POST", "/v1/broadcasts/%s/cancel" % BC["sato"])
        assert r.status == 404, r

    with tap.check("[3] a sender cancels its own scheduled broadcast (200), then 409"):
        r = sato.call("POST", "/v1/broadcasts/%s/cancel" % BC["sato"])
        assert r.status == 200 and r.json["status"] == "cancelled", r
        r = sato.call("POST", "/v1/broadcasts/%s/cancel" % BC["sato"])
        assert r.status == 409, r

    with tap.check("[3] a tenant's admin session stays in its tenant"):
        kocho = first_login("sakura", "kocho")
        r = kocho.call("GET", "/v1/broadcasts/" + BC["sato"])
        assert r.status == 200, r
        s2 = Session(port)
        r = s2.login("momo", "sato", PW[("momo", "sato")])
        assert r.status == 200, r
        r = s2.call("POST", "/v1/session/password",
                    {"current": PW[("momo", "sato")], "new": "momo no admin desu yo"})
        assert r.status == 200, r
        PW[("momo", "sato")] = "momo no admin desu yo"
        r = s2.call("GET", "/v1/broadcasts/" + BC["sato"])
        assert r.status == 404, r
        r = s2.call("POST", "/v1/broadcasts", dict(bc, tenant="sakura"))
        assert r.status == 403 and r.json["field"] == "tenant", r
        r = s2.call("GET", "/metrics")
        assert r.status == 403, r

    with tap.check("[3] an operator's session lists only its tenant's broadcasts"):
        add("sakura", "noc", "operator", name="情報担当")
        NEWPW["noc"] = "joho tanto no pasuwado"
        noc = first_login("sakura", "noc")
        other = k.submit({"tenant": "momo", "category": "notice", "subject": "momo",
                          "body": "b", "channels": ["email"],
                          "recipients": [{"id": "m1", "email": "m1@example.jp"}],
                          "send_at": "2099-01-01T09:00:00+09:00"})
        mine = k.submit({"tenant": "sakura", "category": "notice", "subject": "sakura",
                         "body": "b", "channels": ["email"],
                         "recipients": [{"id": "s1", "email": "s1@example.jp"}],
                         "send_at": "2099-01-01T09:00:00+09:00"})
        r = noc.call("GET", "/v1/broadcasts?active=1")
        assert r.status == 200, r
        ids = {b["id"] for b in r.json["broadcasts"]}
        assert mine in ids and other not in ids, (mine, other, ids)
        r = noc.call("GET", "/v1/queues")
        assert r.status == 200 and other not in r.body, r
        r = noc.call("POST", "/v1/broadcasts/%s/cancel" % mine)
        assert r.status == 403, r

    with tap.check("[4] logout ends the session (401 after); the cookie is cleared"):
        r = ito.call("DELETE", "/v1/session")
        assert r.status == 200 and "Max-Age=0" in ito.set_cookie, r
        old = ito.set_cookie
        r = ito.call("GET", "/v1/broadcasts?active=1")
        assert r.status == 401, r
        ito = Session(port)
        assert ito.login("sakura", "ito", PW[("sakura", "ito")]).status == 200
        cookie_before_logout = ito.cookie
        ito.call("DELETE", "/v1/session")
        r = request(port, "GET", "/v1/broadcasts?active=1", headers={"Cookie": cookie_before_logout})
        assert r.status == 401, r

    with tap.check("[4] a session ends after 30 minutes idle and after 12 hours in all"):
        for field, ago in (("seen_ms", 31 * 60 * 1000), ("created_ms", 12 * 3600 * 1000 + 1000)):
            e = Session(port)
            assert e.login("sakura", "ito", PW[("sakura", "ito")]).status == 200
            assert e.call("GET", "/v1/broadcasts?active=1").status == 200
            key = P + "sess:" + hashlib.sha256(e.cookie.split("=", 1)[1].encode()).hexdigest()
            redis.call("HSET", key, field, str(int(time.time() * 1000) - ago))
            r = e.call("GET", "/v1/broadcasts?active=1")
            assert r.status == 401 and "expired" in r.json["error"], (field, r)
            wait_for(lambda: redis.call("EXISTS", key) == 0, 10, 0.05,
                     what="the expired session's record deleted")

    with tap.check("[4] the console's own polling (X-Kairan-Background: 1) does not keep a session alive"):
        # A page left open on a scheduled notice polls every 2.5 s until it
        # is sent: the console at a staff-room PC must still lock after 30
        # minutes without a person using it.
        e = Session(port)
        assert e.login("sakura", "ito", PW[("sakura", "ito")]).status == 200
        key = P + "sess:" + hashlib.sha256(e.cookie.split("=", 1)[1].encode()).hexdigest()
        old = str(int(time.time() * 1000) - 29 * 60 * 1000)
        redis.call("HSET", key, "seen_ms", old)
        poll = request(port, "GET", "/v1/broadcasts?active=1",
                       headers={"Cookie": e.cookie, "X-Kairan-Background": "1"})
        assert poll.status == 200, poll
        assert redis.call("HGET", key, "seen_ms").decode() == old
        redis.call("HSET", key, "seen_ms", str(int(time.time() * 1000) - 31 * 60 * 1000))
        poll = request(port, "GET", "/v1/broadcasts?active=1",
                       headers={"Cookie": e.cookie, "X-Kairan-Background": "1"})
        assert poll.status == 401 and "expired" in poll.json["error"], poll
        # a person's request does move it on
        e2 = Session(port)
        assert e2.login("sakura", "ito", PW[("sakura", "ito")]).status == 200
        key2 = P + "sess:" + hashlib.sha256(e2.cookie.split("=", 1)[1].encode()).hexdigest()
        redis.call("HSET", key2, "seen_ms", old)
        assert e2.call("GET", "/v1/broadcasts?active=1").status == 200
        assert int(redis.call("HGET", key2, "seen_ms")) > int(old) + 60000

    with tap.check("[4] deactivation ends sessions and stops logins; the sender's name stays"):
        ito = Session(port)
        assert ito.login("sakura", "ito", PW[("sakura", "ito")]).status == 200
        assert ito.call("GET", "/v1/broadcasts?active=1").status == 200
        r = ito.call("POST", "/v1/broadcasts", {
            "tenant": "sakura", "category": "notice", "subject": "部活の連絡",
            "body": "本文", "channels": ["email"], "audience": {"groups": ["2-B"]},
            "send_at": "2099-01-01T09:00:00+09:00"})
        assert r.status == 202, r
        ito_bc = r.json["id"]
        cp = k.ctl("staff", "deactivate", "--tenant", "sakura", "ito")
        assert cp.returncode == 0, cp.stderr
        r = ito.call("GET", "/v1/broadcasts?active=1")
        assert r.status == 401, r
        # The right password of a deactivated account gets the answer of
        # a wrong one (no oracle confirming the password); the login log
        # says why, for the school's admins.
        r = Session(port, ip="10.4.0.1").login("sakura", "ito", PW[("sakura", "ito")])
        w = Session(port, ip="10.4.0.2").login("sakura", "ito", "wrong password 4")
        assert r.status == w.status == 401, (r, w)
        assert r.body == w.body and "deactivated" not in r.body, (r, w)
        assert {k: v for k, v in r.headers.items() if k != "date"} == \
            {k: v for k, v in w.headers.items() if k != "date"}, (r.headers, w.headers)
        got = {l.get("source"): l.get("result") for l in read_audit("login.jsonl")
               if l.get("login") == "ito" and l.get("source") in ("10.4.0.1", "10.4.0.2")}
        assert got == {"10.4.0.1": "deactivated", "10.4.0.2": "wrong_password"}, got
        # counted as a failure alike: the lock cannot tell them apart either
        # (kairand writes the counts after its answer: wait for them)
        def both_counted():
            fails = redis.call("KEYS", P + "lfail:sakura:ito:*")
            return len(fails) == 2 and all(redis.call("GET", f) == b"1" for f in fails)
        wait_for(both_counted, 10, what="both failures counted")
        cp = k.ctl("staff", "deactivate", "--tenant", "sakura", "nobody")
        assert cp.returncode == 3, cp
        assert k.bc(ito_bc).get("sender") == "佐藤 一郎", k.bc(ito_bc)

    with tap.check("[4] a password reset ends sessions; the old password stops; the new initial one must be changed"):
        mori = first_login("sakura", "mori")
        assert mori.call("GET", "/v1/broadcasts?active=1").status == 200
        cp = k.ctl("staff", "reset", "--tenant", "sakura", "mori")
        assert cp.returncode == 0, cp.stderr
        newinit = cp.stdout.rstrip("\n").split("\n")[-1]
        assert re.fullmatch(r"[A-Za-z2-9]{20}", newinit), cp.stdout
        assert mori.call("GET", "/v1/broadcasts?active=1").status == 401
        assert Session(port).login("sakura", "mori", PW[("sakura", "mori")]).status == 401
        r = Session(port).login("sakura", "mori", newinit)
        assert r.status == 200 and r.json["must_change_password"] is True, r

    with tap.check("[4] a role change ends sessions; the next login has the new role"):
        assert sato.call("GET", "/v1/broadcasts?active=1").status == 200
        cp = k.ctl("staff", "role", "--tenant", "sakura", "sato", "limited_admin")
        assert cp.returncode == 0, cp.stderr
        assert sato.call("GET", "/v1/broadcasts?active=1").status == 401
        r = sato.login("sakura", "sato", PW[("sakura", "sato")])
        assert r.status == 200 and r.json["role"] == "limited_admin", r
        cp = k.ctl("staff", "role", "--tenant", "sakura", "sato", "sender", "--groups", "2-A")
        assert cp.returncode == 0, cp.stderr
        assert sato.call("GET", "/v1/broadcasts?active=1").status == 401

    with tap.check("[5] an unknown login gets the same status and body as a wrong password"):
        a = Session(port, ip="10.9.0.1").login("sakura", "kocho", "wrong password 1")
        b = Session(port, ip="10.9.0.2").login("sakura", "nobody", "wrong password 1")
        c2 = Session(port, ip="10.9.0.3").login("nosuch", "kocho", "wrong password 1")
        assert a.status == b.status == c2.status == 401, (a, b, c2)
        assert a.body == b.body == c2.body, (a.body, b.body, c2.body)

    with tap.check("[5] 5 failures from one address lock it (429, even with the right password); the owner logs in from another"):
        att = Session(port, ip="10.1.1.1")
        for i in range(4):  # four failures, then the fifth locks
            r = att.login("sakura", "kocho", "guess number %d" % i)
            assert r.status == 401, (i, r)
        r = att.login("sakura", "kocho", "guess number 5")
        r2 = att.login("sakura", "kocho", PW[("sakura", "kocho")])
        assert r.status in (401, 429) and r2.status == 429, (r, r2)
        assert r2.headers.get("retry-after") == ["900"], r2.headers
        owner = Session(port, ip="10.2.2.2")
        r = owner.login("sakura", "kocho", PW[("sakura", "kocho")])
        assert r.status == 200, r
        assert len(owner.device()) == 1, owner.device()

        def owner_browser(ip=None):
            """The owner's browser (its device cookie), a new session."""
            b = Session(port, ip=ip)
            b.jar.update(owner.device())
            return b
        # unknown logins are locked the same way
        for i in range(5):
            Session(port, ip="10.1.1.1").login("sakura", "ghost", "x guess %d" % i)
        r = Session(port, ip="10.1.1.1").login("sakura", "ghost", "x guess 9")
        assert r.status == 429, r

    with tap.check("[5] an IPv6 /64 is one address for the lock: 5 failures from 5 addresses of it lock it"):
        # One home or office holds a /64: an attacker with one has 2^64
        # addresses, and a lock per address would never come.
        add("sakura", "six", "sender", groups="2-A")
        for i in range(5):
            r = Session(port, ip="2001:db8:5:6::%x" % (i + 1)).login("sakura", "six", "v6 guess %d" % i)
            assert r.status == 401, (i, r)
        r = Session(port, ip="2001:db8:5:6:ffff::9").login("sakura", "six", PW[("sakura", "six")])
        assert r.status == 429, r
        r = Session(port, ip="2001:db8:5:7::1").login("sakura", "six", PW[("sakura", "six")])
        assert r.status == 200, r

    with tap.check("[5] wrong current passwords at a password change: the 5th ends the session (401 session_ended), and the address is locked (429)"):
        add("sakura", "tester", "sender", groups="2-A")
        NEWPW["tester"] = "tester no pasuwado desu"
        ts = Session(port, ip="10.8.0.1")
        assert ts.login("sakura", "tester", PW[("sakura", "tester")]).status == 200
        for i in range(4):
            r = ts.call("POST", "/v1/session/password",
                        {"current": "wrong current %d" % i, "new": NEWPW["tester"]})
            assert r.status == 403, (i, r)
        r = ts.call("POST", "/v1/session/password",
                    {"current": "wrong current 4", "new": NEWPW["tester"]})
        assert r.status == 401 and r.json["code"] == "session_ended", r
        assert r.json["field"] == "current", r
        assert r.json["error"].startswith("現在のパスワードが 5 回違った"), r
        assert ts.cookie is None, ts.set_cookie  # cleared by the answer
        assert "Max-Age=0" in ts.set_cookie or "Expires=" in ts.set_cookie, ts.set_cookie
        r = ts.call("GET", "/v1/session")
        assert r.status == 401, r
        # The address's lock (5 failures) holds for a new login too.
        r = Session(port, ip="10.8.0.1").login("sakura", "tester",
                                               PW[("sakura", "tester")])
        assert r.status == 429 and r.headers.get("retry-after") == ["900"], r

    with tap.check("[5] a stolen session guessing the current password from address after address: ended at the 5th, the password unchanged"):
        # (each guess from a new network: the per-address lock never
        # comes; the session's own count does)
        add("sakura", "tester2", "sender", groups="2-A")
        victim = Session(port, ip="10.8.1.1")
        assert victim.login("sakura", "tester2", PW[("sakura", "tester2")]).status == 200
        thief = Session(port)
        thief.cookie, thief.csrf = victim.cookie, victim.csrf
        for i in range(5):
            thief.ip = "10.%d.2.1" % (40 + i)
            r = thief.call("POST", "/v1/session/password",
                           {"current": "guess %d" % i, "new": "thief takes the account"})
            assert r.status == (401 if i == 4 else 403), (i, r)
        assert r.json["code"] == "session_ended", r
        r = victim.call("GET", "/v1/session")
        assert r.status == 401, r  # the same session: ended for both
        r = Session(port, ip="10.8.1.2").login("sakura", "tester2", PW[("sakura", "tester2")])
        assert r.status == 200, r  # the password is still the victim's
        ended = wait_for(lambda: [x for x in read_audit("login.jsonl")
                                  if x.get("result") == "session_ended"
                                  and x.get("login") == "tester2"], 10,
                         what="the session's end in the login log")
        assert all("guess" not in json.dumps(x) for x in ended), ended

    def burst(cookie, csrf, bodies, net):
        """Each body sent at once on one stolen session, each from its own
        address; the answers in order."""
        res = [None] * len(bodies)

        def one(i):
            t = Session(port, ip="10.%d.%d.1" % (net, i))
            t.cookie, t.csrf = cookie, csrf
            res[i] = t.call("POST", "/v1/session/password", bodies[i])
        ts = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return res

    with tap.check("[5] guesses sent at once on a stolen session: at most 5 judged, the rest refused unjudged, the session ended"):
        # (a review found every guess judged: the count came after the
        # hash; now each try is counted before it, as an untrusted login's)
        add("sakura", "race1", "sender", groups="2-A")
        v = Session(port, ip="10.8.3.1")
        assert v.login("sakura", "race1", PW[("sakura", "race1")]).status == 200
        rs = burst(v.cookie, v.csrf,
                   [{"current": "guess %d" % i, "new": "thief takes the account"}
                    for i in range(16)], 60)
        # Each guess judged wrong left its own address's failure count,
        # written on kairand's one command connection, in order: once a
        # later failure's count is in Redis, these are too.
        assert Session(port, ip="10.99.0.2").login("zz", "race1", "x").status == 401
        wait_for(lambda: redis.call("EXISTS", P + "lspread:zz:race1") == 1, 10,
                 what="kairand's counts")
        judged = [x for x in redis.call("KEYS", P + "lfail:sakura:race1:*")]
        assert len(judged) <= 5, (len(judged), [(r.status, r.json) for r in rs])
        assert all(r.status in (401, 403) for r in rs), rs
        assert sum(1 for r in rs if r.status == 401) >= 11, rs
        assert v.call("GET", "/v1/session").status == 401

    with tap.check("[5] requests on a session while its 5th wrong password ends it: no session hash left without a TTL"):
        # (a GET's seen_ms write after the end re-created the hash, with
        # no TTL, for good)
        for n in range(3):
            login = "race3%d" % n
            add("sakura", login, "sender", groups="2-A")
            v = Session(port, ip="10.8.4.%d" % (n + 1))
            assert v.login("sakura", login, PW[("sakura", login)]).status == 200
            done = []

            def hammer():
                h = Session(port, ip="10.8.5.1")
                h.cookie, h.csrf = v.cookie, v.csrf
                while not done:
                    h.call("GET", "/v1/session")
            hs = [threading.Thread(target=hammer) for _ in range(4)]
            for h in hs:
                h.start()
            burst(v.cookie, v.csrf,
                  [{"current": "guess %d" % i, "new": "thief takes it"}
                   for i in range(5)], 70 + n)
            done.append(1)
            for h in hs:
                h.join()
        # Every answer came after its commands ran (one connection, in
        # order): nothing is still to be written.
        bare = [k for k in redis.call("KEYS", P + "sess:*")
                if redis.call("PTTL", k) == -1]
        assert not bare, bare

    with tap.check("[5] failures from many addresses: past 10, browsers without the account's device cookie get 429 before any hash; the owner's browser still logs in"):
        # (the per-address lock never comes: every guess from a new address)
        def settled(name):
            """kairand writes counts on one connection, in order: once a
            new failure's is in Redis, every earlier one is too."""
            assert Session(port, ip="10.99.0.1").login("zz", name, "x").status == 401
            wait_for(lambda: redis.call("EXISTS", P + "lspread:zz:" + name) == 1, 10,
                     what="kairand's counts")
        settled("b1")
        spread0 = int(redis.call("GET", P + "lspread:sakura:kocho") or 0)
        codes = []
        for i in range(16):
            r = Session(port, ip="10.3.%d.%d" % (i // 200, i % 200 + 1)).login(
                "sakura", "kocho", "spray guess %d" % i)
            codes.append(r.status)
        n = codes.index(429)
        assert n > 0 and codes[:n] == [401] * n and set(codes[n:]) == {429}, codes
        assert int(redis.call("GET", P + "luntr:sakura:kocho")) == 10
        assert r.json["code"] == "untrusted_locked", r
        assert 0 < int(r.headers["retry-after"][0]) <= 900, r.headers
        # the refused ones were never hashed: lspread counts after a hash
        settled("b2")
        spread = int(redis.call("GET", P + "lspread:sakura:kocho") or 0)
        assert spread == spread0 + n, (spread, spread0, n)
        r = Session(port, ip="10.4.4.4").login("sakura", "kocho", PW[("sakura", "kocho")])
        assert r.status == 429, r
        t0 = time.monotonic()
        r = owner_browser("10.4.4.4").login("sakura", "kocho", PW[("sakura", "kocho")])
        tap.diag("owner's login (device cookie) after %d spread failures: %.0f ms"
                 % (spread, (time.monotonic() - t0) * 1000))
        assert r.status == 200, r

    with tap.check("[6] TOTP: setup, confirm, then the login needs the code"):
        t = owner_browser()
        assert t.login("sakura", "kocho", PW[("sakura", "kocho")]).status == 200
        r = t.call("POST", "/v1/session/totp", {"action": "setup"})
        assert r.status == 200 and re.fullmatch(r"[A-Z2-7]{32}", r.json["secret"]), r
        assert r.json["uri"].startswith("otpauth://totp/kairan:kocho?secret=")
        secret = r.json["secret"]
        sealed = redis.call("HGET", P + "staff:sakura:kocho", "totp_pending").decode()
        assert secret not in sealed and sealed.startswith("k"), sealed
        r = t.call("POST", "/v1/session/totp", {"action": "confirm", "code": "000000"
                   if totp_code(secret, int(time.time()) // 30) != "000000" else "111111"})
        assert r.status == 400, r
        step = int(time.time()) // 30
        r = t.call("POST", "/v1/session/totp", {"action": "confirm",
                                               "code": totp_code(secret, step)})
        assert r.status == 200 and r.json["totp"] is True, r
        r = owner_browser().login("sakura", "kocho", PW[("sakura", "kocho")])
        assert r.status == 401 and r.json["field"] == "totp", r

    with tap.check("[6] a TOTP code is accepted once"):
        # the confirm used `step`; its code is refused, the next step's is accepted once
        r = owner_browser("10.6.0.1").login("sakura", "kocho", PW[("sakura", "kocho")],
                                            totp=totp_code(secret, step))
        assert r.status == 401 and r.json["field"] == "totp", r
        code = totp_code(secret, step + 1)
        r = owner_browser("10.6.0.2").login("sakura", "kocho", PW[("sakura", "kocho")], totp=code)
        assert r.status == 200 and r.json["totp"] is True, r
        r = owner_browser("10.6.0.3").login("sakura", "kocho", PW[("sakura", "kocho")], totp=code)
        assert r.status == 401 and r.json["field"] == "totp", r

    with tap.check("[6] wrong TOTP codes from many addresses lock the account's codes (429), the password alone is not enough"):
        # Someone who has the password guesses codes, a new address for
        # every 4 tries (the per-address lock never comes): after 10 wrong
        # codes of the account, from anywhere, no code is tried for 15
        # minutes, not even the right one.
        add("sakura", "totp.t", "sender", groups="2-A")
        NEWPW["totp.t"] = "totp tester no pasuwado"
        u = first_login("sakura", "totp.t")
        r = u.call("POST", "/v1/session/totp", {"action": "setup"})
        assert r.status == 200, r
        sec = r.json["secret"]
        good = lambda: totp_code(sec, int(time.time()) // 30)  # noqa: E731
        r = u.call("POST", "/v1/session/totp", {"action": "confirm", "code": good()})
        assert r.status == 200, r
        wrong = lambda: "%06d" % ((int(good()) + 500000) % 1000000)  # noqa: E731
        got = []
        for i in range(10):
            r = Session(port, ip="10.61.%d.1" % (i // 4)).login(
                "sakura", "totp.t", PW[("sakura", "totp.t")], totp=wrong())
            got.append(r.status)
        assert got == [401] * 10, got
        # (those 10 failures also lock browsers without the account's
        # device cookie, test_login_device.py: not under test here)
        redis.call("DEL", P + "luntr:sakura:totp.t")
        r = Session(port, ip="10.62.0.1").login("sakura", "totp.t", PW[("sakura", "totp.t")],
                                               totp=wrong())
        assert r.status == 429 and r.headers.get("retry-after") == ["900"], r
        assert r.json["field"] == "totp" and r.json["code"] == "totp_locked", r
        r = Session(port, ip="10.62.0.2").login("sakura", "totp.t", PW[("sakura", "totp.t")],
                                               totp=totp_code(sec, int(time.time()) // 30 + 1))
        assert r.status == 429, r
        # a wrong password is still only a wrong password (no oracle)
        r = Session(port, ip="10.62.0.3").login("sakura", "totp.t", "not the password at all",
                                               totp=wrong())
        assert r.status == 401 and r.json["error"] == "wrong tenant, login or password", r

    with tap.check("[6] a second TOTP setup needs a code of the current one (a session left open cannot swap it)"):
        # Someone at a teacher's unlocked console (the session, not the
        # password, not the phone) must not replace the teacher's
        # authenticator with their own.
        add("sakura", "totp.u", "sender", groups="2-A")
        NEWPW["totp.u"] = "totp user no pasuwado"
        u = first_login("sakura", "totp.u")
        r = u.call("POST", "/v1/session/totp", {"action": "setup"})
        assert r.status == 200, r
        sec = r.json["secret"]
        st = int(time.time()) // 30
        r = u.call("POST", "/v1/session/totp", {"action": "confirm", "code": totp_code(sec, st)})
        assert r.status == 200, r
        r = u.call("POST", "/v1/session/totp", {"action": "setup"})
        assert r.status == 403 and r.json["field"] == "current_code", r
        r = u.call("POST", "/v1/session/totp", {"action": "setup", "current_code":
                                               "%06d" % ((int(totp_code(sec, st + 1)) + 1) % 1000000)})
        assert r.status == 403 and r.json["field"] == "current_code", r
        assert redis.call("HGET", P + "staff:sakura:totp.u", "totp_pending") is None
        r = u.call("POST", "/v1/session/totp", {"action": "setup", "current_code": totp_code(sec, st)})
        assert r.status == 403, r  # the code the confirm used: once only
        r = u.call("POST", "/v1/session/totp", {"action": "setup", "current_code": totp_code(sec, st + 1)})
        assert r.status == 200 and r.json["secret"] != sec, r

    with tap.check("[6] wrong current codes for a second setup: locked after 10, "
                   "429 with Retry-After and code totp_locked, even for a right one"):
        add("sakura", "totp.v", "sender", groups="2-A")
        NEWPW["totp.v"] = "totp user v no pasuwado"
        v = first_login("sakura", "totp.v")
        r = v.call("POST", "/v1/session/totp", {"action": "setup"})
        sec = r.json["secret"]
        st = int(time.time()) // 30
        r = v.call("POST", "/v1/session/totp", {"action": "confirm", "code": totp_code(sec, st)})
        assert r.status == 200, r
        near = {totp_code(sec, st + k) for k in range(-2, 4)}
        bad = next("%06d" % n for n in range(1000000) if "%06d" % n not in near)
        got = []
        for _ in range(10):
            r = v.call("POST", "/v1/session/totp", {"action": "setup", "current_code": bad})
            got.append(r.status)
        assert got == [403] * 10, got
        r = v.call("POST", "/v1/session/totp", {"action": "setup",
                                                "current_code": totp_code(sec, st + 1)})
        assert r.status == 429 and r.json.get("code") == "totp_locked", r
        assert r.json["field"] == "current_code", r
        assert r.headers.get("retry-after") == ["900"], r.headers

    with tap.check("[7] concurrent logins beyond the hash bound: 401 after their turn, 503 with Retry-After, or 429 past the account's untrusted tries, never a hang"):
        res = []
        untr0 = int(redis.call("GET", P + "luntr:sakura:mori") or 0)

        def one(i):
            res.append(Session(port, ip="10.7.0.%d" % (i + 1)).login(
                "sakura", "mori", "concurrent %d" % i))
        th = [threading.Thread(target=one, args=(i,)) for i in range(12)]
        for x in th:
            x.start()
        for x in th:
            x.join(60)
        st = sorted(r.status for r in res)
        assert len(res) == 12 and set(st) <= {401, 429, 503}, st
        for r in res:
            if r.status == 503:
                assert r.headers.get("retry-after") == ["1"], r.headers
            if r.status == 429:
                assert r.json["code"] == "untrusted_locked", r
        # (browsers without mori's device cookie: 10 tries in 15 minutes
        # are judged, however many come at once; test_login_device [2])
        assert st.count(401) <= max(0, 10 - untr0), (st, untr0)
        tap.diag("12 concurrent logins: %d answered 401, %d 503, %d 429"
                 % (st.count(401), st.count(503), st.count(429)))

    with tap.check("[7] a login flood from a few addresses never keeps a teacher out (fair wait, not 503)"):
        # An outsider floods logins of made-up accounts (each costs a
        # dummy hash) from 4 addresses, 3 at once from each: the 2 hash
        # slots are always taken.  Another address's login waits its turn.
        add("sakura", "flood.t", "sender", groups="2-A")
        stop = []
        seen = {}

        def flood(ip):
            while not stop:
                r = Session(port, ip=ip).login("sakura", "nobody%d" % time.monotonic_ns(),
                                               "flooding guess guess")
                seen[r.status] = seen.get(r.status, 0) + 1
                if r.status == 503:
                    time.sleep(0.02)
        th = [threading.Thread(target=flood, args=("203.0.113.%d" % (i % 4 + 1),))
              for i in range(12)]
        for x in th:
            x.start()
        try:
            time.sleep(1.5)
            got = []
            for i in range(10):
                t0 = time.monotonic()
                r = Session(port, ip="198.51.100.%d" % (i + 1)).login(
                    "sakura", "flood.t", PW[("sakura", "flood.t")])
                got.append((r.status, round(time.monotonic() - t0, 2)))
        finally:
            stop.append(1)
            for x in th:
                x.join(60)
        tap.diag("flood answers %s; the teacher's logins %s" % (seen, got))
        assert [s for s, _ in got] == [200] * 10, got
        assert max(t for _, t in got) < 10, got

    with tap.check("[4] tenant close ends the tenant's sessions and logins"):
        s3 = Session(port)
        r = s3.login("momo", "sato", PW[("momo", "sato")])
        assert r.status == 200, r
        cp = k.ctl("tenant", "close", "momo")
        assert cp.returncode == 0, cp.stderr
        assert s3.call("GET", "/v1/broadcasts?active=1").status in (401, 403)
        r = Session(port).login("momo", "sato", PW[("momo", "sato")])
        assert r.status == 403, r
        # the same answer to a wrong password (no oracle for the passwords
        # of a school whose data waits for the purge), and no lock counted
        before = redis.call("GET", P + "lspread:momo:sato")
        w = Session(port).login("momo", "sato", "not the password")
        assert (w.status, w.json) == (r.status, r.json), (w, r)
        assert redis.call("GET", P + "lspread:momo:sato") == before

    with tap.check("[7] a password typed into the login field is never logged (unknown logins are logged without it)"):
        # The login log is the school's admins' to read (GET
        # /v1/logs/logins) and kept 5 years: what someone typed as a
        # login that is no account is often their password.
        typed = "Kocho-No-Pasuwado-2026"
        for i in range(6):  # the 6th is locked (429)
            r = Session(port, ip="10.77.0.1").login("sakura", typed, "kocho")
            assert r.status in (401, 429), r
        with open(os.path.join(AUDIT, "login.jsonl")) as f:
            assert typed not in f.read()
        lines = [l for l in read_audit("login.jsonl") if l.get("source") == "10.77.0.1"]
        assert [l["result"] for l in lines] == ["unknown_login"] * 5 + ["locked"], lines
        assert all(l.get("login") is None and l["tenant"] == "sakura" for l in lines), lines

    with tap.check("[7] login log: every attempt with its login and result; no password in any log"):
        lines = read_audit("login.jsonl")
        res = {(l.get("login"), l["result"]) for l in lines if l.get("path") == "/v1/session"}
        for want in (("kocho", "wrong_password"), (None, "unknown_login"),
                     ("kocho", "locked"), ("kocho", "ok"), ("ito", "deactivated"),
                     ("kocho", "totp_missing"), ("kocho", "totp_wrong")):
            assert want in res, (want, sorted(res, key=str))
        sess_lines = [l for l in lines if l.get("token", "") and l["token"].startswith("st_")]
        assert sess_lines, "no session lines"
        text = ""
        for name in ("login.jsonl", "operations.jsonl"):
            with open(os.path.join(AUDIT, name)) as f:
                text += f.read()
        text += d.stderr_text()
        for pw in list(PW.values()) + list(NEWPW.values()):
            assert pw not in text, pw
        ops = {l["op"] for l in read_audit("operations.jsonl")}
        assert {"staff.add", "staff.deactivate", "staff.reset", "staff.role",
                "staff.password", "staff.totp"} <= ops, ops

    with tap.check("[4] the purge after retention erases a closed tenant's accounts and sessions"):
        assert redis.call("EXISTS", P + "staff:momo:sato") == 1
        # today: ito, deactivated this fiscal year, is kept
        cp = k.ctl("purge")
        assert cp.returncode == 0, cp.stderr
        assert "staff accounts deleted: 0 " in cp.stdout, cp.stdout
        assert redis.call("EXISTS", P + "staff:sakura:ito") == 1
        cp = k.ctl("purge", "--now", "2099-01-01T00:00:00+09:00")
        assert cp.returncode == 0, cp.stderr
        assert redis.call("EXISTS", P + "staff:momo:sato") == 0
        assert redis.call("EXISTS", P + "staffs:momo") == 0
        assert redis.call("KEYS", P + "stsess:momo:*") == []
        assert redis.call("EXISTS", P + "staff:sakura:kocho") == 1

    with tap.check("[4] the purge deletes accounts deactivated before the oldest kept fiscal year, not active ones"):
        assert "staff accounts deleted: 1 " in cp.stdout, cp.stdout
        assert redis.call("EXISTS", P + "staff:sakura:ito") == 0
        assert redis.call("SISMEMBER", P + "staffs:sakura", "ito") == 0
        assert redis.call("SISMEMBER", P + "staffs:sakura", "kocho") == 1

    d.stop()

# [6] http.require_2fa_admin: a second kairand on the same data.
with Redis(out + "/r2") as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox", name="k2",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port,
                              "require_2fa_admin": "yes"},
                     "retention": {"audit_dir": AUDIT + "2"}})
    cp = k.ctl("staff", "add", "--tenant", "sakura", "--login", "kocho", "--name", "校長",
               "--role", "admin")
    init = cp.stdout.rstrip("\n").split("\n")[-1]
    d = k.start()
    d.wait_output('"listening"', 15)
    with tap.check("[6] require_2fa_admin: an admin without TOTP may only change its password and set TOTP up"):
        s = Session(port)
        r = s.login("sakura", "kocho", init)
        assert r.status == 200 and r.json["totp_required"] is True, r
        r = s.call("POST", "/v1/session/password", {"current": init, "new": "kocho no pasuwado desu"})
        assert r.status == 200, r
        r = s.call("GET", "/v1/broadcasts?active=1")
        assert r.status == 403 and "two-factor" in r.json["error"], r
        r = s.call("POST", "/v1/session/totp", {"action": "setup"})
        assert r.status == 200, r
        sec = r.json["secret"]
        r = s.call("POST", "/v1/session/totp", {"action": "confirm",
                                               "code": totp_code(sec, int(time.time()) // 30)})
        assert r.status == 200, r
        r = s.call("GET", "/v1/broadcasts?active=1")
        assert r.status == 200, r
    d.stop()

tap.done()
