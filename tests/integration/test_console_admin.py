#!/usr/bin/python3
"""test_console_admin.py - the console's 名簿 endpoints over real HTTP
(issue 14): POST /v1/directory/import; and of 職員: /v1/staff and
/v1/logs.

One redis-server, one kairand (outbox adapter, [http] on a free port,
retention.audit_dir in the test's directory), tokens made with kairanctl
token create and one staff session (kairanctl staff add).

  [1] a class list with Japanese group names and an extra column (備考):
      the dry run answers 422 naming the unknown column and writes
      nothing; with ignore_column=備考 (or ignore_unknown=1) it counts
      added 3 and still writes nothing; the apply writes 3 (names sealed:
      no plaintext name in any Redis value), one operation-log line
      recipients.import (tenant, counts, via http); the same file again is
      unchanged 3; a CP932 file (Excel's Japanese) reads the same.
  [2] hostile cells: a control character, a line break from Alt+Enter, a
      bad address (masked in the answer), a bad id and a script-like name
      (stored as text, answered only as JSON): every bad row with its line
      and reason; the apply without skip_bad is 422 and writes nothing,
      with skip_bad=1 writes the good rows; a formula-like cell ("=1+1")
      is a value like any other; more than 20 bad rows are counted, not
      listed.
  [3] replace=1: the dry run counts deleted, the apply deletes.
  [4] who may: no token 401, a sender 403 (token and session), a
      limited_admin 200, an admin session of the tenant 200 (with its
      CSRF token; without it 403); another tenant's admin imports into its
      own tenant only and never sees or changes this one's records.
  [5] limits and bad requests: a body over http.max_body 413 before it is
      read, a JSON body 415, an empty body 400, dry_run=yes 400, 65
      ignore_column 400, an ignore_column that is not UTF-8 400.
  [6] staff: the list (no hash; another tenant's admin sees none; a
      sender 403), add (201, the initial password once, never in a log;
      it logs in), bad input 400 naming the field, a taken login 409,
      limited_admin 403 on changes; groups, role, reset, deactivate (its
      sessions end) each with its op-log line; no self lock-out (409), the
      last admin keeps its role.
  [7] logs: operations and logins of this tenant only, by date and
      person, paged with next_cursor (every line once), a forged cursor
      and bad parameters 400.
  [8] one student: GET (names unsealed, guardians by channel, never an
      address; another tenant 404, a sender 403), PATCH name, class,
      groups, active, one guardian's active (op-log line recipients.edit,
      bad input 400 naming the field; a gaiji in a name, class, group or
      guardian's name: 400 code gaiji, Japanese first, its place and the
      text with 〓; 髙﨑 kept); a broadcast then reaches the active
      guardian only, and never the deactivated student.
  [10] one guardian's contacts (PATCH guardians[{index, name, email,
      phone}]): checked as the import checks them (a bad address 400
      naming guardians.email, CR/LF refused, a bad phone, LINE ids not
      editable), another tenant 404; sealed as the import stores them (no
      plaintext in any Redis value, the blind index moved), the op-log
      line names the fields, never the values; GET shows the address
      masked.  A suppressed address (supp:<tenant>, issue 18) shows on the
      card with its reason and ref; DELETE /v1/suppressions/{ref} clears
      it (limited_admin; another tenant and a sender cannot; op-log line
      suppression.clear); a new address is not suppressed and a broadcast
      reaches it, never the old one.
  [9] a school-sized file (2,000 rows, under http.max_body here): dry run, apply, the same again
      unchanged; the times are printed, never asserted.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_console_admin.py
"""

import json
import os
import re
import socket
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("console-admin")
AUDIT = os.path.join(out, "audit")
MAX_BODY = 200000
P = "kairan:"


def request(port, method, path, token=None, body=None, ctype="text/csv",
            headers=None):
    """harness.http_request; a str body as UTF-8 with Content-Type ctype."""
    return http_request(port, method, path, body, headers, token=token, ctype=ctype)


class Session(StaffSession):
    """A browser-like client: one cookie, the CSRF token, our Origin
    (harness.StaffSession); a str body is sent with Content-Type ctype
    (none when None), anything else as JSON."""

    def call(self, method, path, body=None, ctype=None, csrf=True):
        return super().call(method, path, body, ctype=ctype, csrf=csrf)


def read_audit(name):
    try:
        with open(os.path.join(AUDIT, name)) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


ROSTER = ("ID,氏名,組,グループ,メールアドレス,備考\r\n"
          "s-1,山田 太郎,2年A組,2年A組;サッカー部,yamada.taro@example.jp,アレルギー\r\n"
          "s-2,鈴木 花子,2年A組,2年A組;吹奏楽部,hanako.suzuki@example.jp,\r\n"
          "s-3,佐藤 次郎,2年B組,2年B組;サッカー部,jiro.sato@example.jp,転入生\r\n")


def imp(port, tok, body, query="", ctype="text/csv"):
    return request(port, "POST", "/v1/directory/import" + query, tok, body,
                   ctype)


def rcpt_keys(tenant):
    return sorted(x.decode() for x in
                  redis.call("KEYS", P + "rcpt:%s:*" % tenant))


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "rate": "100000", "max_body": str(MAX_BODY),
                              "public_url": "http://127.0.0.1:%d" % port},
                     "retention": {"audit_dir": AUDIT}})

    def token(role, name, tenant, groups=None):
        args = ["token", "create", "--role", role, "--name", name,
                "--tenant", tenant]
        if groups:
            args += ["--groups", groups]
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.strip()

    ADMIN = token("admin", "事務室", "sakura")
    LIMITED = token("limited_admin", "教頭", "sakura")
    SENDER = token("sender", "担任", "sakura", "2年A組")
    OTHER = token("admin", "momo office", "momo")

    d = k.start()
    d.wait_output('"listening"', 15)

    # ---- [1] ----
    with tap.check("[1] dry run with an extra column: 422 naming it, nothing written"):
        r = imp(port, ADMIN, ROSTER, "?dry_run=1")
        assert r.status == 422, r
        assert r.json["unknown_columns"] == [{"name": "備考", "column": 6, "letter": "F"}], r
        assert "ignore_column" in r.json["error"], r
        assert r.json["written"] is False and r.json["header_problems"] == [], r
        assert rcpt_keys("sakura") == [], rcpt_keys("sakura")

    with tap.check("[1] dry run with ignore_column=備考: added 3, still nothing written"):
        q = "?dry_run=1&ignore_column=" + urllib.parse.quote("備考")
        r = imp(port, ADMIN, ROSTER, q)
        assert r.status == 200, r
        j = r.json
        assert (j["added"], j["updated"], j["unchanged"], j["deleted"],
                j["skipped"], j["rows"]) == (3, 0, 0, 0, 0, 3), j
        assert j["dry_run"] is True and j["written"] is False, j
        assert j["encoding"] == "UTF-8" and j["error"] is None, j
        assert rcpt_keys("sakura") == [], rcpt_keys("sakura")
        r = imp(port, ADMIN, ROSTER, "?dry_run=1&ignore_unknown=1")
        assert r.status == 200 and r.json["added"] == 3, r
        assert not [l for l in read_audit("operations.jsonl")
                    if l.get("op") == "recipients.import"]

    with tap.check("[1] apply: 3 written, names sealed, one operation-log line"):
        r = imp(port, ADMIN, ROSTER, "?ignore_column=" + urllib.parse.quote("備考"))
        assert r.status == 200, r
        assert r.json["written"] is True and r.json["added"] == 3, r
        assert rcpt_keys("sakura") == [P + "rcpt:sakura:s-%d" % i
                                       for i in (1, 2, 3)], rcpt_keys("sakura")
        h = redis.call("HGETALL", P + "rcpt:sakura:s-1")
        blob = b"".join(h)
        for plain in ("山田", "yamada.taro", "アレルギー"):
            assert plain.encode() not in blob, plain
        assert "2年A組;サッカー部".encode() in blob, blob
        lines = [l for l in read_audit("operations.jsonl")
                 if l.get("op") == "recipients.import"]
        assert len(lines) == 1, lines
        l = lines[0]
        assert l["tenant"] == "sakura" and l["added"] == 3 and l["via"] == "http", l
        assert l["actor"].startswith("token:") and l["role"] == "admin", l
        assert "山田" not in json.dumps(l, ensure_ascii=False), l

    with tap.check("[1] the same file again: unchanged 3; CP932 reads the same"):
        r = imp(port, ADMIN, ROSTER, "?ignore_unknown=1")
        assert r.status == 200 and r.json["unchanged"] == 3, r
        assert r.json["added"] == 0 and r.json["updated"] == 0, r
        r = imp(port, ADMIN, ROSTER.encode("cp932"), "?dry_run=1&ignore_unknown=1")
        assert r.status == 200 and r.json["encoding"] == "CP932", r
        assert r.json["unchanged"] == 3, r
        r = imp(port, ADMIN, ROSTER.replace("山田 太郎", "山田 太朗"),
                "?dry_run=1&ignore_unknown=1")
        assert r.status == 200 and r.json["updated"] == 1, r
        assert r.json["unchanged"] == 2, r

    # ---- [2] ----
    HOSTILE = ("id,name,groups,email\n"
               "h-1,<script>alert(1)</script>,<img src=x onerror=alert(1)>,ok1@example.jp\n"
               "h-2,ctl\x07char,2年A組,ok2@example.jp\n"
               "h-3,\"Alt\nEnter\",2年A組,ok3@example.jp\n"
               "h-4,bad mail,2年A組,not-an-address-secret@@example.jp\n"
               "h:5/../x,bad id,2年A組,ok5@example.jp\n"
               "h-6,=1+1,=HYPERLINK(\"http://evil\"),ok6@example.jp\n")

    with tap.check("[2] hostile cells: every bad row with its line and reason"):
        r = imp(port, ADMIN, HOSTILE, "?dry_run=1")
        assert r.status == 200, r
        bad = {b["line"]: b["reason"] for b in r.json["bad_rows"]}
        assert set(bad) == {3, 4, 6, 7}, bad
        assert "control character" in bad[3], bad
        assert "line break" in bad[4], bad
        assert "email" in bad[6] and "not-an-address-secret" not in r.body, bad
        assert "id" in bad[7], bad
        assert r.json["skipped"] == 4 and r.json["added"] == 2, r

    with tap.check("[2] apply without skip_bad: 422, nothing written; with skip_bad the good rows"):
        r = imp(port, ADMIN, HOSTILE)
        assert r.status == 422 and r.json["written"] is False, r
        assert "skip_bad" in r.json["error"], r
        assert not redis.call("EXISTS", P + "rcpt:sakura:h-1"), "written"
        r = imp(port, ADMIN, HOSTILE, "?skip_bad=1")
        assert r.status == 200 and r.json["added"] == 2, r
        assert r.json["skipped"] == 4 and r.json["written"] is True, r
        g = redis.call("HGET", P + "rcpt:sakura:h-6", "groups").decode()
        assert g == '=HYPERLINK("http://evil")', g  # a value, guarded on export
        g = redis.call("HGET", P + "rcpt:sakura:h-1", "groups").decode()
        assert g == "<img src=x onerror=alert(1)>", g

    with tap.check("[2] more than 20 bad rows: 20 listed, the rest counted"):
        many = "id,name,email\n" + "".join("m-%d,x,bad%d@@x\n" % (i, i)
                                           for i in range(30))
        r = imp(port, ADMIN, many, "?dry_run=1")
        assert r.status == 200, r
        assert len(r.json["bad_rows"]) == 20 and r.json["bad_rows_more"] == 10, r

    with tap.check("[2] a bad header (a column twice) and an empty file: 422 with the reason"):
        r = imp(port, ADMIN, "id,email,email\ns-1,a@example.jp,b@example.jp\n",
                "?dry_run=1")
        assert r.status == 422 and "twice" in r.json["header_problems"][0]["reason"], r
        r = imp(port, ADMIN, "\n\n", "?dry_run=1")
        assert r.status == 422 and "empty" in r.json["error"], r
        r = imp(port, ADMIN, b"id,name\n\xff\xfe\xfd,x\n", "?dry_run=1")
        assert r.status == 422 and r.json["decode_error"], r

    # ---- [3] ----
    with tap.check("[3] replace=1: the dry run counts deleted, the apply deletes"):
        two = ("ID,氏名,組,グループ,メールアドレス\n"
               "s-1,山田 太郎,2年A組,2年A組;サッカー部,yamada.taro@example.jp\n"
               "s-2,鈴木 花子,2年A組,2年A組;吹奏楽部,hanako.suzuki@example.jp\n")
        r = imp(port, ADMIN, two, "?dry_run=1&replace=1")
        assert r.status == 200 and r.json["deleted"] == 3, r  # s-3, h-1, h-6
        assert redis.call("EXISTS", P + "rcpt:sakura:s-3") == 1
        r = imp(port, ADMIN, two, "?replace=1")
        assert r.status == 200 and r.json["deleted"] == 3, r
        assert rcpt_keys("sakura") == [P + "rcpt:sakura:s-1",
                                       P + "rcpt:sakura:s-2"], rcpt_keys("sakura")
        r = imp(port, ADMIN, ROSTER, "?ignore_unknown=1")
        assert r.status == 200 and r.json["added"] == 1, r

    # ---- [4] ----
    with tap.check("[4] no token 401, a sender 403, a limited_admin 200"):
        r = imp(port, None, ROSTER, "?dry_run=1&ignore_unknown=1")
        assert r.status == 401, r
        r = imp(port, SENDER, ROSTER, "?dry_run=1&ignore_unknown=1")
        assert r.status == 403, r
        r = imp(port, LIMITED, ROSTER, "?dry_run=1&ignore_unknown=1")
        assert r.status == 200 and r.json["unchanged"] == 3, r

    with tap.check("[4] another tenant's admin imports into its own tenant only"):
        before = {x: redis.call("HGET", x, "hash") for x in rcpt_keys("sakura")}
        r = imp(port, OTHER, ROSTER, "?dry_run=1&ignore_unknown=1")
        assert r.status == 200 and r.json["added"] == 3, r  # sees nothing of sakura
        r = imp(port, OTHER, ROSTER.replace("山田", "山本"), "?ignore_unknown=1&replace=1")
        assert r.status == 200 and r.json["added"] == 3 and r.json["deleted"] == 0, r
        assert len(rcpt_keys("momo")) == 3
        after = {x: redis.call("HGET", x, "hash") for x in rcpt_keys("sakura")}
        assert before == after

    with tap.check("[4] sessions: an admin's session imports (CSRF required), a sender's is 403"):
        pw = {}
        for login, role, extra in (("kocho", "admin", []),
                                   ("tannin", "sender", ["--groups", "2年A組"])):
            cp = k.ctl("staff", "add", "--tenant", "sakura", "--login", login,
                       "--name", "先生", "--role", role, *extra)
            assert cp.returncode == 0, cp.stderr
            pw[login] = cp.stdout.rstrip("\n").split("\n")[-1]
        sess = {}
        for login in pw:
            s = Session(port)
            r = s.call("POST", "/v1/session", {"tenant": "sakura", "login": login,
                                                "password": pw[login]})
            assert r.status == 200, r
            r = s.call("POST", "/v1/session/password",
                       {"current": pw[login], "new": "atarashii pasuwado " + login})
            assert r.status == 200, r
            sess[login] = s
        s = sess["kocho"]
        r = s.call("POST", "/v1/directory/import?dry_run=1&ignore_unknown=1",
                   ROSTER, "text/csv")
        assert r.status == 200 and r.json["unchanged"] == 3, r
        r = s.call("POST", "/v1/directory/import?dry_run=1&ignore_unknown=1",
                   ROSTER, "text/csv", csrf=False)
        assert r.status == 403, r
        r = sess["tannin"].call("POST", "/v1/directory/import?dry_run=1",
                                ROSTER, "text/csv")
        assert r.status == 403, r

    # ---- [5] ----
    with tap.check("[5] a body over http.max_body: 413 before it is read"):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(("POST /v1/directory/import?dry_run=1 HTTP/1.1\r\n"
                   "Host: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: text/csv\r\nContent-Length: %d\r\n\r\n"
                   % (ADMIN, MAX_BODY + 1)).encode())
        head = s.recv(4096).decode("utf-8", "replace")
        s.close()
        assert head.startswith("HTTP/1.1 413"), head

    with tap.check("[5] JSON 415, empty 400, dry_run=yes 400, 65 ignore_column 400, bad UTF-8 400"):
        r = imp(port, ADMIN, '{"a":1}', "?dry_run=1", "application/json")
        assert r.status == 415, r
        r = imp(port, ADMIN, "", "?dry_run=1")
        assert r.status == 400 and "empty" in r.json["error"], r
        r = imp(port, ADMIN, ROSTER, "?dry_run=yes")
        assert r.status == 400, r
        q = "?dry_run=1" + "".join("&ignore_column=c%d" % i for i in range(65))
        r = imp(port, ADMIN, ROSTER, q)
        assert r.status == 400 and r.json["field"] == "ignore_column", r
        r = imp(port, ADMIN, ROSTER, "?dry_run=1&ignore_column=%ff")
        assert r.status == 400 and r.json["field"] == "ignore_column", r


    # ---- [6] staff admin ----
    def jcall(tok, method, path, body=None):
        return request(port, method, path, tok,
                       json.dumps(body, ensure_ascii=False) if body is not None else None,
                       "application/json")

    with tap.check("[6] GET /v1/staff: the tenant's accounts, no hash, another tenant sees none"):
        r = jcall(ADMIN, "GET", "/v1/staff")
        assert r.status == 200, r
        logins = [x["login"] for x in r.json["staff"]]
        assert logins == ["kocho", "tannin"], logins
        t = [x for x in r.json["staff"] if x["login"] == "tannin"][0]
        assert t["role"] == "sender" and t["groups"] == ["2年A組"], t
        assert t["state"] == "active", t
        assert "argon2" not in r.body and "hash" not in r.body, r
        r = jcall(OTHER, "GET", "/v1/staff")
        assert r.status == 200 and r.json["staff"] == [], r
        r = jcall(SENDER, "GET", "/v1/staff")
        assert r.status == 403, r
        r = jcall(LIMITED, "GET", "/v1/staff")
        assert r.status == 200, r

    with tap.check("[6] POST /v1/staff: 201 with the initial password once; it logs in"):
        r = jcall(ADMIN, "POST", "/v1/staff",
                  {"login": "jimu", "name": "<b>事務</b>", "role": "sender",
                   "groups": ["2年A組", "2年B組"]})
        assert r.status == 201, r
        pw = r.json["password"]
        assert re.fullmatch(r"[A-Za-z2-9]{20}", pw), r
        s = Session(port)
        r = s.call("POST", "/v1/session", {"tenant": "sakura", "login": "jimu",
                                            "password": pw})
        assert r.status == 200 and r.json["must_change_password"] is True, r
        r = jcall(ADMIN, "GET", "/v1/staff")
        j = [x for x in r.json["staff"] if x["login"] == "jimu"][0]
        assert j["name"] == "<b>事務</b>" and j["state"] == "new", j
        assert pw not in r.body
        lines = [l for l in read_audit("operations.jsonl")
                 if l.get("op") == "staff.add" and l.get("via") == "http"]
        assert len(lines) == 1 and lines[0]["login"] == "jimu", lines
        assert lines[0]["via"] == "http" and lines[0]["tenant"] == "sakura", lines
        assert pw not in open(os.path.join(AUDIT, "operations.jsonl")).read()
        assert pw not in d.stderr_text()

    with tap.check("[6] bad input 400 with the field (a gaiji in the name: code gaiji, its place); "
                   "a taken login 409; limited_admin 403"):
        for body, field in (({"login": "Bad Login", "name": "x", "role": "admin"}, "login"),
                            ({"login": "ok", "name": "", "role": "admin"}, "name"),
                            ({"login": "ok", "name": "a\u0007b", "role": "admin"}, "name"),
                            ({"login": "ok", "name": "x", "role": "root"}, "role"),
                            ({"login": "ok", "name": "x", "role": "sender"}, "groups"),
                            ({"login": "ok", "name": "x", "role": "admin", "groups": ["a"]}, "groups"),
                            ({"login": "ok", "name": "x", "role": "sender", "groups": ["a;b"]}, "groups")):
            r = jcall(ADMIN, "POST", "/v1/staff", body)
            assert r.status == 400 and r.json["field"] == field, (body, r)
        r = jcall(ADMIN, "POST", "/v1/staff", {"login": "ok", "name": "佐藤 \ue000郎", "role": "admin"})
        assert r.status == 400 and r.json["field"] == "name" and r.json["code"] == "gaiji" \
            and r.json["at"] == 4 and r.json["excerpt"] == "佐藤 〓郎" \
            and r.json["error"].startswith("氏名に外字（機種依存文字）"), r
        r = jcall(ADMIN, "POST", "/v1/staff", {"login": "jimu", "name": "x", "role": "admin"})
        assert r.status == 409, r
        r = jcall(LIMITED, "POST", "/v1/staff", {"login": "x2", "name": "x", "role": "admin"})
        assert r.status == 403, r
        r = request(port, "POST", "/v1/staff", ADMIN, "login=x", "application/x-www-form-urlencoded")
        assert r.status == 415, r

    with tap.check("[6] role, groups, reset, deactivate: answers, op-log lines, sessions end"):
        r = jcall(ADMIN, "POST", "/v1/staff/jimu/groups", {"groups": ["2年B組"]})
        assert r.status == 200 and r.json["groups"] == ["2年B組"], r
        r = jcall(ADMIN, "POST", "/v1/staff/jimu/role", {"role": "limited_admin"})
        assert r.status == 200 and r.json["role"] == "limited_admin", r
        r = jcall(ADMIN, "POST", "/v1/staff/jimu/groups", {"groups": ["2年B組"]})
        assert r.status == 409, r  # not a sender
        r = jcall(ADMIN, "POST", "/v1/staff/jimu/reset")
        assert r.status == 200 and re.fullmatch(r"[A-Za-z2-9]{20}", r.json["password"]), r
        s = sess["tannin"]
        r = s.call("GET", "/v1/broadcasts?active=1")
        assert r.status == 200, r
        r = jcall(ADMIN, "POST", "/v1/staff/tannin/deactivate")
        assert r.status == 200 and r.json["state"] == "deactivated", r
        r = s.call("GET", "/v1/broadcasts?active=1")
        assert r.status == 401, r
        ops = [l["op"] for l in read_audit("operations.jsonl")
               if l.get("op", "").startswith("staff.") and l.get("via") == "http"
               and l["op"] != "staff.password"]
        assert ops == ["staff.add", "staff.groups", "staff.role", "staff.reset",
                       "staff.deactivate"], ops
        r = jcall(ADMIN, "POST", "/v1/staff/nobody/reset")
        assert r.status == 404, r
        r = jcall(OTHER, "POST", "/v1/staff/jimu/reset")
        assert r.status == 404, r  # another tenant's admin: not found there

    with tap.check("[6] an admin cannot lock itself out (409); the last admin keeps its role"):
        s = sess["kocho"]
        r = s.call("POST", "/v1/staff/kocho/deactivate")
        assert r.status == 409 and "yourself" in r.json["error"], r
        r = s.call("POST", "/v1/staff/kocho/role", {"role": "sender", "groups": ["2年A組"]})
        assert r.status == 409, r
        r = jcall(ADMIN, "POST", "/v1/staff/kocho/role", {"role": "limited_admin"})
        assert r.status == 409 and "last active admin" in r.json["error"], r
        r = s.call("GET", "/v1/staff")
        assert r.status == 200, r  # still an admin, still logged in

    # ---- [7] logs ----
    with tap.check("[7] GET /v1/logs/operations: this tenant's lines only, by date and person"):
        r = jcall(ADMIN, "GET", "/v1/logs/operations")
        assert r.status == 200, r
        assert r.json["lines"] and all(l["tenant"] == "sakura" for l in r.json["lines"]), r
        assert r.json["next_cursor"] is None, r
        r = jcall(OTHER, "GET", "/v1/logs/operations")
        assert r.status == 200 and all(l["tenant"] == "momo" for l in r.json["lines"]), r
        assert r.json["lines"], r
        r = jcall(ADMIN, "GET", "/v1/logs/operations?person=jimu")
        assert r.status == 200 and {l["op"] for l in r.json["lines"]} >= {"staff.add"}, r
        assert all(l.get("login") == "jimu" for l in r.json["lines"]), r
        r = jcall(ADMIN, "GET", "/v1/logs/operations?from=2000-01-01&to=2000-12-31")
        assert r.status == 200 and r.json["lines"] == [], r
        today = read_audit("operations.jsonl")[-1]["time"][:10]
        r = jcall(ADMIN, "GET", "/v1/logs/operations?from=%s&to=%s" % (today, today))
        assert r.status == 200 and r.json["lines"], r

    with tap.check("[7] log reads at once (two schools, 16 requests): each "
                   "answered 200, or 503 with Retry-After when two are being "
                   "read already; the count is given back (reads go on after)"):
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(16) as ex:
            got = list(ex.map(lambda i: jcall(
                ADMIN if i % 2 else OTHER, "GET",
                "/v1/logs/logins?person=nobody"), range(16)))
        for r in got:
            assert r.status == 200 or (
                r.status == 503 and r.headers.get("retry-after") == ["1"] and
                "busy reading the logs" in r.json["error"]), r
        assert any(r.status == 200 for r in got), [r.status for r in got]
        for _ in range(3):  # one at a time: never refused
            assert jcall(ADMIN, "GET", "/v1/logs/operations").status == 200

    with tap.check("[7] paging: limit and next_cursor walk every line once; a forged cursor 400"):
        seen, cur = [], None
        for _ in range(100):
            r = jcall(ADMIN, "GET", "/v1/logs/operations?limit=2" +
                      ("&cursor=%d" % cur if cur is not None else ""))
            assert r.status == 200 and len(r.json["lines"]) <= 2, r
            seen += r.json["lines"]
            cur = r.json["next_cursor"]
            if cur is None:
                break
        allsak = [l for l in read_audit("operations.jsonl") if l.get("tenant") == "sakura"]
        assert seen == allsak, (len(seen), len(allsak))
        r = jcall(ADMIN, "GET", "/v1/logs/operations?cursor=5")
        assert r.status == 400, r
        for bad in ("from=2026-13", "to=x", "limit=0", "limit=501", "cursor=-1", "person="):
            r = jcall(ADMIN, "GET", "/v1/logs/operations?" + bad)
            assert r.status == 400, (bad, r)
        r = jcall(ADMIN, "GET", "/v1/logs/secrets")
        assert r.status == 404, r

    with tap.check("[7] GET /v1/logs/logins: logins of this tenant, a sender 403"):
        r = jcall(ADMIN, "GET", "/v1/logs/logins?person=kocho")
        assert r.status == 200 and r.json["lines"], r
        assert all(l["tenant"] == "sakura" and l["login"] == "kocho"
                   for l in r.json["lines"]), r
        r = jcall(SENDER, "GET", "/v1/logs/logins")
        assert r.status == 403, r


    # ---- [8] one student: GET / PATCH /v1/directory/{id} ----
    FAMILY = ("ID,氏名,組,グループ,メールアドレス,保護者氏名\n"
              "f-1,田中 一郎,2年C組,2年C組,mother@example.jp,田中 花\n"
              "f-1,,,,father@example.jp,田中 太\n"
              "f-2,<script>x</script>,2年C組,2年C組,sasaki@example.jp,\n")

    with tap.check("[8] GET /v1/directory/{id}: names unsealed, guardians by channel, no address"):
        r = imp(port, ADMIN, FAMILY)
        assert r.status == 200 and r.json["added"] == 2, r
        r = jcall(ADMIN, "GET", "/v1/directory/f-1")
        assert r.status == 200, r
        j = r.json
        assert j["name"] == "田中 一郎" and j["class"] == "2年C組" and j["active"] is True, j
        assert j["groups"] == ["2年C組"], j
        assert [(g["index"], g["name"], g["channels"], g["active"]) for g in j["guardians"]] == \
            [(0, "田中 花", ["email"], True), (1, "田中 太", ["email"], True)], j
        assert "example.jp" in r.body and "mother@" not in r.body and "father@" not in r.body, r
        assert [g["email"] for g in j["guardians"]] == ["m***@example.jp", "f***@example.jp"], j
        r = jcall(ADMIN, "GET", "/v1/directory/f-2")
        assert r.status == 200 and r.json["name"] == "<script>x</script>", r

    with tap.check("[8] another tenant, a sender, a bad id: 404 / 403 / 404"):
        r = jcall(OTHER, "GET", "/v1/directory/f-1")
        assert r.status == 404, r
        r = jcall(OTHER, "PATCH", "/v1/directory/f-1", {"active": False})
        assert r.status == 404, r
        assert redis.call("HGET", P + "rcpt:sakura:f-1", "active") == b"1"
        r = jcall(SENDER, "GET", "/v1/directory/f-1")
        assert r.status == 403, r
        r = jcall(ADMIN, "GET", "/v1/directory/..%2Fx")
        assert r.status == 404, r

    with tap.check("[8] PATCH: name (sealed), class, groups (NFKC), op-log line; bad input 400"):
        r = jcall(ADMIN, "PATCH", "/v1/directory/f-2",
                  {"name": "佐々木 三郎", "class": "2年D組", "groups": ["２年Ｄ組", "美術部"]})
        assert r.status == 200, r
        h = redis.call("HGETALL", P + "rcpt:sakura:f-2")
        assert "佐々木".encode() not in b"".join(h), h
        r = jcall(ADMIN, "GET", "/v1/directory/f-2")
        assert r.json["name"] == "佐々木 三郎" and r.json["class"] == "2年D組", r
        assert r.json["groups"] == ["2年D組", "美術部"], r
        assert redis.call("SISMEMBER", P + "grp:sakura:" + urllib.parse.quote("2年D組", safe=""), "f-2") in (0, 1)
        lines = [l for l in read_audit("operations.jsonl") if l.get("op") == "recipients.edit"]
        assert lines and lines[-1]["id"] == "f-2" and lines[-1]["tenant"] == "sakura", lines
        assert "佐々木" not in json.dumps(lines, ensure_ascii=False)
        for body, field in (({"name": "a\u0001"}, "name"), ({"class": "x" * 65}, "class"),
                            ({"groups": ["a;b"]}, "groups"), ({"active": "no"}, "active"),
                            ({"guardians": [{"index": 0}]}, "guardians"), ({"email": "x"}, "email")):
            r = jcall(ADMIN, "PATCH", "/v1/directory/f-2", body)
            assert r.status == 400 and r.json["field"] == field, (body, r)
        r = jcall(ADMIN, "PATCH", "/v1/directory/f-2", {})
        assert r.status == 400, r
        r = jcall(ADMIN, "PATCH", "/v1/directory/f-1", {"guardians": [{"index": 5, "active": False}]})
        assert r.status == 404 and r.json["field"] == "guardians", r

    with tap.check("[8] PATCH: a gaiji (private use) in a name, class, group or guardian's name is refused, "
                   "Japanese first, its place and the text with 〓; 髙﨑 (not gaiji) is kept"):
        for body, field, ja, at, ex in (
                ({"name": "渡\ue000 一郎"}, "name", "氏名", 2, "渡〓 一郎"),
                ({"class": "2年\uf8ff組"}, "class", "組", 3, "2年〓組"),
                ({"groups": ["美術部", "\U000f0000部"]}, "groups", "グループ名", 1, "〓部"),
                ({"guardians": [{"index": 0, "name": "佐々木 \ue757子"}]}, "guardians.name",
                 "保護者の氏名", 5, "佐々木 〓子")):
            r = jcall(ADMIN, "PATCH", "/v1/directory/f-2", body)
            assert r.status == 400 and r.json["field"] == field and r.json["code"] == "gaiji", (body, r)
            assert r.json["at"] == at and r.json["excerpt"] == ex, (body, r.json)
            assert r.json["error"].startswith(
                "%sに外字（機種依存文字）が含まれています（「%s」の〓の所、%d 文字目）" % (ja, ex, at)), r.json
            assert "(%s: contains a user-defined character (gaiji: U+" % field in r.json["error"], r.json
        r = jcall(ADMIN, "GET", "/v1/directory/f-2")
        assert r.json["name"] == "佐々木 三郎" and r.json["class"] == "2年D組", r
        r = jcall(ADMIN, "PATCH", "/v1/directory/f-2", {"name": "髙\ufa11 三郎"})
        assert r.status == 200, r
        r = jcall(ADMIN, "GET", "/v1/directory/f-2")
        assert r.json["name"] == "髙\ufa11 三郎", r
        r = jcall(ADMIN, "PATCH", "/v1/directory/f-2", {"name": "佐々木 三郎"})
        assert r.status == 200, r

    with tap.check("[8] a deactivated guardian gets nothing; the other guardian does; a deactivated student nothing"):
        r = jcall(ADMIN, "PATCH", "/v1/directory/f-1", {"guardians": [{"index": 1, "active": False}]})
        assert r.status == 200, r
        r = jcall(ADMIN, "GET", "/v1/directory/f-1")
        assert [g["active"] for g in r.json["guardians"]] == [True, False], r
        r = jcall(LIMITED, "PATCH", "/v1/directory/f-2", {"active": False})
        assert r.status == 200, r
        bid = k.submit({"tenant": "sakura", "category": "notice", "subject": "テスト",
                        "body": "本文", "channels": ["email"],
                        "audience": {"groups": ["2年C組", "2年D組"]}})
        k.wait_done(bid, 60)
        tos = []
        d_ = os.path.join(k.outbox, bid)
        for name in os.listdir(d_) if os.path.isdir(d_) else []:
            if name.endswith(".eml"):
                tos.append(open(os.path.join(d_, name), "rb").read())
        blob = b"".join(tos)
        assert b"mother@example.jp" in blob, blob[:300]
        assert b"father@example.jp" not in blob and b"sasaki@example.jp" not in blob


    # ---- [10] a guardian's contacts, and a suppressed address ----
    def all_values():
        """Every value Redis holds (strings, hashes, sets, lists), joined."""
        vals = []
        for key_ in redis.call("KEYS", "*"):
            t = redis.call("TYPE", key_)
            t = t.decode() if isinstance(t, bytes) else t
            if t == "string":
                vals.append(redis.call("GET", key_))
            elif t == "hash":
                vals += redis.call("HGETALL", key_)
            elif t == "set":
                vals += redis.call("SMEMBERS", key_)
            elif t == "list":
                vals += redis.call("LRANGE", key_, 0, -1)
            vals.append(key_)
        return b"\n".join(v if isinstance(v, bytes) else str(v).encode() for v in vals)

    ITO = ("ID,氏名,組,グループ,メールアドレス,保護者氏名,電話\n"
           "g-1,伊藤 健,3年A組,3年A組,ito.old@docomo.ne.jp,伊藤 母,090-1111-2222\n"
           "g-1,,,,ito.father@example.jp,伊藤 父,\n")
    SUPP = P + "supp:sakura"

    with tap.check("[10] GET: each guardian's address masked, phone only as a flag, no suppression"):
        r = imp(port, ADMIN, ITO)
        assert r.status == 200 and r.json["added"] == 1, r
        r = jcall(ADMIN, "GET", "/v1/directory/g-1")
        assert r.status == 200, r
        gs = r.json["guardians"]
        assert [(g["email"], g["phone"], g["suppression"]) for g in gs] == \
            [("i***@docomo.ne.jp", True, None), ("i***@example.jp", False, None)], gs
        assert "ito." not in r.body and "1111" not in r.body, r

    c0 = json.loads(redis.call("HGET", P + "rcpt:sakura:g-1", "c"))
    OLD_BI = c0["ei"]

    with tap.check("[10] a suppressed address shows with its reason and ref; DELETE clears it"):
        redis.call("HSET", SUPP, OLD_BI,
                   "h|1765000000000|5.1.1;1;dsn|g-1|bc-x|" + c0["e"])
        r = jcall(ADMIN, "GET", "/v1/directory/g-1")
        s0, s1 = r.json["guardians"][0]["suppression"], r.json["guardians"][1]["suppression"]
        assert s1 is None, r
        assert s0["ref"] == OLD_BI and s0["kind"] == "hard" and s0["status"] == "5.1.1", s0
        assert "ドメイン指定受信" in s0["reason_ja"] and s0["reason"], s0
        assert s0["since_ms"] == 1765000000000, s0
        cp = k.ctl("suppression", "list", "sakura", "--json")
        assert cp.returncode == 0 and len(json.loads(cp.stdout)) == 1, cp
        r = jcall(OTHER, "DELETE", "/v1/suppressions/" + OLD_BI)
        assert r.status == 404, r
        r = jcall(SENDER, "DELETE", "/v1/suppressions/" + OLD_BI)
        assert r.status == 403, r
        for bad in ("x", OLD_BI.upper(), OLD_BI + "0", "..%2F" + OLD_BI[:27]):
            r = jcall(ADMIN, "DELETE", "/v1/suppressions/" + bad)
            assert r.status == 404 and r.json["field"] in ("ref", None), (bad, r)
        assert redis.call("HEXISTS", SUPP, OLD_BI) == 1
        r = jcall(LIMITED, "DELETE", "/v1/suppressions/" + OLD_BI)
        assert r.status == 200 and r.json["cleared"] == 1, r
        assert redis.call("HEXISTS", SUPP, OLD_BI) == 0
        r = jcall(LIMITED, "DELETE", "/v1/suppressions/" + OLD_BI)
        assert r.status == 404, r
        cp = k.ctl("suppression", "list", "sakura", "--json")
        assert cp.returncode == 0 and json.loads(cp.stdout) == [], cp
        r = jcall(ADMIN, "GET", "/v1/directory/g-1")
        assert r.json["guardians"][0]["suppression"] is None, r
        lines = [l for l in read_audit("operations.jsonl") if l.get("op") == "suppression.clear"]
        assert len(lines) == 1 and lines[0]["tenant"] == "sakura" and lines[0]["via"] == "http", lines
        assert OLD_BI not in json.dumps(lines) and "ito" not in json.dumps(lines), lines

    with tap.check("[10] PATCH a guardian: bad e-mail 400 with its field, CR/LF refused, another tenant 404"):
        redis.call("HSET", SUPP, OLD_BI,
                   "h|1765000000000|5.1.1;1;dsn|g-1|bc-x|" + c0["e"])
        before = redis.call("HGET", P + "rcpt:sakura:g-1", "c")
        for g, field in (({"email": "not-an-address"}, "guardians.email"),
                         ({"email": "a@b.jp\r\nBcc: x@evil.example"}, "guardians.email"),
                         ({"email": "ito@example.jp\n"}, "guardians.email"),
                         ({"email": ""}, "guardians.email"),
                         ({"email": 5}, "guardians.email"),
                         ({"email": "a" * 65 + "@example.jp"}, "guardians.email"),
                         ({"name": "伊藤\r\n花子"}, "guardians.name"),
                         ({"name": ""}, "guardians.name"),
                         ({"name": "\u202e子花 藤伊"}, "guardians.name"),
                         ({"name": "伊藤\u0085花子"}, "guardians.name"),
                         ({"phone": "090-9876-5432\n"}, "guardians.phone"),
                         ({"phone": "call me"}, "guardians.phone"),
                         ({"line": "U" + "0" * 32}, "guardians")):
            g["index"] = 0
            r = jcall(ADMIN, "PATCH", "/v1/directory/g-1", {"guardians": [g]})
            assert r.status == 400 and r.json["field"] == field, (g, r)
            assert "evil" not in r.body and "9876" not in r.body, r
        r = jcall(OTHER, "PATCH", "/v1/directory/g-1",
                  {"guardians": [{"index": 0, "email": "ito.new@example.jp"}]})
        assert r.status == 404, r
        r = jcall(SENDER, "PATCH", "/v1/directory/g-1",
                  {"guardians": [{"index": 0, "email": "ito.new@example.jp"}]})
        assert r.status == 403, r
        r = jcall(ADMIN, "PATCH", "/v1/directory/g-1",
                  {"guardians": [{"index": 2, "email": "ito.new@example.jp"}]})
        assert r.status == 404 and r.json["field"] == "guardians", r
        assert redis.call("HGET", P + "rcpt:sakura:g-1", "c") == before

    with tap.check("[10] PATCH a guardian's name, e-mail, phone: sealed, indexed, op log without values"):
        r = jcall(ADMIN, "PATCH", "/v1/directory/g-1",
                  {"guardians": [{"index": 0, "email": "ito.new@example.jp",
                                  "name": "伊藤 花子", "phone": "０９０-３３３３-４４４４"}]})
        assert r.status == 200, r
        r = jcall(LIMITED, "PATCH", "/v1/directory/g-1",
                  {"guardians": [{"index": 1, "name": "伊藤 一郎", "phone": "03-5555-6666"}]})
        assert r.status == 200, r
        blob = all_values()
        # the numbers whole, with or without their dashes (four digits
        # alone turn up by chance in ids, times and ciphertext)
        for plain in ("ito.new", "ito.old", "ito.father", "伊藤 花子", "伊藤 一郎",
                      "3333-4444", "33334444", "5555-6666", "55556666",
                      "1111-2222", "11112222"):
            assert plain.encode() not in blob, plain
        c1 = json.loads(redis.call("HGET", P + "rcpt:sakura:g-1", "c"))
        assert c1["ei"] != OLD_BI and c1["e"] != c0["e"], c1
        assert c1["g"][0]["ei"] == c0["g"][0]["ei"] and "nm" in c1["g"][0] and "ph" in c1["g"][0], c1
        assert redis.call("SISMEMBER", P + "bidx:sakura:email:" + OLD_BI, "g-1") == 0
        assert redis.call("SISMEMBER", P + "bidx:sakura:email:" + c1["ei"], "g-1") == 1
        assert redis.call("HGET", P + "rcpt:sakura:g-1", "hash") == b""
        lines = [l for l in read_audit("operations.jsonl") if l.get("op") == "recipients.edit"]
        assert lines[-2]["id"] == "g-1" and lines[-2]["guardian"] == 0, lines[-2]
        assert sorted(lines[-2]["fields"]) == ["email", "guardian_name", "phone"], lines[-2]
        assert sorted(lines[-1]["fields"]) == ["guardian_name", "phone"] and lines[-1]["guardian"] == 1, lines[-1]
        dumped = json.dumps(lines[-2:], ensure_ascii=False)
        for plain in ("ito", "伊藤", "3333", "5555", "example.jp"):
            assert plain not in dumped, (plain, dumped)
        r = jcall(ADMIN, "GET", "/v1/directory/g-1")
        gs = r.json["guardians"]
        assert [(g["name"], g["email"], g["phone"], g["suppression"]) for g in gs] == \
            [("伊藤 花子", "i***@example.jp", True, None),
             ("伊藤 一郎", "i***@example.jp", True, None)], gs
        assert "ito." not in r.body, r

    with tap.check("[10] a broadcast reaches the new address (not suppressed), never the old one"):
        bid = k.submit({"tenant": "sakura", "category": "notice", "subject": "新しい宛先",
                        "body": "本文", "channels": ["email"],
                        "audience": {"groups": ["3年A組"]}})
        k.wait_done(bid, 60)
        d_ = os.path.join(k.outbox, bid)
        blob = b"".join(open(os.path.join(d_, n_), "rb").read()
                        for n_ in (os.listdir(d_) if os.path.isdir(d_) else [])
                        if n_.endswith(".eml"))
        assert b"ito.new@example.jp" in blob and b"ito.father@example.jp" in blob, blob[:300]
        assert b"ito.old@docomo.ne.jp" not in blob
        c = k.counts(bid).get("email", {})
        assert c.get("delivered") == 2 and not c.get("suppressed"), c


    # ---- [9] a school-sized file (figures, never asserted as times) ----
    with tap.check("[9] %d rows: dry run, apply, the same again unchanged" % scale(2000, 200)):
        import time as _t
        n = scale(2000, 200)
        big = "ID,氏名,組,グループ,メールアドレス,保護者氏名\n" + "".join(
            "b-%d,生徒 %d,%d年%s組,%d年%s組;部活%d,p%d@example.jp,保護者 %d\n"
            % (i, i, 1 + i % 3, "ABCD"[i % 4], 1 + i % 3, "ABCD"[i % 4], i % 7, i, i)
            for i in range(n))
        t0 = _t.monotonic()
        r = imp(port, OTHER, big, "?dry_run=1")
        t1 = _t.monotonic()
        assert r.status == 200 and r.json["added"] == n, r
        r = imp(port, OTHER, big)
        t2 = _t.monotonic()
        assert r.status == 200 and r.json["added"] == n, r
        r = imp(port, OTHER, big)
        t3 = _t.monotonic()
        assert r.status == 200 and r.json["unchanged"] == n, r
        tap.diag("import of %d rows (%d kB) over HTTP: dry run %.2f s, apply %.2f s, "
                 "unchanged again %.2f s" % (n, len(big.encode()) // 1024, t1 - t0,
                                             t2 - t1, t3 - t2))

    with tap.check("kairand logged no address and no name"):
        log = d.stderr_text()
        for plain in ("yamada.taro@example.jp", "山田", "not-an-address-secret"):
            assert plain not in log, plain

tap.done()
