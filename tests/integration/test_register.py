#!/usr/bin/python3
"""test_register.py - guardians sign themselves up (issue 15): the
registration page's HTTP steps (dispatcher/http/register.c) against a real
kairand, redis-server and the fake SMTP server.

A class of two from a class list: s-1 with its mother's address imported,
s-2 with a phone number only (no address).  Sheets issued with kairanctl recipients sheets.

  [1] GET /r and its files under the strict CSP with Trusted Types;
      an unknown file is 404.
  [2] a wrong passcode and an unknown ID get the same 401 and body; five
      failures of one ID from one address lock that pair (429, even with
      the right passcode), while the family at its own address gets in;
      an unknown ID is locked the same way.
  [3] s-2's first guardian: consent and the address are checked (400 with
      the field); a name or relation with a gaiji (U+E000, U+F8FF,
      U+F0000) is refused (400 gaiji_name, gaiji_relation: Japanese first,
      the place and the text with 〓); the verification mail arrives with a link and a 6-digit
      code; the link's POST registers once (a second POST: 404); the
      address is in reg:<T>:s-2 sealed, never in clear anywhere in Redis.
  [4] a broadcast to the class reaches the registered address (and the
      imported one), once each.
  [5] s-1's second guardian by the 6-digit code (a wrong code first: 400):
      the imported contact is told by mail; s-2's second guardian: the
      first registered one is told; s-2's sheet is then used up (409).
  [6] re-importing the class list with --replace leaves every
      registration as it was (DUMP equal), and the next broadcast still
      reaches the registered addresses.
  [7] the operation log has registration.add lines without an address.
  [9] retention: a deleted child's registrations and sheet go at the next
      purge; tenant close voids every sheet at once, and a device
      credential given before can no longer change the record (401); its
      erasure leaves no sheet or registration key.
  [10] the school app: /r/app gives a single-use code; POST /v1/devices
      registers the push token and answers a device credential, which
      rotates the token; a push broadcast reaches the new token only; an
      e-mail added in the same sign-up joins the same guardian.
  [11] one sign-up sends at most 5 verification mails.
  [13] one address gets at most 3 verification mails an hour, from
      every sheet together (429 addr_limit).
  [14] one sheet starts at most 10 sign-ups an hour (429 sheet_busy).
  [12] Redis gone: a step is answered 503 {"code": "retry"} with a text
      that names nothing of the inside.
  [0], [8] kairanctl recipients unregistered: per class, both children
      before (with the channels the school holds), nobody after.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_register.py
"""

import csv
import glob
import io
import json
import os
import re
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("register")
T = "sakura-es"
CLASS = "\r\n".join([
    "ID,氏名,クラス,グループ,保護者氏名,メール,電話番号",
    "s-1,山田 一郎,A,1年A組,山田 花子,mama1@example.jp,",
    "s-2,田中 二郎,A,1年A組,,,090-0000-0002",
]) + "\r\n"
MOM2 = "tanaka.mama@docomo.ne.jp"
DAD2 = "tanaka..papa.@ezweb.ne.jp"
DAD1 = "yamada.papa@example.jp"


def call(method, path, body=None, ip=None, raw=False):
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if ip:
        headers["X-Real-IP"] = ip
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            st, hd, b = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        st, hd, b = e.code, e.headers, e.read()
    if raw:
        return st, hd, b
    try:
        return st, json.loads(b or b"{}")
    except ValueError:
        return st, {"raw": b.decode(errors="replace")}


def mails_to(addr):
    return [m for m in smtp.messages() if addr in m["rcpt"]]


def wait_mail(addr, n=1, what=None):
    return wait_for(lambda: (lambda L: L if len(L) >= n else None)(
        [m for m in mails_to(addr) if what is None or what in m["data"]]),
        30, 0.1, what="%d mail(s) to %s" % (n, addr))


def subjects(addr):
    import email
    import email.policy
    return [str(email.message_from_string(m["data"], policy=email.policy.default)
                ["Subject"]) for m in mails_to(addr)]


def link_and_code(msg):
    import email
    import email.policy
    m = email.message_from_string(msg["data"], policy=email.policy.default)
    text = m.get_body(("plain",)).get_content()
    v = re.search(r"/r#v=([A-Za-z0-9_-]+)", text).group(1)
    code = re.search(r"^([0-9]{6})\r?$", text, re.M).group(1)
    return v, code, text


def scan():
    keys, cursor = [], b"0"
    while True:
        cursor, ks = r.call("SCAN", cursor, "COUNT", 1000)
        keys.extend(ks)
        if cursor in (b"0", 0, "0"):
            return sorted(keys)


def register(sheet, email_addr, name, rel, ip, by="link"):
    st, j = call("POST", "/r/start", {"id": sheet[0], "passcode": sheet[1]},
                 ip=ip)
    assert st == 200, (st, j)
    before = len(mails_to(email_addr))
    st, j2 = call("POST", "/r/email", {"ticket": j["ticket"],
                                       "email": email_addr, "name": name,
                                       "relation": rel, "consent": True},
                  ip=ip)
    assert st == 202, (st, j2)
    msg = wait_mail(email_addr, before + 1)[-1]
    v, code, _ = link_and_code(msg)
    if by == "link":
        st, j3 = call("POST", "/r/verify", {"v": v}, ip=ip)
    else:
        st, j3 = call("POST", "/r/verify", {"ticket": j["ticket"],
                                            "code": code}, ip=ip)
    assert st == 200 and j3.get("registered"), (st, j3)
    return j


with Redis(out) as r, FakeSMTP(out) as smtp:
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    k = Kairan(out, r, smtp=smtp,
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "public_url": base, "rate": "1000"}})
    path = os.path.join(out, "1A.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write(CLASS)
    cp = k.ctl("recipients", "import", "--tenant", T, path)
    assert cp.returncode == 0, cp.stderr
    cp = k.ctl("recipients", "sheets", "--tenant", T, "--format", "csv")
    assert cp.returncode == 0, cp.stderr
    sheets = {row["student"]: (row["id"], row["passcode"])
              for row in csv.DictReader(io.StringIO(cp.stdout))}
    d = k.start()
    d.wait_output('"listening"', 15)

    with tap.check("[0] recipients unregistered: per class, with the "
                   "channels the school holds"):
        cp = k.ctl("recipients", "unregistered", "--tenant", T)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout == ("A\ts-1\t山田 一郎\temail\n"
                             "A\ts-2\t田中 二郎\t-\n"), cp.stdout
        assert "A: 2 unregistered" in cp.stderr and \
            "2 unregistered of 2" in cp.stderr, cp.stderr
        assert k.ctl("recipients", "unregistered", "--tenant", T, "--group",
                     "9-Z").returncode == 3
        assert k.ctl("recipients", "unregistered", "--tenant",
                     "nobody").returncode == 3
        assert k.ctl("recipients", "unregistered", "--tenant", T,
                     "--reissue").returncode == 2

    with tap.check("[1] /r and its files under the strict CSP with Trusted "
                   "Types; an unknown file 404"):
        st, hd, b = call("GET", "/r", raw=True)
        assert st == 200 and b"<html lang=\"ja\">" in b, st
        csp = hd["Content-Security-Policy"]
        for part in ("default-src 'none'", "script-src 'self'",
                     "require-trusted-types-for 'script'",
                     "trusted-types 'none'"):
            assert part in csp, csp
        assert "unsafe" not in csp
        for f, ct in (("register.js", "javascript"), ("register.css", "css"),
                      ("strings-ja.json", "json"), ("strings-en.json", "json")):
            st, hd, b = call("GET", "/r/" + f, raw=True)
            assert st == 200 and ct in hd["Content-Type"], (f, st)
        # every language /r/langs.json lists is served, with the keys of
        # the Japanese file
        ja = json.loads(call("GET", "/r/strings-ja.json", raw=True)[2])
        langs = json.loads(call("GET", "/r/langs.json", raw=True)[2])
        assert [x["code"] for x in langs] == ["ja", "en", "fil", "pt", "vi",
                                              "zh"], langs
        for x in langs:
            st, hd, b = call("GET", "/r/strings-%s.json" % x["code"], raw=True)
            assert st == 200 and "json" in hd["Content-Type"], (x, st)
            s = json.loads(b)
            assert set(s) == set(ja), (x["code"], set(s) ^ set(ja))
            assert x == {"code": x["code"], "name": s["langName"],
                         "lang": s["htmlLang"]}, x
        assert call("GET", "/r/strings-xx.json", raw=True)[0] == 404
        assert call("GET", "/r/index.php", raw=True)[0] == 404
        js = call("GET", "/r/register.js", raw=True)[2].decode()
        assert "innerHTML" not in js and "insertAdjacentHTML" not in js

    with tap.check("[2] wrong passcode = unknown ID (401, same body); 5 "
                   "failures lock that ID at that address only"):
        sid, pw = sheets["s-2"]
        wrong = "3333-3333-3333"
        st1, j1 = call("POST", "/r/start", {"id": sid, "passcode": wrong},
                       ip="203.0.113.9")
        st2, j2 = call("POST", "/r/start", {"id": "XXXXXXXX",
                                            "passcode": wrong},
                       ip="203.0.113.9")
        assert st1 == st2 == 401 and j1 == j2, (st1, j1, st2, j2)
        # the page shows its own words for a failure by this code
        assert j1["code"] == "bad_sheet", j1
        for _ in range(4):
            assert call("POST", "/r/start", {"id": sid, "passcode": wrong},
                        ip="203.0.113.9")[0] == 401
        st, j = call("POST", "/r/start", {"id": sid, "passcode": pw},
                     ip="203.0.113.9")
        assert st == 429 and j["code"] == "locked" and j["field"] is None \
            and "15" in j["error"], (st, j)
        st, j = call("POST", "/r/start", {"id": sid, "passcode": pw},
                     ip="198.51.100.7")
        assert st == 200 and j["school"] == T and j["student"] == "田中 二郎" \
            and j["left"] == 2, (st, j)
        for _ in range(4):
            assert call("POST", "/r/start", {"id": "XXXXXXXX",
                                             "passcode": wrong},
                        ip="203.0.113.9")[0] == 401
        assert call("POST", "/r/start", {"id": "XXXXXXXX", "passcode": wrong},
                    ip="203.0.113.9")[0] == 429
        assert call("POST", "/r/start", {"id": sid}, ip="1.2.3.4")[0] == 400

    with tap.check("[2b] tries sent at once are counted before they are "
                   "judged: of 20 parallel wrong passcodes (one ID, one "
                   "address) and 20 parallel wrong codes (one sign-up) at "
                   "most 5 are judged"):
        from concurrent.futures import ThreadPoolExecutor
        sid, pw = sheets["s-1"]
        with ThreadPoolExecutor(20) as ex:
            got = list(ex.map(lambda _: call(
                "POST", "/r/start", {"id": sid, "passcode": "4444-4444-4444"},
                ip="203.0.113.77")[0], range(20)))
        assert got.count(401) <= 5 and got.count(429) >= 15 and \
            set(got) <= {401, 429}, got
        st, j = call("POST", "/r/start", {"id": sid, "passcode": pw},
                     ip="198.51.100.78")
        assert st == 200, (st, j)
        tk = j["ticket"]
        st, e = call("POST", "/r/email", {"ticket": tk,
                                          "email": "tries@example.jp",
                                          "consent": True},
                     ip="198.51.100.78")
        assert st == 202, (st, e)
        with ThreadPoolExecutor(20) as ex:
            got = list(ex.map(lambda _: call(
                "POST", "/r/verify", {"ticket": tk, "code": "000000"},
                ip="198.51.100.78")[0], range(20)))
        assert got.count(400) <= 5 and got.count(429) >= 15, got
        # mails of one sign-up sent at once: at most 5 go
        st, j = call("POST", "/r/start", {"id": sid, "passcode": pw},
                     ip="198.51.100.79")
        assert st == 200, (st, j)
        tk2 = j["ticket"]
        with ThreadPoolExecutor(10) as ex:
            got = list(ex.map(lambda i: call(
                "POST", "/r/email", {"ticket": tk2,
                                     "email": "par%d@example.jp" % i,
                                     "consent": True},
                ip="198.51.100.79")[0], range(10)))
        assert got.count(202) <= 5 and got.count(429) >= 5, got
        r.call("DEL", k.prefix + "rst:" + sid)  # leave the sheet's hour as it was

    with tap.check("[3] first guardian of s-2: checks, mail with link and "
                   "code, the link registers once, sealed"):
        st, j = call("POST", "/r/start", {"id": sheets["s-2"][0].lower(),
                                          "passcode": sheets["s-2"][1]
                                          .replace("-", " ")},
                     ip="198.51.100.7")
        assert st == 200, (st, j)
        tk = j["ticket"]
        st, e = call("POST", "/r/email", {"ticket": tk, "email": MOM2,
                                          "consent": False}, ip="198.51.100.7")
        assert st == 400 and e["field"] == "consent" \
            and e["code"] == "need_consent", (st, e)
        st, e = call("POST", "/r/email", {"ticket": tk, "email": "no-at",
                                          "consent": True}, ip="198.51.100.7")
        assert st == 400 and e["field"] == "email" \
            and e["code"] == "bad_email", (st, e)
        # A bidi override in a name would turn the names after it around
        # where the console joins a child's guardians; C1 controls and the
        # line separator are no names either.
        for bad in ("\u202e花子", "田中\u2066 花子", "a\u009bb", "a\u2028b"):
            for f in ("name", "relation"):
                st, e = call("POST", "/r/email",
                             {"ticket": tk, "email": MOM2, f: bad,
                              "consent": True}, ip="198.51.100.7")
                assert st == 400 and e["field"] == f \
                    and e["code"] == "bad_" + f, (bad, f, st, e)
        # A private-use character (gaiji) shows as a box on the school's
        # screens: refused, its place named (the character as 〓).
        for bad, at, ex in (("渡\ue000 花子", 2, "渡〓 花子"),
                            ("母\U000f0000", 2, "母〓"),
                            ("\uf8ff", 1, "〓")):
            for f, ja in (("name", "お名前"), ("relation", "続柄")):
                st, e = call("POST", "/r/email",
                             {"ticket": tk, "email": MOM2, f: bad,
                              "consent": True}, ip="198.51.100.7")
                assert st == 400 and e["field"] == f \
                    and e["code"] == "gaiji_" + f and e["at"] == at \
                    and e["excerpt"] == ex \
                    and e["error"].startswith(
                        ja + "に外字（機種依存文字）が含まれています（「%s」の"
                        "〓の所、%d 文字目）" % (ex, at)) \
                    and "(%s: contains a user-defined character" % f \
                    in e["error"], (bad, f, st, e)
        st, e = call("POST", "/r/email", {"ticket": "x" * 43, "email": MOM2,
                                          "consent": True}, ip="198.51.100.7")
        assert st == 401 and e["field"] == "ticket" \
            and e["code"] == "expired", (st, e)
        st, e = call("POST", "/r/email", {"ticket": tk, "email": MOM2,
                                          "name": "田中 花子",
                                          "relation": "母", "consent": True},
                     ip="198.51.100.7")
        assert st == 202 and e["sent"].endswith("@docomo.ne.jp") \
            and MOM2 not in e["sent"], (st, e)
        msg = wait_mail(MOM2)[0]
        v, code, text = link_and_code(msg)
        assert base + "/r#v=" + v in text
        assert r.call("HGET", k.prefix + "reg:%s:s-2" % T, "g") is None
        st, j = call("POST", "/r/verify", {"v": v}, ip="198.51.100.7")
        assert st == 200 and j == {"registered": True}, (st, j)
        st, j = call("POST", "/r/verify", {"v": v}, ip="198.51.100.7")
        assert st == 404 and j["code"] == "bad_link", (st, j)
        g = json.loads(r.call("HGET", k.prefix + "reg:%s:s-2" % T, "g"))
        assert len(g) == 1 and g[0]["e"].startswith("k") and g[0]["cs"] > 0 \
            and "nm" in g[0] and "rl" in g[0], g
        assert r.call("HGET", k.prefix + "sheet:" + sheets["s-2"][0],
                      "used") == b"1"
        blob = b"".join(r.call("DUMP", x) or b"" for x in scan())
        assert MOM2.encode() not in blob and "田中 花子".encode() not in blob
        # the one-time link and code are in the mail only: the broadcast
        # that carried it keeps its body sealed, and the API withholds it
        assert v.encode() not in blob and code.encode() not in blob
        regs = [x for x in scan() if re.match(rb"kairan:bc:b-[^:]*$", x) and
                r.call("HGET", x, "sender") == b"registration"]
        assert regs and all(r.call("HGET", x, "sb") == b"1" and
                            r.call("HGET", x, "body").startswith(b"k")
                            for x in regs), regs
        cp = k.ctl("token", "create", "--role", "limited_admin", "--tenant", T,
                   "--name", "office")
        assert cp.returncode == 0, cp.stderr
        tok = cp.stdout.strip().splitlines()[-1]
        rq = urllib.request.Request(
            base + "/v1/broadcasts/" + regs[0].decode().split(":")[-1],
            headers={"Authorization": "Bearer " + tok})
        with urllib.request.urlopen(rq, timeout=20) as resp:
            bj = json.loads(resp.read())
        assert bj["body_withheld"] is True and v not in json.dumps(bj) and \
            code not in json.dumps(bj), bj
        # nor is it sent again (it would carry the sealed text)
        rq = urllib.request.Request(
            base + "/v1/broadcasts/" + regs[0].decode().split(":")[-1] +
            "/resend", data=b"{}", method="POST",
            headers={"Authorization": "Bearer " + tok,
                     "Content-Type": "application/json"})
        try:
            urllib.request.urlopen(rq, timeout=20)
            raise AssertionError("a sealed message was re-sent")
        except urllib.error.HTTPError as e:
            assert e.code == 409 and b"one-time" in e.read(), e.code

    def broadcast(subject):
        bid = k.submit({"tenant": T, "subject": subject, "body": "本文",
                        "channels": ["email"],
                        "audience": {"groups": ["1年A組"]}})
        k.wait_done(bid, 60)
        return bid

    with tap.check("[4] a broadcast to the class reaches the registered "
                   "address and the imported one, once each"):
        broadcast("連絡その1")
        for a in (MOM2, "mama1@example.jp"):
            wait_for(lambda: subjects(a).count("連絡その1") == 1, 30, 0.1,
                     what="the broadcast at " + a)
        assert subjects(MOM2) == ["【連絡網】メールアドレスの確認", "連絡その1"], \
            subjects(MOM2)

    with tap.check("[5] second guardians by code: the others are told; the "
                   "sheet is then used up"):
        st, j = call("POST", "/r/start", {"id": sheets["s-1"][0],
                                          "passcode": sheets["s-1"][1]},
                     ip="198.51.100.8")
        tk = j["ticket"]
        st, e = call("POST", "/r/email", {"ticket": tk, "email": DAD1,
                                          "consent": True}, ip="198.51.100.8")
        assert st == 202, (st, e)
        v, code, _ = link_and_code(wait_mail(DAD1)[0])
        bad = "%06d" % ((int(code) + 1) % 1000000)
        st, e = call("POST", "/r/verify", {"ticket": tk, "code": bad},
                     ip="198.51.100.8")
        assert st == 400 and e["field"] == "code", (st, e)
        st, e = call("POST", "/r/verify", {"ticket": tk, "code": code},
                     ip="198.51.100.8")
        assert st == 200, (st, e)
        wait_for(lambda: "【連絡網】保護者の登録がありました" in
                 subjects("mama1@example.jp"), 30, 0.1, what="the notice")
        assert len(mails_to(DAD1)) == 1        # not told of itself
        n_mom2 = len(mails_to(MOM2))
        register(sheets["s-2"], DAD2, "", "", "198.51.100.9", by="code")
        wait_mail(MOM2, n_mom2 + 1)
        st, j = call("POST", "/r/start", {"id": sheets["s-2"][0],
                                          "passcode": sheets["s-2"][1]},
                     ip="198.51.100.9")
        assert st == 409, (st, j)

    with tap.check("[6] re-importing with --replace leaves registrations; "
                   "the next broadcast still reaches them"):
        regs = {x: r.call("DUMP", x) for x in scan()
                if x.startswith((k.prefix + "reg:").encode())}
        assert len(regs) == 2, regs.keys()
        cp = k.ctl("recipients", "import", "--tenant", T, "--replace", path)
        assert cp.returncode == 0, cp.stderr
        assert {x: r.call("DUMP", x) for x in regs} == regs
        counts = {a: len(mails_to(a)) for a in (MOM2, DAD2, DAD1)}
        broadcast("連絡その2")
        for a, n in counts.items():
            wait_mail(a, n + 1)
            assert subjects(a)[-1] == "連絡その2", subjects(a)

    with tap.check("[8] recipients unregistered: nobody left"):
        cp = k.ctl("recipients", "unregistered", "--tenant", T, "--group",
                   "1年A組")
        assert cp.returncode == 0 and cp.stdout == "", (cp.stdout, cp.stderr)
        assert "0 unregistered of 2" in cp.stderr, cp.stderr

    with tap.check("[7] the operation log: registration.add, no address"):
        with open(os.path.join(k.dir, "audit", "operations.jsonl")) as f:
            ops = [json.loads(x) for x in f if x.strip()]
        adds = [o for o in ops if o.get("op") == "registration.add"]
        assert len(adds) == 3, adds
        text = json.dumps(ops, ensure_ascii=False)
        for a in (MOM2, DAD1, DAD2):
            assert a not in text

    with tap.check("[11] at most 5 verification mails per sign-up (429 "
                   "after)"):
        st, j = call("POST", "/r/start", {"id": sheets["s-1"][0],
                                          "passcode": sheets["s-1"][1]},
                     ip="198.51.100.40")
        assert st == 200, (st, j)
        got = [call("POST", "/r/email", {"ticket": j["ticket"],
                                         "email": "spam%d@example.jp" % i,
                                         "consent": True},
                    ip="198.51.100.40")[0] for i in range(6)]
        assert got == [202] * 5 + [429], got

    with tap.check("[13] one address gets at most 3 verification mails an "
                   "hour, whatever the sign-up or sheet (429 addr_limit)"):
        VICTIM = "victim@example.jp"

        def start1(ip):
            st, j = call("POST", "/r/start", {"id": sheets["s-1"][0],
                                              "passcode": sheets["s-1"][1]},
                         ip=ip)
            assert st == 200, (st, j)
            return j["ticket"]
        # made-up tickets do not count against the address (nobody can
        # use up a stranger's address without a live sign-up)
        for i in range(5):
            st, e = call("POST", "/r/email", {"ticket": "%043d" % i,
                                              "email": VICTIM,
                                              "consent": True},
                         ip="198.51.100.40")
            assert st == 401 and e["code"] == "expired", (st, e)
        tk = start1("198.51.100.41")
        got = [call("POST", "/r/email", {"ticket": tk, "email": VICTIM,
                                         "consent": True},
                    ip="198.51.100.41") for _ in range(4)]
        assert [g[0] for g in got] == [202, 202, 202, 429], got
        assert got[3][1]["code"] == "addr_limit", got[3]
        st, e = call("POST", "/r/email", {"ticket": start1("198.51.100.42"),
                                          "email": VICTIM.upper(),
                                          "consent": True},
                     ip="198.51.100.42")
        assert st == 429 and e["code"] == "addr_limit", (st, e)
        wait_for(lambda: len(subjects(VICTIM)) >= 3, 30, 0.1,
                 what="the three mails")
        assert len(subjects(VICTIM)) == 3, subjects(VICTIM)

    with tap.check("[14] one sheet starts at most 10 sign-ups an hour (429 "
                   "sheet_busy; the ticket made is not handed out)"):
        sid, pw = sheets["s-1"]
        n = int(r.call("GET", k.prefix + "rst:" + sid) or 0)
        assert n >= 2, n  # [13]'s two at least
        for i in range(10 - n):
            assert call("POST", "/r/start", {"id": sid, "passcode": pw},
                        ip="198.51.100.43")[0] == 200
        tickets = len([x for x in scan() if b":rtk:" in x])
        st, j = call("POST", "/r/start", {"id": sid, "passcode": pw},
                     ip="198.51.100.43")
        assert st == 429 and j["code"] == "sheet_busy" and \
            "ticket" not in j, (st, j)
        wait_for(lambda: len([x for x in scan() if b":rtk:" in x]) ==
                 tickets, 10, 0.05, what="the refused ticket deleted")
        assert 0 < r.call("PTTL", k.prefix + "rst:" + sid) <= 3600000
        r.call("DEL", k.prefix + "rst:" + sid)  # the hour over, for [10]

    with tap.check("[10] the school app: a code from /r/app, POST "
                   "/v1/devices -> a device credential; the code works once; "
                   "the token rotates with the credential; a push broadcast "
                   "reaches the newest token; an e-mail of the same sign-up "
                   "joins the same guardian"):
        P = k.prefix
        fcm1 = "fcmTok01:APA91b-" + "q" * 40
        fcm2 = "fcmTok02:APA91b-" + "r" * 40
        st, j = call("POST", "/r/start", {"id": sheets["s-1"][0],
                                          "passcode": sheets["s-1"][1]},
                     ip="198.51.100.30")
        assert st == 200 and j["left"] == 1, (st, j)
        tk = j["ticket"]
        st, e = call("POST", "/r/app", {"ticket": tk, "lang": "<pt>"},
                     ip="198.51.100.30")
        assert st == 400 and e["field"] == "lang", (st, e)
        # The page's language (Portuguese here) goes with the code to the
        # guardian the app makes.
        st, a = call("POST", "/r/app", {"ticket": tk, "lang": "pt"},
                     ip="198.51.100.30")
        assert st == 200 and re.fullmatch("[34679ACEFGHJKMNPQRTWXY]{8}",
                                          a["code"]) and \
            a["expires_in"] == 600, (st, a)
        assert call("POST", "/v1/devices", {"code": a["code"],
                                            "platform": "xmpp",
                                            "token": fcm1})[0] == 400
        assert call("POST", "/v1/devices", {"code": a["code"],
                                            "platform": "fcm",
                                            "token": "bad token"})[0] == 400
        st, dv = call("POST", "/v1/devices", {"code": a["code"].lower(),
                                              "platform": "fcm",
                                              "token": fcm1})
        assert st == 201 and len(dv["device_credential"]) == 43, (st, dv)
        st, e = call("POST", "/v1/devices", {"code": a["code"],
                                             "platform": "fcm",
                                             "token": fcm2})
        assert st == 401 and e["field"] == "code", (st, e)
        assert r.call("HGET", P + "sheet:" + sheets["s-1"][0],
                      "used") == b"2"
        old_ti = json.loads(r.call("HGET", P + "reg:%s:s-1" % T,
                                   "g"))[1]["p"][0]["ti"]
        st, u = call("POST", "/v1/devices", {"credential":
                                             dv["device_credential"],
                                             "platform": "fcm",
                                             "token": fcm2})
        assert st == 200 and u == {"updated": True}, (st, u)
        assert call("POST", "/v1/devices", {"credential": "x" * 43,
                                            "platform": "fcm",
                                            "token": fcm2})[0] == 401
        g = json.loads(r.call("HGET", P + "reg:%s:s-1" % T, "g"))
        assert len(g) == 2 and len(g[1]["p"]) == 1, g
        assert g[1]["pf"]["lg"] == "pt", g[1]
        # A token a provider once called dead that the app registers again
        # is alive again: the app has just proved it current.
        ti2 = g[1]["p"][0]["ti"]
        r.call("SADD", P + "dead:push", ti2)
        st, u = call("POST", "/v1/devices", {"credential":
                                             dv["device_credential"],
                                             "platform": "fcm",
                                             "token": fcm2})
        assert st == 200 and u == {"updated": True}, (st, u)
        assert r.call("SISMEMBER", P + "dead:push", ti2) == 0
        blob = b"".join(r.call("DUMP", x) or b"" for x in scan())
        assert fcm1.encode() not in blob and fcm2.encode() not in blob
        bid = k.submit({"tenant": T, "subject": "プッシュ", "body": "本文",
                        "channels": ["push"], "audience": {"recipients":
                                                           ["s-1"]}})
        k.wait_done(bid, 60)
        assert k.counts(bid)["push"]["delivered"] == 1, k.counts(bid)
        # The outbox writes a push job as its blind index: the new token's.
        sent = [json.load(open(f)) for f in glob.glob(
            os.path.join(k.outbox, bid, "*.json"))]
        new_ti = g[1]["p"][0]["ti"]
        assert new_ti != old_ti
        assert [x["bindex"] for x in sent] == [new_ti], (sent, new_ti)
        # The same sign-up adds an e-mail: the same guardian, no sheet use.
        st, e = call("POST", "/r/email", {"ticket": tk, "email": "app@example.jp",
                                          "consent": True}, ip="198.51.100.30")
        assert st == 202, (st, e)
        v, code, _ = link_and_code(wait_mail("app@example.jp")[0])
        assert call("POST", "/r/verify", {"v": v})[0] == 200
        g = json.loads(r.call("HGET", P + "reg:%s:s-1" % T, "g"))
        assert len(g) == 2 and "e" in g[1] and "p" in g[1], g
        assert r.call("HGET", P + "sheet:" + sheets["s-1"][0],
                      "used") == b"2"

    with tap.check("[9] retention: a child deleted from the directory "
                   "loses its registrations and sheet at the next purge; "
                   "tenant close voids the sheets at once and erases the "
                   "rest"):
        P = k.prefix
        s1 = sheets["s-1"][0]
        assert k.ctl("recipients", "delete", "--tenant", T,
                     "s-1").returncode == 0
        assert r.call("EXISTS", P + "reg:%s:s-1" % T) == 1   # until purged
        cp = k.ctl("purge")
        assert cp.returncode == 0, cp.stderr
        assert "registrations deleted: 2 keys" in cp.stdout, cp.stdout
        assert r.call("EXISTS", P + "reg:%s:s-1" % T) == 0
        assert r.call("EXISTS", P + "sheet:" + s1) == 0
        assert r.call("SISMEMBER", P + "regd:" + T, "s-1") == 0
        assert r.call("EXISTS", P + "reg:%s:s-2" % T) == 1
        cp = k.ctl("recipients", "sheets", "--tenant", T, "--reissue",
                   "--format", "csv")
        new = list(csv.DictReader(io.StringIO(cp.stdout)))[0]
        st, j = call("POST", "/r/start", {"id": new["id"],
                                          "passcode": new["passcode"]},
                     ip="198.51.100.20")
        assert st == 200, (st, j)
        # A device registered before the close (the school app's
        # credential): its token rotation must stop with the school.
        st, a = call("POST", "/r/app", {"ticket": j["ticket"]},
                     ip="198.51.100.20")
        assert st == 200, (st, a)
        st, dv = call("POST", "/v1/devices", {"code": a["code"],
                                              "platform": "fcm",
                                              "token": "fcmClose:" + "c" * 40})
        assert st == 201, (st, dv)
        rk = P + "reg:%s:%s" % (T, new["student"])
        cp = k.ctl("tenant", "close", T, "--now", "2026-01-01T00:00:00+09:00")
        assert cp.returncode == 0, cp.stderr
        assert call("POST", "/r/start", {"id": new["id"],
                                         "passcode": new["passcode"]},
                    ip="198.51.100.20")[0] == 401
        before = r.call("HGET", rk, "g")
        assert before is not None
        st, e = call("POST", "/v1/devices", {"credential":
                                             dv["device_credential"],
                                             "platform": "fcm",
                                             "token": "fcmClose:" + "d" * 40})
        assert st == 401, (st, e)
        assert r.call("HGET", rk, "g") == before, "a closed school's record changed"
        cp = k.ctl("purge")
        assert cp.returncode == 0, cp.stderr
        left = [x for x in scan() if re.match(
            rb"kairan:(sheet|sheets|reg|regd|rdev|rdevs):", x)]
        assert left == [], left

    with tap.check("[12] Redis gone: a guardian's step is answered 503 "
                   "with code retry and no word of Redis"):
        r.stop()
        st, j = call("POST", "/r/start", {"id": "ABCDEFGH",
                                          "passcode": "3333-3333-3333"},
                     ip="198.51.100.21")
        assert st == 503 and j["code"] == "retry", (st, j)
        assert "Redis" not in j["error"] and "try again" in j["error"], j

    d.stop()
tap.done()
