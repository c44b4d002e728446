#!/usr/bin/python3
"""test_unsubscribe.py - RFC 8058 one-click unsubscribe and the guardians'
choices honoured by the expander and the import (issue 16, "One-click
unsubscribe").

A real redis-server, the fake SMTP relay and kairand with http.public_url
https://kairan.example.jp (the headers need https; the test posts to the
local listener).  Tenant sakura: c-1 has two guardians (mama1, papa1), c-2
one (solo2); categories 行事 (own) and 地震 (own, --emergency).  Tenant
other has a child c-1 whose guardian has mama1's address.

  [1] a 行事 broadcast: every mail carries List-Unsubscribe:
      <https://kairan.example.jp/u/TOKEN> and List-Unsubscribe-Post:
      List-Unsubscribe=One-Click exactly; the token names the tenant, the
      child, that address' guardian and 行事.
  [2] a 地震 (emergency category) and an urgent notice carry neither.
  [3] GET /u/TOKEN shows the page (category, a form posting
      List-Unsubscribe=One-Click) and changes nothing; ?lang= picks one
      of its languages (one per web/unsub/strings-<code>.json: the code,
      its "lang" tag, a tag of the same primary language), the html lang
      is that file's "lang" and the form posts in it; an unknown or no
      ?lang=: Japanese.
  [4] POST one-click as urlencoded (mama1) and as multipart (solo2): 200,
      pf.ox of that guardian only; again: idempotent; other bodies and
      content types refused with 400, nothing changed.
  [5] forged and cut tokens refused (400); the other tenant's token
      changes the other tenant's guardian only.
  [6] the operation log has guardian.unsubscribe (tenant, child,
      category) per change, never an address; kairand at log_level =
      debug logs the paths as /u/<redacted>, never a token.
  [7] the next 行事 broadcast reaches papa1 only: mama1 and solo2 are
      recorded opted_out, counted n:email:opted_out 2, c-2 is not
      unreachable; the account is exact (delivered == total).
  [8] a notice still reaches mama1; a 地震 broadcast and an urgent 行事
      one reach all three.
  [9] a re-import of a changed class list (papa1 now first, mama1 second)
      keeps mama1's opt-out: the next 行事 broadcast still skips her.
  [10] a category made emergency after the click: the token is refused
      (400), and that category's next broadcast reaches mama1.
  [12] (before [11]) the other tenant closed: its link is refused (400),
      nothing written.
  [11] the operation log cannot be written: a click is refused with 503,
      Retry-After and the page in the reader's language (?lang=pt) saying
      to try again, never a word of the inside (Redis, the log); nothing
      changed.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_unsubscribe.py
"""

import base64
import email
import email.policy
import glob
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("unsub")
T, T2 = "sakura", "other"
PUB = "https://kairan.example.jp"
MAMA, PAPA, SOLO = "mama1@example.jp", "papa1@example.jp", "solo2@example.jp"

CLASS = "\r\n".join([
    "ID,氏名,クラス,グループ,保護者氏名,メール",
    "c-1,山田 一郎,A,2A,山田 母," + MAMA,
    "c-1,,,,山田 父," + PAPA,
    "c-2,鈴木 二郎,A,2A,鈴木 母," + SOLO,
]) + "\r\n"
# the school's next file: the guardians of c-1 in the other order
CLASS2 = "\r\n".join([
    "ID,氏名,クラス,グループ,保護者氏名,メール",
    "c-1,山田 一郎,A,2A,山田 父," + PAPA,
    "c-1,,,,山田 母," + MAMA,
    "c-2,鈴木 二郎,A,2A,鈴木 母," + SOLO,
]) + "\r\n"
OTHER = "\r\n".join([
    "ID,氏名,クラス,グループ,保護者氏名,メール",
    "c-1,別校 一郎,A,1A,別校 母," + MAMA,
]) + "\r\n"


def req(port, method, path, body=None, ctype=None):
    rq = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=body, method=method)
    if ctype is not None:
        rq.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(rq, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)


def multipart(boundary="----kairanTest7MA4YWxk"):
    body = ("--%s\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\""
            "\r\n\r\nOne-Click\r\n--%s--\r\n" % (boundary, boundary)).encode()
    return body, "multipart/form-data; boundary=%s" % boundary


ONE_CLICK = b"List-Unsubscribe=One-Click"
URLENC = "application/x-www-form-urlencoded"

with Redis(out) as r, FakeSMTP(out, tls="none") as smtp:
    port = free_port()
    k = Kairan(out, r, smtp=smtp, conf={
        "http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                 "public_url": PUB},
        # every request's path is logged: the tokens must not be
        "dispatcher": {"log_level": "debug"}})
    for args in (("category", "add", "--tenant", T, "行事"),
                 ("category", "add", "--tenant", T, "地震", "--emergency"),
                 ("category", "add", "--tenant", T2, "行事")):
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
    for name, tenant, text in (("a.csv", T, CLASS), ("o.csv", T2, OTHER)):
        p = os.path.join(out, name)
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
        cp = k.ctl("recipients", "import", "--tenant", tenant, p)
        assert cp.returncode == 0, cp.stderr
    d = k.start()
    d.wait_output('"listening"', 15)

    seen = [0]

    def send(category, priority="normal", tenant=T, group="2A"):
        """Submit, wait for the end; returns (bid, {address: message})."""
        bid = k.submit({"tenant": tenant, "category": category,
                        "priority": priority, "subject": "お知らせ " + category,
                        "body": "保護者各位\n本文です。\n",
                        "channels": ["email"],
                        "audience": {"groups": [group]}})
        k.wait_done(bid, 60)
        msgs = smtp.messages()
        new = msgs[seen[0]:]
        seen[0] = len(msgs)
        got = {}
        for m in new:
            msg = email.message_from_string(m["data"], policy=email.policy.default)
            got[m["rcpt"][0]] = msg
        return bid, got

    def token_of(msg):
        lu = msg["List-Unsubscribe"]
        m = re.fullmatch(re.escape("<" + PUB + "/u/") + r"([A-Za-z0-9_-]+\.[0-9a-f]{32})>",
                         str(lu))
        assert m, lu
        return m.group(1)

    def payload(tok):
        b = tok.split(".")[0]
        return base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)).decode()

    def record(tenant, cid):
        return json.loads(r.call("HGET", "kairan:rcpt:%s:%s" % (tenant, cid), "c"))

    bid1, m1 = send("行事")
    with tap.check("[1] a 行事 mail carries both RFC 8058 headers exactly; the "
                   "token names tenant, child, guardian and category"):
        assert sorted(m1) == sorted([MAMA, PAPA, SOLO]), sorted(m1)
        toks = {}
        for a, msg in m1.items():
            assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click", a
            assert len(msg.get_all("List-Unsubscribe")) == 1
            raw = m1[a].as_string()
            assert "\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n" in \
                raw.replace("\r\n", "\n"), raw[:600]
            toks[a] = token_of(msg)
            f = payload(toks[a]).split("|")
            assert f[:4] == ["g1", "u", T, "c-2" if a == SOLO else "c-1"], f
            assert f[6] == "行事", f
        c1 = record(T, "c-1")
        assert payload(toks[MAMA]).split("|")[4] == c1["ei"]
        assert payload(toks[PAPA]).split("|")[4] == c1["g"][0]["ei"]

    with tap.check("[2] an emergency-category and an urgent mail carry neither header"):
        _, m2 = send("地震")
        _, m3 = send("notice", priority="urgent")
        assert len(m2) == 3 and len(m3) == 3, (len(m2), len(m3))
        for msg in list(m2.values()) + list(m3.values()):
            assert msg["List-Unsubscribe"] is None
            assert msg["List-Unsubscribe-Post"] is None

    with tap.check("[3] GET shows the page and changes nothing"):
        before = r.call("HGET", "kairan:rcpt:%s:c-1" % T, "c")
        st, page, hdr = req(port, "GET", "/u/" + toks[MAMA])
        assert st == 200, (st, page)
        assert "行事" in page and 'name="List-Unsubscribe" value="One-Click"' in page
        assert 'method="post"' in page and "<script" not in page
        assert "default-src 'none'" in hdr.get("Content-Security-Policy", "")
        st, page_en, _ = req(port, "GET", "/u/" + toks[MAMA] + "?lang=en")
        assert st == 200 and '<html lang="en">' in page_en, page_en
        files = glob.glob(os.path.join(ROOT, "web", "unsub", "strings-*.json"))
        langs = {}
        for f in files:
            with open(f, encoding="utf-8") as fh:
                langs[os.path.basename(f)[8:-5]] = json.load(fh)
        assert {"ja", "en", "pt", "zh", "vi", "fil"} <= set(langs), sorted(langs)
        asked = {c: c for c in langs}
        asked.update({"pt-BR": "pt", "zh-Hans": "zh", "zh-Hant": "zh",
                      "ZH-hans": "zh", "fil-PH": "fil",
                      # a language of no page (a translation typed in by
                      # hand: ko, ne...): English; Japanese or no
                      # language tag at all: Japanese
                      "xx": "en", "jap": "en", "ko": "en", "ja-JP": "ja",
                      "e": "ja", "": "ja", "%3Cb%3E": "ja",
                      "xx&lang=vi": "vi", "vi&lang=en": "vi"})
        for q, want in asked.items():
            st, pg, _ = req(port, "GET", "/u/" + toks[MAMA] + "?lang=" + q)
            s_ = langs[want]
            assert st == 200 and ('<html lang="%s">' % s_["lang"]) in pg \
                and ("<title>%s</title>" % s_["title"]) in pg \
                and ('action="%s?lang=%s"' % (toks[MAMA], want)) in pg \
                and ('href="?lang=%s"' % want) not in pg \
                and all('href="?lang=%s"' % c in pg for c in langs if c != want), \
                (q, want, pg)
        st, pg, _ = req(port, "GET", "/u/" + toks[MAMA])
        assert '<html lang="ja">' in pg, pg
        assert r.call("HGET", "kairan:rcpt:%s:c-1" % T, "c") == before

    with tap.check("[4] POST one-click (urlencoded, multipart): that guardian "
                   "only, idempotent; other bodies refused"):
        for ctype, body in (("text/plain", ONE_CLICK), (URLENC, b"x=1"),
                            ("application/json", b'{"List-Unsubscribe":"One-Click"}'),
                            ("multipart/form-data", ONE_CLICK)):
            st, page, _ = req(port, "POST", "/u/" + toks[MAMA], body, ctype)
            assert st == 400, (ctype, st)
            assert "List-Unsubscribe=One-Click" in page, page
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/u/" + toks[MAMA], body=ONE_CLICK)  # no type
        resp = conn.getresponse()
        assert resp.status == 400, resp.status
        resp.read()
        conn.close()
        assert "pf" not in record(T, "c-1")
        st, page, _ = req(port, "POST", "/u/" + toks[MAMA], ONE_CLICK, URLENC)
        assert st == 200 and "配信を停止しました" in page, (st, page)
        c1 = record(T, "c-1")
        assert c1["pf"]["ox"] == ["行事"], c1
        assert "pf" not in c1["g"][0], c1
        st, _, _ = req(port, "POST", "/u/" + toks[MAMA], ONE_CLICK, URLENC)
        assert st == 200
        assert record(T, "c-1")["pf"]["ox"] == ["行事"]
        body, ctype = multipart()
        st, page, _ = req(port, "POST", "/u/" + toks[SOLO], body, ctype)
        assert st == 200, (st, page)
        assert record(T, "c-2")["pf"]["ox"] == ["行事"]

    with tap.check("[5] forged and cut tokens refused; another tenant's token "
                   "reaches only that tenant"):
        t = toks[PAPA]
        forged = t[:-1] + ("0" if t[-1] != "0" else "1")
        for bad in (forged, t[:40], "x", t.split(".")[0] + "." + "0" * 32):
            st, page, _ = req(port, "POST", "/u/" + bad, ONE_CLICK, URLENC)
            assert st == 400 and "正しくありません" in page, (bad, st)
            st, _, _ = req(port, "GET", "/u/" + bad)
            assert st == 400
        assert "pf" not in record(T, "c-1")["g"][0]
        _, mo = send("行事", tenant=T2, group="1A")
        other_tok = token_of(mo[MAMA])
        st, _, _ = req(port, "POST", "/u/" + other_tok, ONE_CLICK, URLENC)
        assert st == 200
        assert record(T2, "c-1")["pf"]["ox"] == ["行事"]
        assert "pf" not in record(T, "c-1")["g"][0]

    with tap.check("[6] the operation log: guardian.unsubscribe per change, no address"):
        with open(os.path.join(k.dir, "audit", "operations.jsonl")) as f:
            lines = [json.loads(x) for x in f if "guardian.unsubscribe" in x]
        got = sorted((x["tenant"], x["child"], x["category"]) for x in lines)
        assert got == sorted([(T, "c-1", "行事"), (T, "c-2", "行事"),
                              (T2, "c-1", "行事")]), lines
        text = json.dumps(lines)
        assert "@" not in text, text
        # kairand's own log, at debug (every path logged): no token
        log = d.stderr_text()
        assert '"/u/<redacted>"' in log, log[-800:]
        for t in toks.values():
            assert t not in log and t.split(".")[-1] not in log, "token logged"

    with tap.check("[7] the next 行事 broadcast reaches papa1 only; the others "
                   "recorded opted_out; the account is exact"):
        bid4, m4 = send("行事")
        assert sorted(m4) == [PAPA], sorted(m4)
        h = k.bc(bid4)
        cnt = k.counts(bid4)["email"]
        assert cnt.get("opted_out") == 2, cnt
        assert cnt.get("total") == 1 and cnt.get("delivered") == 1, cnt
        assert int(h.get("unreachable", "0")) == 0, h
        states = [v.decode() for v in r.call("HVALS", "kairan:bc:%s:r" % bid4)]
        assert sorted(s.split("|")[0] + s.split("|")[1] for s in states) == \
            ["dc-1", "oc-1", "oc-2"], states
        rep = k.ctl("report", bid4, "--format", "json")
        assert rep.returncode == 0, rep.stderr
        rj = json.loads(rep.stdout)
        assert rj.get("opted_out") == 2, rj

    with tap.check("[8] another category still reaches mama1; emergency and "
                   "urgent reach everyone"):
        _, m5 = send("notice")
        assert sorted(m5) == sorted([MAMA, PAPA, SOLO]), sorted(m5)
        _, m6 = send("地震")
        assert sorted(m6) == sorted([MAMA, PAPA, SOLO]), sorted(m6)
        _, m7 = send("行事", priority="urgent")
        assert sorted(m7) == sorted([MAMA, PAPA, SOLO]), sorted(m7)

    with tap.check("[9] a re-import (guardians reordered) keeps the opt-out"):
        p = os.path.join(out, "b.csv")
        with open(p, "w", encoding="utf-8") as f:
            f.write(CLASS2)
        cp = k.ctl("recipients", "import", "--tenant", T, p)
        assert cp.returncode == 0, cp.stderr
        c1 = record(T, "c-1")
        assert "pf" not in c1 and c1["g"][0]["pf"]["ox"] == ["行事"], c1
        _, m8 = send("行事")
        assert sorted(m8) == [PAPA], sorted(m8)

    with tap.check("[10] a category made emergency: its token refused, its "
                   "broadcasts reach every guardian"):
        r.call("HSET", "kairan:cats:" + T, "行事", "emergency")
        st, page, _ = req(port, "POST", "/u/" + toks[PAPA], ONE_CLICK, URLENC)
        assert st == 400 and "緊急" in page, (st, page)
        assert "pf" not in record(T, "c-1")
        _, m9 = send("行事")
        assert sorted(m9) == sorted([MAMA, PAPA, SOLO]), sorted(m9)
        for msg in m9.values():
            assert msg["List-Unsubscribe"] is None

    with tap.check("[12] a closed school's links are refused (as the my "
                   "page refuses them); nothing written"):
        cp = k.ctl("tenant", "close", T2, "--now", "2026-01-01T00:00:00+09:00")
        assert cp.returncode == 0, cp.stderr
        before = record(T2, "c-1")
        st, page, _ = req(port, "POST", "/u/" + other_tok, ONE_CLICK, URLENC)
        assert st == 400 and "正しくありません" in page, (st, page[-300:])
        assert record(T2, "c-1") == before

    with tap.check("[11] the operation log unwritable: 503, Retry-After, the "
                   "page in Portuguese says to try again; nothing changed"):
        log = os.path.join(k.dir, "audit", "operations.jsonl")
        os.rename(log, log + ".kept")
        os.mkdir(log)  # opening it to append fails, even for root
        try:
            before = record(T, "c-2")
            st, page, hdr = req(port, "POST", "/u/%s?lang=pt" % toks[SOLO],
                                ONE_CLICK, URLENC)
            with open(os.path.join(ROOT, "web", "unsub", "strings-pt.json"),
                      encoding="utf-8") as f:
                busy = json.load(f)["error.busy"]
            assert st == 503 and hdr.get("Retry-After") == "5", (st, hdr)
            assert hdr["Content-Type"].startswith("text/html"), hdr
            assert busy in page and 'lang="pt"' in page, page
            assert "Redis" not in page and "operation log" not in page, page
            assert record(T, "c-2") == before
        finally:
            os.rmdir(log)
            os.rename(log + ".kept", log)

    d.stop()

tap.diag("%.1f s" % (time.monotonic() - T0))
sys.exit(tap.done())
