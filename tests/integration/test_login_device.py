#!/usr/bin/python3
"""test_login_device.py - device cookies against online password guessing
(OWASP "Slow Down Online Guessing Attacks with Device Cookies"; model/
device.h, model/session.h "Throttling of logins") over real HTTP.

One redis-server, one kairand (outbox, public_url http://127.0.0.1:<port>),
accounts made with kairanctl staff.  Every attacker's attempt comes from a
new address, so the per-address lock never helps: only the new lock can.

  [1] a successful login sets a device cookie: one per account, named by a
      keyed hash (not the login), HttpOnly, SameSite=Strict, Path=/, no
      Secure on plain http (as the session cookie), 180 days; nothing of
      it in Redis.
  [2] 10 failures from untrusted browsers (10 addresses) lock the account
      for untrusted browsers: 429 with Retry-After and retry_after (the
      count's TTL), even with the right password, before any hash (the
      counts that only a hash moves stay put; login log reason
      "untrusted_locked", device "none").
      30 guesses sent at once: exactly 10 hashed, the count taken before
      the hash.
  [3] the owner's browser with its device cookie still logs in with the
      right password, from any address, and gets a new cookie; the lock
      stays for the others.
  [4] a tampered cookie, another account's cookie value under this
      account's name, and another account's own cookie are untrusted
      (429, login log device "invalid" / "none").
  [5] a trusted browser is not held by the per-address lock; its own 5
      failures lock its cookie (ldev count, TTL its expiry) and it is then
      untrusted (429 during the lock, login log device "locked"); another
      trusted browser of the owner is not affected.
  [6] an unknown login behaves as a known one: same answers, same lock,
      same reason in the log (without the typed login); its counters
      expire.
  [7] TTLs bounded: every throttling key expires (window, or the cookie's
      expiry); when the untrusted count expires (made to, in Redis) an
      untrusted browser logs in again.
  [8] kairanctl staff unlock lifts an account's locks (its own only),
      leaves locked device cookies locked, and is in the operation log.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_login_device.py
"""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("device")
AUDIT = os.path.join(out, "audit")
DAY = 24 * 3600


request = http_request


class Browser(StaffSession):
    """A browser: a cookie jar (name -> value), the CSRF token, our
    Origin; its address (X-Real-IP) may change between requests
    (harness.StaffSession)."""

    def __init__(self, port, ip="10.0.0.1"):
        super().__init__(port, ip=ip, keep_devices=True)

    def login(self, login, password, tenant="sakura", ip=None):
        if ip:
            self.ip = ip
        return self.call("POST", "/v1/session",
                         {"tenant": tenant, "login": login, "password": password})


def read_log():
    try:
        with open(os.path.join(AUDIT, "login.jsonl")) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def last_log():
    """The last line of tenant sakura's (settled() logs in to "zz")."""
    return [l for l in read_log() if l["tenant"] == "sakura"][-1]


_ip = [0]


def new_ip():
    """A fresh address for every attempt of an attacker."""
    _ip[0] += 1
    return "10.%d.%d.%d" % (100 + _ip[0] // 65536, (_ip[0] // 256) % 256, _ip[0] % 256)


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port},
                     "retention": {"audit_dir": AUDIT}})
    P = "kairan:"
    PW = {}

    def add(login, role="sender", tenant="sakura"):
        args = ["staff", "add", "--tenant", tenant, "--login", login,
                "--name", "先生 " + login, "--role", role]
        if role == "sender":
            args += ["--groups", "2-A"]
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        PW[login] = cp.stdout.rstrip("\n").split("\n")[-1]

    for name in ("kocho", "sato", "ito", "mori"):
        add(name, "admin" if name == "kocho" else "sender")

    d = k.start()
    d.wait_output('"listening"', 15)

    def first_login(login, ip="10.0.0.1"):
        """The owner's browser: the initial password, then a new one."""
        b = Browser(port, ip)
        r = b.login(login, PW[login])
        assert r.status == 200 and r.json["must_change_password"], r
        newpw = "%s no atarashii pasuwado" % login
        r = b.call("POST", "/v1/session/password", {"current": PW[login], "new": newpw})
        assert r.status == 200, r
        PW[login] = newpw
        return b

    _barrier = [0]

    def settled():
        """Wait until the counts kairand sent after earlier answers are in
        Redis: it writes them on one connection, in order, so once a new
        failure's count is there, every earlier one is too."""
        _barrier[0] += 1
        name = "b%d" % _barrier[0]
        assert Browser(port, new_ip()).login(name, "x", tenant="zz").status == 401
        wait_for(lambda: redis.call("EXISTS", P + "lspread:zz:" + name) == 1, 10,
                 what="kairand's counts")

    def counts(login, tenant="sakura"):
        """The counts only a finished hash moves (lspread: every failure,
        counted after its hash), and the untrusted count."""
        g = lambda key: int(redis.call("GET", P + key) or 0)  # noqa: E731
        return g("lspread:%s:%s" % (tenant, login)), g("luntr:%s:%s" % (tenant, login))

    with tap.check("[1] a login sets a device cookie: HttpOnly, SameSite=Strict, Path=/, 180 days, no Secure on http"):
        owner = first_login("kocho")
        r = owner.login("kocho", PW["kocho"])
        assert r.status == 200, r
        dev = [sc for sc in owner.set_cookies if sc.startswith("kairan_device_")]
        sess = [sc for sc in owner.set_cookies if sc.startswith("kairan_session=")]
        assert len(dev) == 1 and len(sess) == 1, owner.set_cookies
        sc = dev[0]
        name, value = sc.split(";", 1)[0].split("=", 1)
        assert re.fullmatch(r"kairan_device_[0-9a-f]{16}", name), name
        assert "kocho" not in name
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}\.[1-9][0-9]{12}\.[0-9a-f]{32}", value), value
        attrs = [a.strip() for a in sc.split(";")[1:]]
        assert set(attrs) == {"Path=/", "HttpOnly", "SameSite=Strict",
                              "Max-Age=%d" % (180 * DAY)}, attrs
        exp = int(value.split(".")[1])
        assert abs(exp / 1000 - (time.time() + 180 * DAY)) < 600, exp
        # nothing of it in Redis (a MAC, no record); its nonce names no key
        nonce = value.split(".")[0]
        dump = b"".join(redis.call("DUMP", x) or b"" for x in redis.call("KEYS", "*"))
        assert nonce.encode() not in dump and value.encode() not in dump
        assert redis.call("KEYS", P + "ldev:*") == []
        # one per account: another teacher in the same browser adds hers
        r = owner.login("sato", PW["sato"])
        assert r.status == 200, r
        assert len(owner.device()) == 2, owner.jar
        assert last_log()["device"] == "none" and last_log()["result"] == "ok", last_log()
        owner.jar.pop([n for n in owner.device() if n != name][0])
        OWNER_DEV = (name, value)
        # the owner's other browser (at home), trusted before the attack
        second = Browser(port, "10.0.0.2")
        assert second.login("kocho", PW["kocho"]).status == 200
        assert len(second.device()) == 1

    with tap.check("[2] 10 untrusted failures from 10 addresses: then 429 before any hash, even with the right password"):
        got = []
        for i in range(10):
            got.append(Browser(port, new_ip()).login("kocho", "guess %d" % i).status)
        assert got == [401] * 10, got
        settled()
        before = counts("kocho")
        assert before[1] == 10, before
        r = Browser(port, new_ip()).login("kocho", PW["kocho"])
        assert r.status == 429, r
        ra = int(r.headers["retry-after"][0])
        assert 0 < ra <= 900 and r.json["retry_after"] == ra, (r.headers, r.json)
        assert r.json["code"] == "untrusted_locked" and r.json["field"] is None, r.json
        assert "15 more minutes" in r.json["error"] and "administrator" in r.json["error"], r.json
        assert r.headers.get("set-cookie") is None, r.headers
        for i in range(5):
            assert Browser(port, new_ip()).login("kocho", "guess x%d" % i).status == 429
        # no hash ran for those 6: lspread (moved only after a hash) and
        # the untrusted count stand still, and the log gives the reason
        settled()
        assert counts("kocho") == before, (counts("kocho"), before)
        lines = [l for l in read_log() if l["tenant"] == "sakura"][-6:]
        assert [(l["result"], l["device"], l["status"]) for l in lines] == \
            [("untrusted_locked", "none", 429)] * 6, lines
        assert all(l["login"] == "kocho" for l in lines), lines

    with tap.check("[2] 30 untrusted guesses at once: exactly 10 are hashed (counted before judged), the rest 429"):
        import threading
        res = []

        def one(i):
            res.append(Browser(port, "10.30.%d.1" % i).login("ito", "at once %d" % i))
        th = [threading.Thread(target=one, args=(i,)) for i in range(30)]
        for x in th:
            x.start()
        for x in th:
            x.join(120)
        st = sorted(r.status for r in res)
        tap.diag("30 at once: %d answered 401, %d 429, %d 503"
                 % (st.count(401), st.count(429), st.count(503)))
        assert len(res) == 30 and set(st) <= {401, 429, 503}, st
        assert st.count(401) == 10, st
        # lspread moves only after a hash: exactly 10 ran
        settled()
        assert counts("ito")[0] == 10, counts("ito")

    with tap.check("[3] the owner's browser (device cookie) logs in during the lock, from any address"):
        r = owner.login("kocho", PW["kocho"], ip=new_ip())
        assert r.status == 200, r
        l = last_log()
        assert (l["result"], l["device"]) == ("ok", "trusted"), l
        # a new cookie (new nonce, new expiry) replaces the old one
        assert owner.device()[OWNER_DEV[0]] != OWNER_DEV[1], owner.jar
        # the lock stays for the others (a success is no reset)
        assert counts("kocho")[1] == 10
        assert Browser(port, new_ip()).login("kocho", PW["kocho"]).status == 429
        # a wrong password from the owner's browser is an ordinary 401
        r = owner.login("kocho", "a typo", ip=new_ip())
        assert r.status == 401 and last_log()["device"] == "trusted", r
        r = owner.login("kocho", PW["kocho"], ip=new_ip())
        assert r.status == 200, r

    with tap.check("[4] tampered, another account's, or forged device cookies are untrusted (429)"):
        name, value = list(owner.device().items())[0]
        nonce, exp, mac = value.split(".")
        forged = [
            value[:-1] + ("0" if value[-1] != "0" else "1"),          # MAC changed
            "%s.%d.%s" % (nonce, int(exp) + 1000, mac),                  # expiry changed
            ("A" if nonce[0] != "A" else "B") + value[1:],              # nonce changed
        ]
        # sato's genuine cookie value, under kocho's cookie name
        sato_b = Browser(port)
        assert sato_b.login("sato", PW["sato"]).status == 200
        sato_name, sato_value = list(sato_b.device().items())[0]
        forged.append(sato_value)
        for v in forged:
            b = Browser(port, new_ip())
            b.jar[name] = v
            r = b.login("kocho", PW["kocho"])
            assert r.status == 429 and r.json["code"] == "untrusted_locked", (v, r)
            assert last_log()["device"] == "invalid", last_log()
        # sato's own cookie is no cookie of kocho's
        r = sato_b.login("kocho", PW["kocho"], ip=new_ip())
        assert r.status == 429, r
        assert last_log()["device"] == "none", last_log()
        # and the same value twice
        r = request(port, "POST", "/v1/session",
                    {"tenant": "sakura", "login": "kocho", "password": PW["kocho"]},
                    {"Origin": "http://127.0.0.1:%d" % port, "X-Real-IP": new_ip(),
                     "Cookie": "%s=%s; %s=%s" % (name, value, name, value)})
        assert r.status == 429 and last_log()["device"] == "invalid", r

    with tap.check("[5] a trusted browser passes the per-address lock; 5 failures lock its cookie, then it is untrusted"):
        # the window ends (made to end now in Redis, not waited for)
        redis.call("PEXPIRE", P + "luntr:sakura:kocho", 1)
        wait_for(lambda: redis.call("EXISTS", P + "luntr:sakura:kocho") == 0, 5,
                 what="the untrusted count to expire")
        office = "10.55.0.1"
        for i in range(5):
            assert Browser(port, office).login("kocho", "office guess %d" % i).status == 401
        assert Browser(port, office).login("kocho", PW["kocho"]).status == 429
        assert last_log()["result"] == "locked", last_log()  # the address's lock
        # the owner, at the office, with the cookie: in
        r = owner.login("kocho", PW["kocho"], ip=office)
        assert r.status == 200 and last_log()["device"] == "trusted", r
        # the untrusted lock again
        for i in range(5):
            assert Browser(port, new_ip()).login("kocho", "guess y%d" % i).status == 401
        assert Browser(port, new_ip()).login("kocho", PW["kocho"]).status == 429
        assert last_log()["result"] == "untrusted_locked", last_log()
        # someone who copied the owner's cookie guesses with it: 5 tries
        thief = Browser(port, new_ip())
        thief.jar.update(owner.device())
        tvalue = list(owner.device().values())[0]
        tnonce, texp = tvalue.split(".")[0], int(tvalue.split(".")[1])
        got = [thief.login("kocho", "thief guess %d" % i, ip=new_ip()).status for i in range(5)]
        assert got == [401] * 5, got
        settled()
        assert counts("kocho")[1] == 10  # not the untrusted count
        key = P + "ldev:sakura:kocho:" + tnonce
        settled()
        assert int(redis.call("GET", key)) == 5
        ttl = redis.call("PTTL", key)
        assert 179 * DAY * 1000 < ttl <= 180 * DAY * 1000, ttl
        assert abs((time.time() * 1000 + ttl) - texp) < 60000, (ttl, texp)
        # the cookie is locked: untrusted, so refused during the lock, the
        # right password too, and no more counted against it
        r = thief.login("kocho", PW["kocho"], ip=new_ip())
        assert r.status == 429 and r.json["code"] == "untrusted_locked", r
        assert (last_log()["device"], last_log()["result"]) == ("locked", "untrusted_locked"), last_log()
        assert int(redis.call("GET", key)) == 5
        # (the owner's browser holds that same cookie: untrusted too now,
        # until the lock ends and a login there issues a new one) ...
        assert owner.login("kocho", PW["kocho"], ip=new_ip()).status == 429
        # ... the owner's other browser is not affected
        r = second.login("kocho", PW["kocho"], ip=new_ip())
        assert r.status == 200 and last_log()["device"] == "trusted", r

    with tap.check("[6] an unknown login behaves as a known one: same answers, same lock, same log reason"):
        known, unknown = [], []
        for i in range(11):
            known.append(Browser(port, new_ip()).login("mori", "guess z%d" % i))
            unknown.append(Browser(port, new_ip()).login("ghost", "guess z%d" % i))
        assert [r.status for r in known] == [401] * 10 + [429], known
        assert [r.status for r in unknown] == [401] * 10 + [429], unknown
        for a, b in zip(known, unknown):
            # the seconds left may differ by the time between the two
            ja, jb = dict(a.json), dict(b.json)
            ra, rb = ja.pop("retry_after", 0), jb.pop("retry_after", 0)
            assert ja == jb and abs(ra - rb) <= 2, (a.body, b.body)
            assert (a.headers.get("retry-after") is None) == (b.headers.get("retry-after") is None)
            assert a.headers.get("set-cookie") is None and b.headers.get("set-cookie") is None
        lines = [l for l in read_log() if l["tenant"] == "sakura"][-2:]
        assert [l["result"] for l in lines] == ["untrusted_locked"] * 2, lines
        assert lines[0].get("login") == "mori" and lines[1].get("login") is None, lines
        # a real account's device cookie sent with it changes nothing
        b = Browser(port, new_ip())
        b.jar.update(second.device())
        assert b.login("ghost", PW["kocho"]).status == 429
        assert last_log()["device"] == "none", last_log()

    with tap.check("[7] TTLs bounded: every throttling key expires; when the untrusted count expires, untrusted logins work again"):
        bounds = {"lfail": 900, "lspread": 900, "luntr": 900, "ldev": 180 * DAY,
                  "totpfail": 900}
        seen = {}
        for key in redis.call("KEYS", P + "*"):
            kind = key.decode()[len(P):].split(":", 1)[0]
            if kind not in bounds:
                continue
            ttl = redis.call("PTTL", key)
            assert 0 < ttl <= bounds[kind] * 1000, (key, ttl)
            seen[kind] = seen.get(kind, 0) + 1
        assert {"lfail", "lspread", "luntr", "ldev"} <= set(seen), seen
        # one key a login tried from an untrusted browser (sato's at 0:
        # its tries were right, taken off again)
        settled()
        untr = sorted(x.decode()[len(P + "luntr:sakura:"):] for x in redis.call("KEYS", P + "luntr:sakura:*"))
        assert untr == ["ghost", "ito", "kocho", "mori", "sato"], untr
        assert int(redis.call("GET", P + "luntr:sakura:sato")) == 0
        tap.diag("throttling keys: %s" % seen)
        # mori's window ends (made to, in Redis)
        redis.call("PEXPIRE", P + "luntr:sakura:mori", 1)
        wait_for(lambda: redis.call("EXISTS", P + "luntr:sakura:mori") == 0, 5,
                 what="the untrusted count to expire")
        r = Browser(port, new_ip()).login("mori", PW["mori"])
        assert r.status == 200 and r.json["must_change_password"], r

    with tap.check("[8] kairanctl staff unlock lifts the locks at once (operation log), locked device cookies stay locked"):
        assert Browser(port, new_ip()).login("kocho", PW["kocho"]).status == 429
        assert Browser(port, "10.55.0.1").login("kocho", PW["kocho"]).status == 429  # the office's lock
        assert redis.call("KEYS", P + "lfail:sakura:kocho:*") != []
        cp = k.ctl("staff", "unlock", "--tenant", "sakura", "kocho")
        assert cp.returncode == 0 and "lifted" in cp.stdout, cp
        assert redis.call("EXISTS", P + "luntr:sakura:kocho") == 0
        assert redis.call("KEYS", P + "lfail:sakura:kocho:*") == []
        assert redis.call("EXISTS", P + "luntr:sakura:mori") == 1  # only that account's
        assert redis.call("EXISTS", P + "ldev:sakura:kocho:" + tnonce) == 1
        r = Browser(port, "10.55.0.1").login("kocho", PW["kocho"])
        assert r.status == 200 and last_log()["device"] == "none", r
        with open(os.path.join(AUDIT, "operations.jsonl")) as f:
            ops = [json.loads(l) for l in f if l.strip()]
        assert ops[-1]["op"] == "staff.unlock", ops[-1]
        cp = k.ctl("staff", "unlock", "--tenant", "sakura", "nobody")
        assert cp.returncode != 0 and "no staff account" in cp.stderr, cp

    d.stop()

tap.done()
