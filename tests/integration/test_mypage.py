#!/usr/bin/python3
"""test_mypage.py - the guardian's my page (issue 16; dispatcher/http/
mypage.c) against a real kairand, redis-server and the fake SMTP server.

A class of two: s-1 with two guardians imported (mother, father), s-2 with
its mother's address; a tenant category 行事 and an emergency one 緊急連絡;
another tenant with one child.  Registration sheets issued.

  [1] every e-mail ends with the personal link <public_url>/m#t=<token>
      (Japanese and English words); GET /m and its files (a strings file
      per language: ja en pt zh vi fil, each with Japanese's keys) under
      the strict CSP with Trusted Types; an unknown file 404.
  [2] POST /m/view: the school, the child, this guardian's channel with a
      masked address, the order, the language (ja), the categories
      (emergency ones locked), the messages of the last 30 days sent to
      the child (with the body), not another class's nor another tenant's.
  [3] tokens: none, forged (one character changed), for another child
      (the MAC fails), expired (401 with "expired": true), of another
      use, a guardian no longer in the record: all 401, nothing read.
  [4] changes that need the link only: language, order, opting out of a
      category and in again land in the guardian's "pf" (pref_set), the
      other guardian's stays untouched; an emergency category, an unknown
      category, a bad language or channel: 400 with the field.
  [5] stopping a channel: without a code 403 (need_code), nothing
      changes; /m/code mails a 6-digit code to the guardian's own address;
      a wrong code 403; the right one saves; the code works once; five
      wrong codes void it (429); the sheet's passcode works too.
  [6] the operation log: guardian.prefs lines with the fields changed,
      never an address or a value.
  [7] /m/link: the same answer (202, same body) for a registered address,
      an unknown one and an unknown ID; only the registered one gets a
      mail, whose link opens the page; the 4th request for one address in
      the hour is refused (429), as the 6th for one ID.
  [8] the keys it keeps expire by themselves (mpc, mpf, mpn, mpl); no
      plaintext address anywhere in Redis.
  [9] LINE (a multicast cannot be personal): a directory child's message
      ends with the generic <public_url>/m; an inline recipient's has no
      foot, nor has an inline recipient's e-mail.
  [10] a guardian with LINE only gets the one-time code by LINE.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_mypage.py
"""

import base64
import csv
import email
import email.policy
import hashlib
import hmac
import io
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("mypage")
T = "sakura-es"
T2 = "ume-js"
MOM1 = "yamada.mama@example.jp"
DAD1 = "yamada..papa.@docomo.ne.jp"
MOM2 = "tanaka.mama@example.jp"
OTHER = "ume.mama@example.jp"
CLASS = "\r\n".join([
    "ID,氏名,クラス,グループ,保護者氏名,メール",
    "s-1,山田 一郎,A,1年A組,山田 花子,%s" % MOM1,
    "s-1,山田 一郎,A,1年A組,山田 太郎,%s" % DAD1,
    "s-2,田中 二郎,B,1年B組,田中 花子,%s" % MOM2,
]) + "\r\n"
CLASS2 = "ID,氏名,クラス,グループ,メール\r\nu-1,梅 一,A,1-A,%s\r\n" % OTHER


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


def texts(addr):
    res = []
    for m in smtp.messages():
        if addr in m["rcpt"]:
            msg = email.message_from_string(m["data"],
                                            policy=email.policy.default)
            res.append((str(msg["Subject"]),
                        msg.get_body(("plain",)).get_content()))
    return res


def wait_text(addr, subject, n=1):
    return wait_for(lambda: (lambda L: L if len(L) >= n else None)(
        [b for s, b in texts(addr) if s == subject]), 30, 0.1,
        what="%d mail(s) %r to %s" % (n, subject, addr))


def token_of(body):
    return re.search(r"/m#t=([A-Za-z0-9_.-]+)", body).group(1)


def index_key():
    """The blind-index key of the key file (common/seal.c)."""
    with open(k.key_file) as f:
        lines = [ln.strip() for ln in f
                 if re.match(r"^(\d+|index):", ln.strip())]
    for ln in lines:
        if ln.startswith("index:"):
            return bytes.fromhex(ln[6:])
    key = bytes.fromhex(min(lines, key=lambda ln: int(ln.split(":")[0]))
                        .split(":", 1)[1])
    prk = hmac.new(b"\0" * 32, key, hashlib.sha256).digest()
    return hmac.new(prk, b"kairan blind index v1\x01", hashlib.sha256).digest()


def bindex(purpose, value):
    return hmac.new(index_key(), purpose.encode() + b"\0" + value.encode(),
                    hashlib.sha256).hexdigest()[:32]


def make_token(use, tenant, child, index, exp, extra=""):
    """A token as model/gtoken.c makes it (to test expiry and misuse)."""
    plain = "g1|%s|%s|%s|%s|%d|%s" % (use, tenant, child, index, exp, extra)
    b64 = base64.urlsafe_b64encode(plain.encode()).rstrip(b"=").decode()
    return b64 + "." + bindex("gtoken", plain)


def record(child, tenant=T):
    return json.loads(r.call("HGET", k.prefix + "rcpt:%s:%s" % (tenant, child),
                             "c"))


def view(tok):
    return call("POST", "/m/view", {"t": tok})


def save(tok, **kw):
    kw["t"] = tok
    return call("POST", "/m/save", kw)


LINE_TOKEN = "line-token-mypage"
LINE_A = "U" + "a" * 32
LINE_B = "U" + "b" * 32
LINE_C = "U" + "c" * 32
CLASS3 = "id,name,class,groups,line\r\ns-3,佐藤 三郎,C,1年C組,%s\r\n" \
    "s-4,鈴木 四郎,C,1年C組,%s\r\n" % (LINE_A, LINE_B)

with Redis(out) as r, FakeSMTP(out) as smtp, \
        FakeLine(out, "line", ["--token", LINE_TOKEN]) as line:
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    k = Kairan(out, r, smtp=smtp,
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "public_url": base, "rate": "1000"},
                     "routes": {"line": "line"},
                     "line": {"api_base": line.url, "token": LINE_TOKEN}})
    for name, text, tenant in (("1.csv", CLASS, T), ("2.csv", CLASS2, T2),
                               ("3.csv", CLASS3, T)):
        path = os.path.join(out, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        cp = k.ctl("recipients", "import", "--tenant", tenant, path)
        assert cp.returncode == 0, cp.stderr
    for args in (("行事",), ("緊急連絡", "--emergency")):
        cp = k.ctl("category", "add", "--tenant", T, *args)
        assert cp.returncode == 0, cp.stderr
    cp = k.ctl("recipients", "sheets", "--tenant", T, "--format", "csv")
    assert cp.returncode == 0, cp.stderr
    sheets = {row["student"]: (row["id"], row["passcode"])
              for row in csv.DictReader(io.StringIO(cp.stdout))}
    d = k.start()
    d.wait_output('"listening"', 15)

    def broadcast(tenant, subject, groups, category="notice"):
        bid = k.submit({"tenant": tenant, "subject": subject,
                        "body": "本文: " + subject, "category": category,
                        "channels": ["email"],
                        "audience": {"groups": groups}})
        k.wait_done(bid, 60)
        return bid

    broadcast(T, "遠足のお知らせ", ["1年A組"], "行事")
    broadcast(T, "B組だけ", ["1年B組"])
    broadcast(T2, "梅のお知らせ", ["1-A"])
    tok_mom = token_of(wait_text(MOM1, "遠足のお知らせ")[0])
    tok_dad = token_of(wait_text(DAD1, "遠足のお知らせ")[0])
    tok_other = token_of(wait_text(OTHER, "梅のお知らせ")[0])

    with tap.check("[1] the mail's foot holds the personal link; /m and its "
                   "files under the strict CSP"):
        body = wait_text(MOM1, "遠足のお知らせ")[0]
        # Japanese text: the Japanese words alone (a translation adds English)
        assert "マイページ" in body and "My page" not in body, body
        assert base + "/m#t=" + tok_mom in body, body
        assert body.rstrip().endswith(tok_mom), body[-200:]
        assert tok_mom != tok_dad
        st, hd, b = call("GET", "/m", raw=True)
        assert st == 200 and b"<html lang=\"ja\">" in b, st
        csp = hd["Content-Security-Policy"]
        for part in ("default-src 'none'", "script-src 'self'",
                     "require-trusted-types-for 'script'",
                     "trusted-types 'none'"):
            assert part in csp, csp
        for f, ct in (("mypage.js", "javascript"), ("mypage.css", "css")):
            st, hd, b = call("GET", "/m/" + f, raw=True)
            assert st == 200 and ct in hd["Content-Type"], (f, st)
        # every strings file of web/mypage/ served as it is, with the keys
        # of the Japanese one (the languages of /m/view's "languages")
        web = os.path.join(ROOT, "web", "mypage")
        names = sorted(os.listdir(web))
        langs = sorted(n[8:-5] for n in names if n.startswith("strings-"))
        assert langs == sorted(["ja", "en", "pt", "zh", "vi", "fil"]), names
        for code in langs:
            f = "strings-%s.json" % code
            st, hd, b = call("GET", "/m/" + f, raw=True)
            with open(os.path.join(web, f), "rb") as fh:
                assert st == 200 and b == fh.read(), (f, st)
            assert "json" in hd["Content-Type"], (f, hd)
        ja = json.loads(call("GET", "/m/strings-ja.json", raw=True)[2])
        for code in langs:
            s = json.loads(call("GET", "/m/strings-%s.json" % code,
                                raw=True)[2])
            assert set(s) == set(ja), (code, set(ja) ^ set(s))
        assert call("GET", "/m/strings-ko.json", raw=True)[0] == 404
        assert ja["save"] == "保存する" and ja["language"] == "言語"
        assert call("GET", "/m/index.php", raw=True)[0] == 404
        js = call("GET", "/m/mypage.js", raw=True)[2].decode()
        assert "innerHTML" not in js and "insertAdjacentHTML" not in js

    with tap.check("[2] /m/view: school, child, masked channel, order, "
                   "language, categories, the child's messages"):
        st, v = view(tok_mom)
        assert st == 200, (st, v)
        assert v["school"] == T and v["child"] == "山田 一郎", v
        assert v["channels"] == [{"channel": "email", "stopped": False,
                                  "address": v["channels"][0]["address"]}], v
        addr = v["channels"][0]["address"]
        assert addr.endswith("@example.jp") and MOM1 not in addr, addr
        assert v["order"] == ["email"] and v["language"] == "ja", v
        # the translations a guardian may choose to receive
        assert v["languages"] == ["ja", "en", "pt", "zh", "vi", "fil"], v
        cats = {c["name"]: c for c in v["categories"]}
        assert cats["emergency"]["emergency"] and cats["緊急連絡"]["emergency"]
        assert not cats["行事"]["emergency"] and not cats["行事"]["off"]
        assert v["contacts"] == [{"via": "email", "address": addr}], v
        assert v["passcode"] is True
        subj = [m["subject"] for m in v["messages"]]
        assert subj == ["遠足のお知らせ"], subj
        m = v["messages"][0]
        assert m["category"] == "行事" and m["body"] == "本文: 遠足のお知らせ"
        assert abs(m["created_ms"] - time.time() * 1000) < 600000, m
        st, v2 = view(tok_other)
        assert st == 200 and v2["school"] == T2 and \
            [x["subject"] for x in v2["messages"]] == ["梅のお知らせ"], v2
        assert DAD1 not in json.dumps(view(tok_dad)[1])
        # A prefecture's other schools send a lot: 450 broadcasts newer
        # than this one in bcs (every tenant's index) do not hide it (the
        # page reads the school's own index, tbcs:<tenant>).
        now = int(time.time() * 1000)
        others = ["b-other-%03d" % i for i in range(450)]
        r.call("ZADD", k.prefix + "bcs",
               *[x for i, o in enumerate(others) for x in (now + i, o)])
        st, v3 = view(tok_mom)
        r.call("ZREM", k.prefix + "bcs", *others)
        assert st == 200 and [m["subject"] for m in v3["messages"]] == \
            ["遠足のお知らせ"], v3["messages"]

    with tap.check("[3] tokens: none, forged, another child, expired, "
                   "another use, a guardian removed: 401"):
        now = int(time.time() * 1000)
        ei = bindex("email", MOM1)
        assert call("POST", "/m/view", {})[0] == 401
        assert call("POST", "/m/view", {"t": 5})[0] == 401
        forged = tok_mom[:-1] + ("0" if tok_mom[-1] != "0" else "1")
        st, e = view(forged)
        assert st == 401 and e["expired"] is False, (st, e)
        p, mac = tok_mom.split(".")
        plain = base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)).decode()
        other = plain.replace("|s-1|", "|s-2|")
        st, e = view(base64.urlsafe_b64encode(other.encode()).rstrip(b"=")
                     .decode() + "." + mac)
        assert st == 401 and e["expired"] is False, (st, e)
        # another tenant's token names its own tenant: T2's child only
        plain2 = plain.replace("|%s|" % T, "|%s|" % T2)
        st, e = view(base64.urlsafe_b64encode(plain2.encode()).rstrip(b"=")
                     .decode() + "." + mac)
        assert st == 401, (st, e)
        st, e = view(make_token("m", T, "s-1", ei, now - 1000))
        assert st == 401 and e["expired"] is True, (st, e)
        assert view(make_token("m", T, "s-1", ei, now + 60000))[0] == 200
        assert view(make_token("u", T, "s-1", ei, now + 60000, "行事"))[0] \
            == 401
        assert view(make_token("m", T, "s-2", ei, now + 60000))[0] == 401
        assert view(make_token("m", T, "s-1", bindex("email", "x@y.jp"),
                               now + 60000))[0] == 401
        assert call("POST", "/m/view", {"t": tok_mom}, raw=True)[0] == 200
        st, e = call("POST", "/m/save", {"t": forged, "lg": "en"})
        assert st == 401 and "pf" not in record("s-1"), (st, e)

    with tap.check("[4] language, order, opt-out and in: the link is "
                   "enough; the other guardian untouched; bad values 400"):
        st, j = save(tok_dad, lg="en", ch=["email"], ox=["行事"])
        assert st == 200 and j["saved"] and \
            sorted(j["changed"]) == ["ch", "lg", "ox"], (st, j)
        rec = record("s-1")
        assert rec["g"][0]["pf"]["lg"] == "en" and \
            rec["g"][0]["pf"]["ox"] == ["行事"], rec
        assert "pf" not in rec, rec
        st, v = view(tok_dad)
        assert v["language"] == "en" and \
            {c["name"]: c["off"] for c in v["categories"]}["行事"], v
        st, j = save(tok_dad, lg="en", ox=[])
        assert st == 200 and j["changed"] == ["ox"], (st, j)
        assert "ox" not in record("s-1")["g"][0]["pf"]
        st, j = save(tok_dad, lg="en")
        assert st == 200 and j["changed"] == [], (st, j)
        # a language the page has no strings for: saved all the same (it
        # picks the broadcasts' translation), then back to English
        st, j = save(tok_dad, lg="pt")
        assert st == 200 and j["changed"] == ["lg"], (st, j)
        assert record("s-1")["g"][0]["pf"]["lg"] == "pt"
        st, j = save(tok_dad, lg="en")
        assert st == 200 and j["changed"] == ["lg"], (st, j)
        for bad, field in (({"ox": ["emergency"]}, "ox"),
                           ({"ox": ["緊急連絡"]}, "ox"),
                           ({"ox": ["部活"]}, "ox"),
                           ({"ox": ["a\nb"]}, "ox"),
                           ({"lg": "EN!"}, "lg"),
                           ({"ch": ["fax"]}, "ch"),
                           ({"ch": ["email", "email"]}, "ch"),
                           ({"xc": "email"}, "xc")):
            st, e = save(tok_dad, **bad)
            assert st == 400 and e["field"] == field, (bad, st, e)
        st, e = save(tok_dad)
        assert st == 400, (st, e)
        st, v = view(tok_dad)
        assert {c["name"]: c["off"] for c in v["categories"]}["緊急連絡"] \
            is False

    with tap.check("[5] stopping a channel needs a code to the guardian's "
                   "own contact (or the passcode); 5 wrong void it"):
        st, e = save(tok_mom, xc=["email"])
        assert st == 403 and e["need_code"] and e["field"] == "code", (st, e)
        assert "pf" not in record("s-1")
        st, e = call("POST", "/m/code", {"t": tok_mom, "via": "fax"})
        assert st == 400 and e["field"] == "via", (st, e)
        st, e = call("POST", "/m/code", {"t": tok_mom, "via": "line"})
        assert st == 400 and e["field"] == "via", (st, e)
        st, e = call("POST", "/m/code", {"t": tok_mom, "via": "email"})
        assert st == 202 and e["sent"].endswith("@example.jp") and \
            MOM1 not in e["sent"], (st, e)
        code = re.search(r"^([0-9]{6})\r?$",
                         wait_text(MOM1, "【連絡網】確認コード")[0],
                         re.M).group(1)
        assert texts(DAD1).count(("【連絡網】確認コード",)) == 0
        wrong = "%06d" % ((int(code) + 1) % 1000000)
        st, e = save(tok_mom, xc=["email"], code=wrong)
        assert st == 403 and e["field"] == "code", (st, e)
        # the father cannot use the mother's code
        st, e = save(tok_dad, xc=["email"], code=code)
        assert st == 403, (st, e)
        st, j = save(tok_mom, xc=["email"], code=code)
        assert st == 200 and j["changed"] == ["xc"], (st, j)
        assert record("s-1")["pf"]["xc"] == ["email"]
        st, v = view(tok_mom)
        assert v["channels"][0]["stopped"] is True, v
        # opting in again needs no code; stopping again needs a new one
        st, j = save(tok_mom, xc=[])
        assert st == 200 and "xc" not in record("s-1")["pf"], (st, j)
        st, e = save(tok_mom, xc=["email"], code=code)
        assert st == 403, (st, e)
        # five tries: five wrong codes void the code, even the right one
        call("POST", "/m/code", {"t": tok_mom, "via": "email"})
        code2 = re.search(r"^([0-9]{6})\r?$",
                          wait_text(MOM1, "【連絡網】確認コード", 2)[-1],
                          re.M).group(1)
        for _ in range(5):
            assert save(tok_mom, xc=["email"], code="000000" if code2 !=
                        "000000" else "111111")[0] == 403
        st, e = save(tok_mom, xc=["email"], code=code2)
        assert st == 429 and e["code"] == "code_wait", (st, e)
        assert "xc" not in record("s-1")["pf"]
        # the sheet's passcode: wrong is refused, right saves (mother of s-2)
        tok2 = token_of(wait_text(MOM2, "B組だけ")[0])
        st, e = save(tok2, xc=["email"], passcode="3333-3333-3333")
        assert st == 403 and e["field"] == "passcode", (st, e)
        st, j = save(tok2, xc=["email"],
                     passcode=sheets["s-2"][1].lower().replace("-", " "))
        assert st == 200 and j["changed"] == ["xc"], (st, j)
        assert record("s-2")["pf"]["xc"] == ["email"]
        # another child's sheet passcode does not count
        st, e = save(tok_dad, xc=["email"], passcode=sheets["s-2"][1])
        assert st == 403, (st, e)
        # tries sent at once are counted before they are judged: of 20
        # parallel wrong passcodes at most 5 (with the 2 above) are judged
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(20) as ex:
            got = list(ex.map(lambda _: save(
                tok_dad, xc=["email"], passcode="3333-3333-3333")[0],
                range(20)))
        assert got.count(403) <= 3 and got.count(429) >= 17 and \
            set(got) <= {403, 429}, got

    with tap.check("[6] the operation log: guardian.prefs with the fields, "
                   "never an address"):
        with open(os.path.join(k.dir, "audit", "operations.jsonl")) as f:
            ops = [json.loads(x) for x in f if x.strip()]
        pr = [o for o in ops if o.get("op") == "guardian.prefs"]
        assert len(pr) == 7, pr  # [4]: 4 changes (2 of the language), [5]: 3
        assert pr[0]["tenant"] == T and pr[0]["id"] == "s-1" and \
            sorted(pr[0]["fields"]) == ["ch", "lg", "ox"] and \
            pr[0]["via"] == "mypage", pr[0]
        text = json.dumps(ops, ensure_ascii=False)
        for a in (MOM1, DAD1, MOM2, "行事\"]", "\"en\""):
            assert a not in text, a

    with tap.check("[7] /m/link: one answer for all; a mail only to a "
                   "registered address; rate-limited"):
        sid = sheets["s-1"][0]
        before = len(texts(DAD1))
        a = call("POST", "/m/link", {"id": sid, "email": DAD1.upper()},
                 ip="198.51.100.1")
        b = call("POST", "/m/link", {"id": sid, "email": "nobody@example.jp"},
                 ip="198.51.100.2")
        c = call("POST", "/m/link", {"id": "XXXXXXXX", "email": DAD1},
                 ip="198.51.100.3")
        d2 = call("POST", "/m/link", {"id": sheets["s-2"][0], "email": DAD1},
                  ip="198.51.100.3")
        assert a == b == c == d2 and a[0] == 202, (a, b, c, d2)
        body = wait_text(DAD1, "【連絡網】マイページへのリンク")[0]
        st, v = view(token_of(body))
        assert st == 200 and v["child"] == "山田 一郎" and \
            v["language"] == "en", v
        assert [s for s, _ in texts("nobody@example.jp")] == []
        # only one link mail (the unknown ID and s-2 sent none)
        d.wait_output("my-page link queued", 10)
        assert len([s for s, _ in texts(DAD1)
                    if s == "【連絡網】マイページへのリンク"]) == 1
        assert DAD1 not in d.stderr_text()
        # three per address and hour, whatever the ID (a, c, d2 above;
        # the upper case is the same address)
        st, e = call("POST", "/m/link", {"id": sid, "email": DAD1},
                     ip="198.51.100.5", raw=True)[:2]
        assert st == 429 and e["Retry-After"] == "3600", st
        # five per sheet ID (d2 above was one)
        for i in range(4):
            assert call("POST", "/m/link", {"id": sheets["s-2"][0],
                                            "email": "p%d@example.jp" % i},
                        ip="198.51.100.6")[0] == 202
        st, e = call("POST", "/m/link", {"id": sheets["s-2"][0],
                                         "email": "q@example.jp"},
                     ip="198.51.100.7")
        assert st == 429 and e["code"] == "link_hour", (st, e)
        st, e = call("POST", "/m/link", {"id": sid, "email": "no-at"})
        assert st == 400 and e["field"] == "email", (st, e)
        assert before < len(texts(DAD1))

    with tap.check("[8] the keys it keeps expire by themselves; no address "
                   "in clear in Redis"):
        keys = [x.decode() for x in r.call("KEYS", k.prefix + "mp*")]
        kinds = {x[len(k.prefix):].split(":")[0] for x in keys}
        assert kinds >= {"mpn", "mpl"}, kinds
        for x in keys:
            ttl = r.call("PTTL", x)
            assert 0 < ttl <= 3600000, (x, ttl)
        for x in r.call("KEYS", "*"):
            t = r.call("TYPE", x)
            t = t.decode() if isinstance(t, bytes) else t
            dump = r.call("DUMP", x) or b""
            for a in (MOM1, DAD1, MOM2):
                assert a.encode() not in dump, (x, a)

    with tap.check("[9] LINE: the generic /m at the foot of a directory "
                   "child's message; none for inline recipients"):
        bid = k.submit({"tenant": T, "subject": "C組へ", "body": "LINEの本文",
                        "channels": ["line"],
                        "audience": {"groups": ["1年C組"]}})
        k.wait_done(bid, 60)
        reqs = [q for q in line.requests() if LINE_A in q["to"]]
        assert len(reqs) == 1 and LINE_B in reqs[0]["to"], reqs
        texts_ = [m["text"] for m in reqs[0]["messages"]]
        assert texts_[0] == "C組へ" and texts_[-1].startswith("LINEの本文"), \
            texts_
        assert texts_[-1].rstrip().endswith(base + "/m") and \
            "マイページ" in texts_[-1] and "#t=" not in texts_[-1], texts_
        bid = k.submit({"tenant": T, "subject": "個別", "body": "インライン",
                        "channels": ["line", "email"],
                        "recipients": [{"id": "x-1", "line": LINE_C,
                                        "email": "inline@example.jp"}]})
        k.wait_done(bid, 60)
        reqs = [q for q in line.requests() if LINE_C in q["to"]]
        assert [m["text"] for m in reqs[0]["messages"]] == ["個別",
                                                           "インライン"], reqs
        body = wait_text("inline@example.jp", "個別")[0]
        assert "/m" not in body and "マイページ" not in body, body

    with tap.check("[10] a LINE-only guardian: the code by LINE, then "
                   "stopping LINE saves"):
        tok3 = make_token("m", T, "s-3", bindex("line", LINE_A),
                          int(time.time() * 1000) + 600000)
        st, v = view(tok3)
        assert st == 200 and v["contacts"] == [{"via": "line",
                                                "address": "LINE"}], v
        st, e = call("POST", "/m/code", {"t": tok3, "via": "email"})
        assert st == 400 and e["field"] == "via", (st, e)
        st, e = call("POST", "/m/code", {"t": tok3, "via": "line"})
        assert st == 202 and e["sent"] == "LINE", (st, e)

        def line_code():
            for q in line.requests():
                if q["to"] == LINE_A or q["to"] == [LINE_A]:
                    for m in q["messages"]:
                        f = re.search(r"^([0-9]{6})$", m["text"], re.M)
                        if f:
                            return f.group(1)
            return None
        code = wait_for(line_code, 30, 0.1, what="the code by LINE")
        st, j = save(tok3, xc=["line"], code=code)
        assert st == 200 and record("s-3")["pf"]["xc"] == ["line"], (st, j)

    d.stop()
tap.done()
