#!/usr/bin/python3
"""test_answers.py - answers to an "ack" broadcast, over real HTTP (issue 13:
ack answers, the tally, history, the recipients list and its CSV).

  [1] "choices" checked at submit (2-6, 1-40 characters, only with "ack").
  [2] the confirmation page offers the choices; a choice out of range, a
      missing choice, a 201-character comment and a comment with a line
      break are refused (400, the form again saying what to fix, nothing
      recorded); a 200-character comment is taken.
  [3] an answer with a comment holding markup: recorded once
      ({"t","a","c"} in bc:<id>:ack, the comment sealed: its plaintext is
      nowhere in Redis nor in the logs) and shown escaped on the page.
  [4] GET /v1/broadcasts/{id}: subject and body for the tenant's staff, the
      confirmations and the answers' tally; a confirmation stored before
      answers (a plain time) still counts and reads.
  [5] GET /v1/broadcasts/{id}/recipients: pages with an opaque cursor, every
      row once, with confirmation, answer and comment; another tenant 404.
  [6] GET .../recipients.csv: UTF-8 with a BOM, CP932 with ?charset=cp932
      (decodes to the same text), a comment "=HYPERLINK(...)" neutralized.
  [7] GET /v1/broadcasts?from=&to=&cursor=&limit=: history pages, tenant A
      never sees B (limited_admin of each; admin with &tenant=), two
      broadcasts of the same millisecond across a page break, ?key= kept.
  [8] a sender: its own broadcasts only (GET with subject and tally,
      recipients, CSV, history); another sender of the tenant gets 404.
  [9] kairanctl report: the answers' tally (json and text).
  [10] tenant close + purge: bc:<id> and bc:<id>:ack (answers, comments)
      go with the broadcast; another tenant's broadcast stays.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_answers.py
"""

import email
import email.policy
import glob
import html
import http.client
import json
import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("answers")
CHOICES = ["無事です", "けがをしています", "お迎えが必要です"]


class Resp:
    def __init__(self, status, headers, data):
        self.status = status
        self.headers = headers
        self.data = data
        self.body = data.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.body) if self.body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:300])


def request(port, method, path, token=None, body=None,
            ctype="application/json"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    h = {}
    if token is not None:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        if isinstance(body, dict):
            body = json.dumps(body, ensure_ascii=False)
        if isinstance(body, str):
            body = body.encode("utf-8")
        h["Content-Type"] = ctype
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    resp = Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    c.close()
    return resp


def answer(port, tok, a=None, comment=None):
    form = {}
    if a is not None:
        form["a"] = str(a)
    if comment is not None:
        form["c"] = comment
    return request(port, "POST", "/a/" + tok, body=urllib.parse.urlencode(form),
                   ctype="application/x-www-form-urlencoded")


def links_of(outbox, bid):
    """{recipient address: token} from the .eml files of a broadcast."""
    res = {}
    for path in glob.glob(os.path.join(outbox, bid, "*.eml")):
        with open(path, "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        m = re.search(r"/a/([A-Za-z0-9_.-]+)",
                      msg.get_body(("plain",)).get_content())
        res[str(msg["To"])] = m.group(1) if m else None
    return res


def bc_of(tenant, ids, **kw):
    b = {"tenant": tenant, "category": "emergency", "drill": True,
         "subject": "安否確認 %s" % tenant, "body": "無事かどうか答えてください。",
         "channels": ["email"], "ack": True, "choices": CHOICES,
         "recipients": [{"id": i, "email": "%s@example.jp" % i} for i in ids]}
    b.update(kw)
    return b


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port}})
    P = k.prefix

    def token(role, name, tenant=None, groups=None):
        args = ["token", "create", "--role", role, "--name", name]
        if tenant:
            args += ["--tenant", tenant]
        if groups:
            args += ["--groups", groups]
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.strip()

    T = {"admin": token("admin", "本部"),
         "limited": token("limited_admin", "Tanaka", tenant="sakura"),
         "limited_ume": token("limited_admin", "Ume office", tenant="ume"),
         "operator": token("operator", "NOC")}

    d = k.start()
    d.wait_output('"listening"', 15)

    with tap.check("[1] choices checked at submit: count, length, control "
                   "characters, only with ack"):
        bad = [
            ({"choices": ["ひとつ"]}, "give 2 to 6"),
            ({"choices": ["1", "2", "3", "4", "5", "6", "7"]}, "give 2 to 6"),
            ({"choices": ["a", "あ" * 41]}, "41 characters"),
            ({"choices": ["a", "b\nc"]}, "control character"),
            ({"choices": ["a", "b"], "ack": False}, "\"ack\": true"),
            ({"choices": "a,b"}, "must be an array"),
        ]
        for extra, want in bad:
            r = request(port, "POST", "/v1/broadcasts", T["admin"],
                        bc_of("sakura", ["x-1"], **extra))
            assert r.status == 400, (extra, r)
            assert r.json["field"].startswith("choices"), r
            assert want in r.json["error"], (want, r)
        r = request(port, "POST", "/v1/broadcasts", T["admin"],
                    bc_of("sakura", ["x-1"], choices=["a", "あ" * 40]))
        assert r.status == 202, r

    bid = k.submit(bc_of("sakura", ["g-1", "g-2", "g-3", "g-4", "g-5"]))
    k.wait_done(bid, 60)
    links = wait_for(lambda: (lambda L: L if len(L) == 5 else None)(
        links_of(k.outbox, bid)), 30, what="5 .eml")
    tok = {a.split("@")[0]: t for a, t in links.items()}

    def recorded():
        return redis.call("HLEN", P + "bc:%s:ack" % bid)

    with tap.check("[2] the page offers the choices; a bad answer or comment "
                   "is refused with the form again, nothing recorded"):
        r = request(port, "GET", "/a/" + tok["g-1"])
        assert r.status == 200, r
        for i, c in enumerate(CHOICES):
            assert 'value="%d"' % i in r.body and c in r.body, r.body
        assert 'name="c" maxlength="200"' in r.body
        refused = [
            ({"a": 3}, "回答を一つ選んでください"),
            ({"a": 9}, "回答を一つ選んでください"),
            ({"a": -1}, "回答を一つ選んでください"),
            ({}, "回答を一つ選んでください"),
            ({"a": 0, "comment": "あ" * 201}, "201 characters"),
            ({"a": 0, "comment": "一行目\n二行目"}, "line break"),
        ]
        for form, want in refused:
            r = answer(port, tok["g-1"], **form)
            assert r.status == 400, (form, r)
            assert want in r.body, (form, r.body)
            assert "<form" in r.body and "確認済み" not in r.body
            assert recorded() == 0, form
        assert k.bc(bid).get("acked") is None

    MARKUP = "<script>alert('x')</script> & \"ok\" 迎えに行きます"
    with tap.check("[3] an answer with a comment holding markup: recorded "
                   "once, sealed, shown escaped"):
        r = answer(port, tok["g-1"], a=2, comment=MARKUP)
        assert r.status == 200, r
        assert "ありがとうございました" in r.body
        assert "<script>" not in r.body
        assert html.escape(MARKUP, quote=True).replace("&#x27;", "&#39;") in r.body, r.body
        assert CHOICES[2] in r.body
        v = json.loads(redis.call("HGET", P + "bc:%s:ack" % bid, "g-1"))
        # "g": the guardian the link was sent to (issue 16, who confirmed)
        assert set(v) == {"t", "a", "c", "g"} and v["a"] == 2, v
        assert v["g"] == 0, v
        assert "script" not in v["c"] and "迎え" not in v["c"], v
        # again: nothing changes (the first answer stays)
        r = answer(port, tok["g-1"], a=0, comment="changed")
        assert r.status == 200 and CHOICES[2] in r.body, r
        assert json.loads(redis.call("HGET", P + "bc:%s:ack" % bid, "g-1")) == v
        # a 200-character comment is taken; an answer without comment too
        r = answer(port, tok["g-2"], a=0, comment="あ" * 200)
        assert r.status == 200 and "確認済み" in r.body, r
        r = answer(port, tok["g-3"], a=0)
        assert r.status == 200, r
        assert "c" not in json.loads(redis.call("HGET", P + "bc:%s:ack" % bid, "g-3"))
        # the plaintext comment is nowhere in Redis, nor in kairand's log
        dump = b"".join(redis.call("DUMP", key) or b""
                        for key in redis.call("KEYS", P + "*"))
        assert "迎えに行きます".encode() not in dump
        logs = d.stdout_text() + d.stderr_text()
        assert "迎えに行きます" not in logs and "alert(" not in logs

    with tap.check("[4] GET: subject and body for the tenant's staff, "
                   "confirmations and the answers' tally"):
        # a confirmation stored before answers: a plain time
        redis.call("HSET", P + "bc:%s:ack" % bid, "g-4", "1700000000000")
        redis.call("HINCRBY", P + "bc:%s" % bid, "acked", 1)
        r = request(port, "GET", "/v1/broadcasts/" + bid, T["limited"])
        assert r.status == 200, r
        j = r.json
        assert j["subject"] == "安否確認 sakura" and j["body"].startswith("無事"), j
        assert j["ack"] == {"recipients": 5, "confirmed": 4, "unconfirmed": 1,
                            "answers": [{"choice": CHOICES[0], "count": 2},
                                        {"choice": CHOICES[1], "count": 0},
                                        {"choice": CHOICES[2], "count": 1}],
                            "unanswered": 1}, j["ack"]
        r = request(port, "GET", "/v1/broadcasts/" + bid, T["limited_ume"])
        assert r.status == 404, r
        r = request(port, "GET", "/v1/broadcasts/" + bid, T["operator"])
        assert r.status == 403, r
        r = request(port, "GET", "/a/" + tok["g-4"])
        assert r.status == 200 and "2023-11-15T07:13:20" in r.body, r.body

    with tap.check("[5] recipients, paged with an opaque cursor: every row "
                   "once, with its confirmation, answer and comment"):
        rows, cursor, pages = {}, None, 0
        while True:
            q = "?limit=2" + ("&cursor=" + urllib.parse.quote(cursor) if cursor else "")
            r = request(port, "GET", "/v1/broadcasts/%s/recipients%s" % (bid, q),
                        T["limited"])
            assert r.status == 200, r
            pages += 1
            for row in r.json["recipients"]:
                rows[(row["recipient"], row["channel"])] = row
            cursor = r.json["next_cursor"]
            if cursor is None:
                break
            assert pages < 50
        assert pages > 1, pages
        assert sorted(rows) == [("g-%d" % i, "email") for i in range(1, 6)], rows
        g1 = rows[("g-1", "email")]
        assert g1["state"] == "delivered" and g1["reached_at"], g1
        assert g1["answer"] == CHOICES[2] and g1["comment"] == MARKUP, g1
        assert g1["confirmed_at"] and set(g1) == {
            "recipient", "child", "class", "guardian", "channel", "state",
            "reached_at", "confirmed_at", "answer", "comment", "child_state",
            "via", "address", "phone", "confirmed_by", "sent_to", "reason",
            "reason_ja"}, g1
        # inline recipients without names: no child, class nor guardian
        assert g1["child"] is None and g1["guardian"] is None
        assert g1["child_state"] == "reached" and g1["address"] == "g***@example.jp", g1
        g4 = rows[("g-4", "email")]
        assert g4["confirmed_at"].startswith("2023-11-15T07:13:20") and g4["answer"] is None
        g5 = rows[("g-5", "email")]
        assert g5["confirmed_at"] is None and g5["comment"] is None
        for tk, st in (("limited_ume", 404), ("operator", 403)):
            r = request(port, "GET", "/v1/broadcasts/%s/recipients" % bid, T[tk])
            assert r.status == st, (tk, r)
        for q, f in (("?cursor=abc", "cursor"), ("?limit=0", "limit"),
                     ("?limit=501", "limit")):
            r = request(port, "GET", "/v1/broadcasts/%s/recipients%s" % (bid, q),
                        T["limited"])
            assert r.status == 400 and r.json["field"] == f, (q, r)

    with tap.check("[6] recipients.csv: UTF-8 with BOM, CP932 on request, "
                   "formula cells neutralized"):
        r = answer(port, tok["g-5"], a=1, comment="=HYPERLINK(\"http://evil\",\"x\")")
        assert r.status == 200, r
        r = request(port, "GET", "/v1/broadcasts/%s/recipients.csv" % bid, T["limited"])
        assert r.status == 200, r
        assert r.headers["content-type"] == "text/csv; charset=utf-8", r.headers
        assert "attachment" in r.headers["content-disposition"]
        assert r.data.startswith(b"\xef\xbb\xbf"), r.data[:10]
        text = r.data[3:].decode("utf-8")
        lines = text.split("\r\n")
        assert lines[0] == ("recipient,child,class,guardian,channel,state,"
                            "reached_at,confirmed_at,answer,comment,"
                            "child_state,via,address,phone,confirmed_by,"
                            "sent_to"), lines[0]
        assert len([l for l in lines[1:] if l]) == 5, lines
        g5 = [l for l in lines if l.startswith("g-5,")][0]
        assert g5.endswith('"\'=HYPERLINK(""http://evil"",""x"")",reached,,'
                           'g***@example.jp,,保護者1,'), g5
        assert CHOICES[1] in g5
        g1 = [l for l in lines if l.startswith("g-1,")][0]
        assert CHOICES[2] in g1 and "迎えに行きます" in g1, g1
        r2 = request(port, "GET", "/v1/broadcasts/%s/recipients.csv?charset=cp932" % bid,
                     T["limited"])
        assert r2.status == 200, r2
        assert r2.headers["content-type"] == "text/csv; charset=Windows-31J", r2.headers
        assert not r2.data.startswith(b"\xef\xbb\xbf")
        assert r2.data.decode("cp932") == text
        r = request(port, "GET", "/v1/broadcasts/%s/recipients.csv?charset=latin1" % bid,
                    T["limited"])
        assert r.status == 400 and r.json["field"] == "charset", r
        r = request(port, "GET", "/v1/broadcasts/%s/recipients.csv" % bid, T["limited_ume"])
        assert r.status == 404, r

    with tap.check("[7] history by created time with an opaque cursor: tenant "
                   "A never sees B; every broadcast once, newest first"):
        made = {"sakura": [], "ume": []}
        for i in range(4):
            for t in ("sakura", "ume"):
                r = request(port, "POST", "/v1/broadcasts", T["admin"],
                            {"id": "h-%s-%d" % (t, i), "tenant": t,
                             "category": "notice", "subject": "履歴 %d" % i,
                             "body": "b", "channels": ["email"],
                             "recipients": [{"id": "h1", "email": "h1@example.jp"}]})
                assert r.status == 202, r
                made[t].append(r.json["id"])
        # two of ume at the same time: a page may end between them
        sc = redis.call("ZSCORE", P + "bcs", made["ume"][1])
        redis.call("ZADD", P + "bcs", "XX", sc, made["ume"][2])

        def tenant_of(b):
            return k.bc(b)["tenant"]

        every = [x.decode() for x in redis.call("ZRANGE", P + "bcs", "0", "-1")]

        def walk(tok, q=""):
            got, cursor, pages = [], None, 0
            while True:
                url = "/v1/broadcasts?limit=2" + q + (
                    "&cursor=" + urllib.parse.quote(cursor) if cursor else "")
                r = request(port, "GET", url, T[tok])
                assert r.status == 200, (url, r)
                assert len(r.json["broadcasts"]) <= 2
                got += r.json["broadcasts"]
                pages += 1
                cursor = r.json["next_cursor"]
                if cursor is None:
                    return got, pages
                assert pages < 100

        for tok, t in (("limited", "sakura"), ("limited_ume", "ume")):
            got, pages = walk(tok)
            ids = [b["id"] for b in got]
            assert len(ids) == len(set(ids)), ids
            assert sorted(ids) == sorted(b for b in every if tenant_of(b) == t), (t, ids)
            assert all(b["tenant"] == t for b in got)
            assert pages > 1
            # newest first by bcs' score (the created ms; two made equal)
            scores = [int(redis.call("ZSCORE", P + "bcs", i)) for i in ids]
            assert scores == sorted(scores, reverse=True), scores
            assert all("subject" in b for b in got)
        got, _ = walk("admin", "&tenant=ume")
        assert sorted(b["id"] for b in got) == sorted(made["ume"]), got
        got, _ = walk("admin")
        assert sorted(b["id"] for b in got) == sorted(every), got
        got, _ = walk("operator")
        assert len(got) == len(every) and all("subject" not in b for b in got)
        # a time range: up to the second of sakura's four.  The history
        # filters by bcs' score (the time handed to Redis), which may be a
        # millisecond or more after the hash's created_ms on a slow machine.
        to = int(redis.call("ZSCORE", P + "bcs", made["sakura"][1]))
        got, _ = walk("limited", "&to=" + urllib.parse.quote(
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(to) / 1000))
            + ".%03dZ" % (int(to) % 1000)))
        ids = [b["id"] for b in got]
        assert made["sakura"][1] in ids and made["sakura"][2] not in ids, (
            to, [(i, redis.call("ZSCORE", P + "bcs", i),
                  k.bc(i)["created_ms"]) for i in made["sakura"]], ids)
        # the key lookup stays; bad input says what to fix
        r = request(port, "GET", "/v1/broadcasts?key=h-ume-3", T["limited_ume"])
        assert r.status == 200 and r.json["id"] == made["ume"][3], r
        r = request(port, "GET", "/v1/broadcasts?key=h-ume-3", T["limited"])
        assert r.status == 404, r
        for q, f in (("?cursor=%21%21", "cursor"), ("?from=yesterday", "from"),
                     ("?limit=0", "limit"), ("", "active")):
            r = request(port, "GET", "/v1/broadcasts" + q, T["limited"])
            assert r.status == 400 and r.json["field"] == f, (q, r)

    with tap.check("[8] a sender reads its own broadcasts (subject, answers, "
                   "recipients, history), not another sender's of its tenant"):
        T["sender"] = token("sender", "Sato (2-A)", tenant="ume", groups="2-A")
        T["sender2"] = token("sender", "Ito (2-B)", tenant="ume", groups="2-B")
        r = request(port, "POST", "/v1/broadcasts", T["sender"],
                    {"category": "notice", "subject": "2-A のお知らせ", "body": "b",
                     "channels": ["email"], "ack": True, "choices": ["はい", "いいえ"],
                     "audience": {"groups": ["2-A"]}})
        assert r.status == 202, r
        own = r.json["id"]
        r = request(port, "GET", "/v1/broadcasts/" + own, T["sender"])
        assert r.status == 200 and r.json["subject"] == "2-A のお知らせ", r
        assert [a["choice"] for a in r.json["ack"]["answers"]] == ["はい", "いいえ"], r.json
        for path in ("/v1/broadcasts/" + own, "/v1/broadcasts/%s/recipients" % own,
                     "/v1/broadcasts/%s/recipients.csv" % own):
            assert request(port, "GET", path, T["sender"]).status == 200, path
            assert request(port, "GET", path, T["sender2"]).status == 404, path
        r = request(port, "GET", "/v1/broadcasts?limit=200", T["sender"])
        assert [b["id"] for b in r.json["broadcasts"]] == [own], r
        r = request(port, "GET", "/v1/broadcasts?limit=200", T["sender2"])
        assert r.json["broadcasts"] == [], r

    d.stop()

    with tap.check("[9] kairanctl report: the answers' tally, confirmations "
                   "stored either way counted"):
        cp = k.ctl("report", bid, "--format", "json")
        assert cp.returncode == 0, cp.stderr
        rep = json.loads(cp.stdout)
        assert rep["confirmed"] == 5, rep["confirmed"]
        assert rep["answers"] == [{"choice": CHOICES[0], "count": 2},
                                  {"choice": CHOICES[1], "count": 1},
                                  {"choice": CHOICES[2], "count": 1}], rep["answers"]
        cp = k.ctl("report", bid)
        assert cp.returncode == 0 and CHOICES[1] in cp.stdout, cp.stdout

    with tap.check("[10] tenant close and purge remove the answers with the "
                   "broadcast; another tenant's stay"):
        ume_bc = made["ume"][0]
        # in the index of the just ended too (as if it had ended now)
        redis.call("ZADD", P + "ended", int(time.time() * 1000), bid)
        cp = k.ctl("tenant", "close", "sakura")
        assert cp.returncode == 0, cp.stderr
        later = time.strftime("%Y-%m-%dT%H:%M:%S+09:00",
                              time.gmtime(time.time() + 9 * 3600 + 71 * 86400))
        cp = k.ctl("purge", "--now", later)
        assert cp.returncode == 0, cp.stderr
        for sfx in ("", ":ack", ":r", ":aud", ":m"):
            assert redis.call("EXISTS", P + "bc:%s%s" % (bid, sfx)) == 0, sfx
        assert redis.call("ZSCORE", P + "bcs", bid) is None
        assert redis.call("ZSCORE", P + "ended", bid) is None
        assert redis.call("EXISTS", P + "bc:%s" % ume_bc) == 1

sys.exit(tap.done())
