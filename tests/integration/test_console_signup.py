#!/usr/bin/python3
"""test_console_signup.py - the console's 名簿 for guardians signing up
(issue 15) over real HTTP: registration sheets, 未登録, the reminder, and
class lists without contacts.

One redis-server, the fake SMTP server, one kairand ([http] on a free
port, retention.audit_dir in the test's directory), tokens made with
kairanctl token create and one staff session (kairanctl staff add).

  [1] a class list with students without any contact (one with only a
      phone, one with nothing) and an inactive one: the dry run answers
      no_contact 2, the import writes all five; kairanctl import says
      "連絡先なし 2 名: 登録用紙を配ってください".
  [2] POST /v1/directory/sheets: the printable page (text/html, its own
      CSP: default-src 'none', its style by hash, no script), one
      <section class="sheet"> per active student (4; the inactive one
      none), X-Kairan-Issued 4; op-log line recipients.sheets (via http,
      no passcode); each passcode opens /r/start.
  [3] a second call skips the live ones (issued 0, skipped 4); reissue
      of one group as CSV (id, name, url, passcode, ...): 2 new sheets,
      the old passcode of that group no longer works, the new one does.
  [4] who may: no token 401, a sender 403, a limited_admin 200; another
      tenant's admin gets its own students only (never this tenant's);
      an admin session needs the CSRF header (403 without); bad bodies
      400 naming the field, an unknown group 404.
  [5] GET /v1/directory/unregistered: per class counts and the students
      with the channels the school holds (same as kairanctl recipients
      unregistered), ?group=; after one family registers through /r its
      student leaves the list.
  [6] POST /v1/directory/remind: the dry run counts (sent 1, no_contact
      2) and sends nothing; the real one is a normal broadcast (category
      notice, the staff member as sender) that reaches only the
      unregistered student's imported address, with the school's name
      and <public_url>/r; op-log line recipients.remind; a sender 403;
      kairanctl recipients remind --dry-run says the same counts.
  [7] students without contacts downstream: a broadcast to their group
      ends (the one with an address gets it), its report lists the
      contactless one first (NO CONTACT, to phone), export lists them, the
      console's card reads them.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_console_signup.py
"""

import csv
import email
import email.policy
import io
import json
import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("console-signup")
AUDIT = os.path.join(out, "audit")
T = "sakura-es"
P = "kairan:"
CLASS = "\r\n".join([
    "ID,氏名,クラス,グループ,保護者氏名,メール,電話番号,有効",
    "s-1,山田 一郎,1-A,1年A組,山田 花子,mama1@example.jp,,1",
    "s-2,田中 二郎,1-A,1年A組,,,090-0000-0002,1",
    "s-3,佐藤 三郎,1-B,1年B組,,papa3@example.jp,,1",
    "s-4,鈴木 四郎,1-B,1年B組,,,,1",
    "s-5,高橋 五郎,1-B,1年B組,,gone5@example.jp,,0",
]) + "\r\n"
MOMO = "ID,氏名,クラス,メール\r\nm-1,桃 太郎,1-A,momo1@example.jp\r\n"


def request(method, path, token=None, body=None, ctype=None, headers=None):
    """harness.http_request to this test's kairand (port)."""
    return http_request(port, method, path, body, headers, token=token,
                        ctype=ctype, timeout=60)


class Session(StaffSession):
    """A browser-like client of this test's kairand: one cookie, the CSRF
    token, our Origin (harness.StaffSession)."""

    def __init__(self):
        super().__init__(port, timeout=60)


def read_audit(op):
    try:
        with open(os.path.join(AUDIT, "operations.jsonl")) as f:
            return [json.loads(l) for l in f
                    if l.strip() and json.loads(l).get("op") == op]
    except FileNotFoundError:
        return []


SECTION = re.compile(
    r'<section class="sheet">.*?児童・生徒: ([^<（]+).*?<dt>ID</dt><dd>([^<]+)'
    r'</dd><dt>パスコード</dt><dd>([^<]+)</dd>', re.S)


def sheets_of(html):
    """{student name: (ID, passcode)} of a sheets page."""
    return {m.group(1): (m.group(2), m.group(3))
            for m in SECTION.finditer(html)}


def start(sheet):
    return request("POST", "/r/start", None,
                   {"id": sheet[0], "passcode": sheet[1]})


def mails_to(addr):
    return [m for m in smtp.messages() if addr in m["rcpt"]]


def text_of(msg):
    m = email.message_from_string(msg["data"], policy=email.policy.default)
    return str(m["Subject"]), m.get_body(("plain",)).get_content()


def register(sheet, addr):
    """One family registers its e-mail through /r (the verification link)."""
    r = start(sheet)
    assert r.status == 200, r
    ticket = r.json["ticket"]
    before = len(mails_to(addr))
    r = request("POST", "/r/email", None,
                {"ticket": ticket, "email": addr, "name": "山田 花子",
                 "relation": "母", "consent": True})
    assert r.status == 202, r
    msg = wait_for(lambda: (lambda L: L[-1] if len(L) > before else None)(
        mails_to(addr)), 30, 0.1, what="the verification mail")
    v = re.search(r"/r#v=([A-Za-z0-9_-]+)", text_of(msg)[1]).group(1)
    r = request("POST", "/r/verify", None, {"v": v})
    assert r.status == 200 and r.json.get("registered"), r


with Redis(out) as redis, FakeSMTP(out) as smtp:
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    k = Kairan(out, redis, smtp=smtp,
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "rate": "100000", "public_url": base},
                     "retention": {"audit_dir": AUDIT}})

    def token(role, name, tenant, groups=None):
        args = ["token", "create", "--role", role, "--name", name,
                "--tenant", tenant]
        if groups:
            args += ["--groups", groups]
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.strip()

    ADMIN = token("admin", "事務室", T)
    LIMITED = token("limited_admin", "教頭", T)
    SENDER = token("sender", "担任", T, "1年A組")
    OTHER = token("admin", "momo office", "momo")
    d = k.start()
    d.wait_output('"listening"', 15)

    # ---- [1] ----
    with tap.check("[1] students without contacts: dry run no_contact 2, "
                   "all five written"):
        r = request("POST", "/v1/directory/import?dry_run=1", ADMIN, CLASS,
                    "text/csv")
        assert r.status == 200, r
        assert r.json["added"] == 5 and r.json["skipped"] == 0, r
        assert r.json["no_contact"] == 2 and r.json["bad_rows"] == [], r
        r = request("POST", "/v1/directory/import", ADMIN, CLASS, "text/csv")
        assert r.status == 200 and r.json["written"] is True, r
        assert r.json["added"] == 5 and r.json["no_contact"] == 2, r
        r = request("POST", "/v1/directory/import", OTHER, MOMO, "text/csv")
        assert r.status == 200 and r.json["no_contact"] == 0, r

    with tap.check("[1] kairanctl import: 連絡先なし 2 名 on stderr"):
        path = os.path.join(out, "1nen.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write(CLASS)
        cp = k.ctl("recipients", "import", "--tenant", T, path)
        assert cp.returncode == 0, cp.stderr
        assert "unchanged 5" in cp.stdout, cp.stdout
        assert "連絡先なし 2 名: 登録用紙を配ってください" in cp.stderr, cp.stderr

    # ---- [2] ----
    with tap.check("[2] sheets: printable page, own CSP, one page per "
                   "active student"):
        r = request("POST", "/v1/directory/sheets", ADMIN, {})
        assert r.status == 200, r
        assert r.h("content-type").startswith("text/html"), r.headers
        csp = r.h("content-security-policy")
        assert "default-src 'none'" in csp and "style-src 'sha256-" in csp, csp
        assert "script" not in csp and "unsafe" not in csp, csp
        assert "attachment" in r.h("content-disposition"), r.headers
        assert (r.h("x-kairan-issued"), r.h("x-kairan-skipped")) == ("4", "0")
        html = r.body
        assert html.count('<section class="sheet">') == 4, html[:300]
        assert "<script" not in html.lower()
        first = sheets_of(html)
        assert sorted(first) == ["佐藤 三郎", "山田 一郎", "田中 二郎",
                                 "鈴木 四郎"], first
        assert "高橋" not in html  # inactive
        assert base + "/r?id=" + first["山田 一郎"][0] in html
        assert "<svg" in html

    with tap.check("[2] op-log recipients.sheets via http, no passcode; "
                   "the passcodes open /r"):
        lines = read_audit("recipients.sheets")
        assert len(lines) == 1, lines
        l = lines[0]
        assert l["tenant"] == T and l["via"] == "http", l
        assert l["issued"] == 4 and l["skipped"] == 0, l
        assert l["reissue"] is False and l["role"] == "admin", l
        text = json.dumps(l, ensure_ascii=False)
        for sid, pw in first.values():
            assert pw not in text and pw.replace("-", "") not in text
        for name in ("山田 一郎", "鈴木 四郎"):
            r = start(first[name])
            assert r.status == 200 and r.json.get("ticket"), (name, r)

    # ---- [3] ----
    with tap.check("[3] again: live sheets skipped; reissue of 1年B組 as "
                   "CSV voids the old passcodes"):
        r = request("POST", "/v1/directory/sheets", ADMIN, {})
        assert r.status == 200, r
        assert (r.h("x-kairan-issued"), r.h("x-kairan-skipped")) == ("0", "4")
        assert "<section" not in r.body
        r = request("POST", "/v1/directory/sheets", ADMIN,
                    {"group": "1年B組", "reissue": True, "format": "csv"})
        assert r.status == 200 and r.h("content-type").startswith("text/csv")
        assert r.h("x-kairan-issued") == "2", r.headers
        assert r.body.startswith("\ufeffid,"), r.body[:20]
        rows = list(csv.DictReader(io.StringIO(r.body[1:])))
        assert [x["student"] for x in rows] == ["s-3", "s-4"], rows
        assert list(rows[0])[:4] == ["id", "name", "url", "passcode"], rows[0]
        assert start(first["佐藤 三郎"]).status == 401
        new = {x["student"]: (x["id"], x["passcode"]) for x in rows}
        r = start(new["s-3"])
        assert r.status == 200 and r.json.get("ticket"), r
        lines = read_audit("recipients.sheets")
        assert lines[-1]["reissue"] is True and lines[-1]["group"] == "1年B組"

    # ---- [4] ----
    with tap.check("[4] who may: none 401, sender 403, limited_admin 200, "
                   "another tenant its own only"):
        assert request("POST", "/v1/directory/sheets", None, {}).status == 401
        assert request("POST", "/v1/directory/sheets", SENDER, {}).status == 403
        assert request("GET", "/v1/directory/unregistered",
                       SENDER).status == 403
        assert request("POST", "/v1/directory/remind", SENDER,
                       {"dry_run": True}).status == 403
        r = request("GET", "/v1/directory/unregistered", LIMITED)
        assert r.status == 200 and r.json["unregistered"] == 4, r
        r = request("POST", "/v1/directory/sheets", OTHER, {})
        assert r.status == 200 and r.h("x-kairan-issued") == "1", r
        assert "桃 太郎" in r.body and "山田" not in r.body, r.body[:300]
        r = request("GET", "/v1/directory/unregistered", OTHER)
        assert [s["id"] for s in r.json["students"]] == ["m-1"], r
        r = request("POST", "/v1/directory/sheets", OTHER,
                    {"group": "1年A組"})
        assert r.status == 404 and r.json["field"] == "group", r
        r = request("GET", "/v1/directory/unregistered?group=1%E5%B9%B4A%E7%B5%84",
                    OTHER)
        assert r.status == 404, r

    with tap.check("[4] bad bodies 400 naming the field; unknown group 404"):
        for body, field in (({"format": "pdf"}, "format"),
                            ({"reissue": "yes"}, "reissue"),
                            ({"group": 3}, "group"),
                            ({"group": "a\nb"}, "group"),
                            ({"passcode": "x"}, "json")):
            r = request("POST", "/v1/directory/sheets", ADMIN, body)
            assert r.status == 400 and r.json["field"] == field, (body, r)
        r = request("POST", "/v1/directory/sheets", ADMIN, "x", "text/plain")
        assert r.status == 415, r
        r = request("POST", "/v1/directory/remind", ADMIN, {"dry_run": 1})
        assert r.status == 400 and r.json["field"] == "dry_run", r
        r = request("POST", "/v1/directory/sheets", ADMIN, {"group": "9-Z"})
        assert r.status == 404 and "9-Z" in r.json["error"], r
        r = request("GET", "/v1/directory/unregistered?group=9-Z", ADMIN)
        assert r.status == 404, r

    with tap.check("[4] an admin session: CSRF header required for sheets"):
        cp = k.ctl("staff", "add", "--tenant", T, "--login", "kocho",
                   "--name", "校長", "--role", "admin")
        assert cp.returncode == 0, cp.stderr
        pw = cp.stdout.rstrip("\n").split("\n")[-1]
        s = Session()
        r = s.call("POST", "/v1/session", {"tenant": T, "login": "kocho",
                                           "password": pw})
        assert r.status == 200, r
        r = s.call("POST", "/v1/session/password",
                   {"current": pw, "new": "atarashii pasuwado kocho"})
        assert r.status == 200, r
        r = s.call("POST", "/v1/directory/sheets", {}, csrf=False)
        assert r.status == 403, r
        r = s.call("POST", "/v1/directory/sheets", {})
        assert r.status == 200 and r.h("x-kairan-skipped") == "4", r
        r = s.call("GET", "/v1/directory/unregistered", csrf=False)
        assert r.status == 200, r

    # ---- [5] ----
    with tap.check("[5] 未登録 per class, with the channels the school holds"):
        r = request("GET", "/v1/directory/unregistered", ADMIN)
        assert r.status == 200, r
        j = r.json
        assert (j["active"], j["unregistered"], j["no_contact"]) == (4, 4, 2), j
        assert j["classes"] == [{"class": "1-A", "unregistered": 2},
                                {"class": "1-B", "unregistered": 2}], j
        got = [(s["class"], s["id"], s["name"], s["channels"])
               for s in j["students"]]
        assert got == [("1-A", "s-1", "山田 一郎", ["email"]),
                       ("1-A", "s-2", "田中 二郎", []),
                       ("1-B", "s-3", "佐藤 三郎", ["email"]),
                       ("1-B", "s-4", "鈴木 四郎", [])], got
        cp = k.ctl("recipients", "unregistered", "--tenant", T)
        assert cp.returncode == 0, cp.stderr
        assert [l.split("\t")[1] for l in cp.stdout.splitlines()] == \
            [s["id"] for s in j["students"]], cp.stdout
        r = request("GET", "/v1/directory/unregistered?group=" +
                    urllib.parse.quote("1年B組"), ADMIN)
        assert r.status == 200 and r.json["unregistered"] == 2, r
        assert r.json["group"] == "1年B組", r

    with tap.check("[5] a family registers through /r: it leaves the list"):
        register(first["山田 一郎"], "yamada.mama@example.jp")
        r = request("GET", "/v1/directory/unregistered", ADMIN)
        assert r.json["unregistered"] == 3, r
        assert r.json["classes"][0] == {"class": "1-A", "unregistered": 1}, r
        assert "s-1" not in [s["id"] for s in r.json["students"]], r

    # ---- [6] ----
    def broadcasts():
        """The broadcasts stored (their hashes; an earlier broadcast still
        finishing may add its :r or :gs keys meanwhile, in any order)."""
        return {x for x in redis.call("KEYS", P + "bc:*")
                if b":" not in x[len(P + "bc:"):]}

    with tap.check("[6] remind dry run: counts, nothing sent"):
        bcs = broadcasts()
        r = request("POST", "/v1/directory/remind", ADMIN, {"dry_run": True})
        assert r.status == 200, r
        j = r.json
        assert (j["dry_run"], j["unregistered"], j["sent"], j["no_contact"],
                j["id"]) == (True, 3, 1, 2, None), j
        cp = k.ctl("recipients", "remind", "--tenant", T, "--dry-run")
        assert cp.returncode == 0 and cp.stdout == "", cp
        assert "1 would get the reminder, 2 without a contact" in cp.stderr, \
            cp.stderr
        assert broadcasts() == bcs
        assert not read_audit("recipients.remind")

    with tap.check("[6] remind: one broadcast, only the unregistered "
                   "student's imported address"):
        n0 = len(smtp.messages())
        r = request("POST", "/v1/directory/remind", ADMIN, {})
        assert r.status == 202, r
        j = r.json
        assert (j["sent"], j["no_contact"], j["dry_run"]) == (1, 2, False), j
        bid = j["id"]
        h = k.wait_done(bid, 60)
        assert h["category"] == "notice" and h["sender"] == "事務室", h
        msgs = smtp.messages()[n0:]
        assert [m["rcpt"] for m in msgs] == [["papa3@example.jp"]], msgs
        subject, body = text_of(msgs[0])
        assert "登録のお願い" in subject and T in subject, subject
        assert base + "/r" in body and T in body, body
        assert "学校にお知らせください" in body, body
        lines = read_audit("recipients.remind")
        assert len(lines) == 1, lines
        l = lines[0]
        assert (l["broadcast"], l["sent"], l["no_contact"], l["via"]) == \
            (bid, 1, 2, "http"), l
        r = request("GET", "/v1/broadcasts/" + bid, ADMIN)
        assert r.status == 200, r

    # ---- [7] ----
    with tap.check("[7] contactless students downstream: broadcast ends, "
                   "export and card read them"):
        n0 = len(smtp.messages())
        bid = k.submit({"tenant": T, "category": "notice",
                        "subject": "保護者会のお知らせ", "body": "本文",
                        "channels": ["email", "line", "push"],
                        "audience": {"groups": ["1年B組"]}})
        h = k.wait_done(bid, 60)
        assert h["status"] != "rejected", h
        msgs = smtp.messages()[n0:]
        assert [m["rcpt"] for m in msgs] == [["papa3@example.jp"]], msgs
        cp = k.ctl("report", bid)
        assert cp.returncode == 0, cp.stderr
        lines = [x for x in cp.stdout.splitlines() if x.startswith("  s-")]
        assert lines and lines[0].split()[0] == "s-4", cp.stdout
        assert "NO CONTACT" in lines[0], lines
        for fmt in ("json", "html"):
            cp = k.ctl("report", bid, "--format", fmt)
            assert cp.returncode == 0 and "s-4" in cp.stdout, (fmt, cp.stderr)
        cp = k.ctl("recipients", "export", "--tenant", T)
        assert cp.returncode == 0, cp.stderr
        ids = [row["id"] for row in csv.DictReader(io.StringIO(cp.stdout))]
        assert "s-4" in ids and "s-2" in ids, ids
        r = request("GET", "/v1/directory/s-4", ADMIN)
        assert r.status == 200 and r.json["name"] == "鈴木 四郎", r

    with tap.check("no passcode, name or address in kairand's log"):
        log = d.stderr_text()
        for sid, pw in list(first.values()) + list(new.values()):
            assert pw not in log and pw.replace("-", "") not in log, pw
        for plain in ("山田", "鈴木", "papa3@example.jp", "mama1@example.jp"):
            assert plain not in log, plain

    d.stop()

tap.done()
