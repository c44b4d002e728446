#!/usr/bin/python3
"""test_translations.py - a broadcast's translations (issue 16,
"Languages"): each guardian receives their language ("pf"."lg" of the
directory record), falling back to Japanese, on every channel.

A class of four children imported from a CSV; then each record's "pf" set
directly (what my page and the registration page write): s-en's guardian
reads "en", s-ja's has no choice (Japanese), s-pt's reads "pt" (the
broadcast has no Portuguese translation: Japanese), s-en2 (LINE only)
reads "en" too, and s-zh's reads "zh-Hant" (the broadcast's "zh-Hans" is
the closest).  E-mail through the fake SMTP relay, LINE through
fake_line.py, push through fake_fcm.js.

  [1] kairanctl submit with "translations" (en, zh-Hans, vi): stored with
      the broadcast (bc:<id> translations, langs).
  [2] e-mail: en -> English subject and body, Content-Language: en; ja and
      pt -> Japanese, Content-Language: ja; zh-Hant -> zh-Hans.
  [3] LINE: one multicast per language (the two English readers in one
      request with the English texts, the Japanese readers in another with
      the Japanese texts); no request mixes languages.
  [4] push (FCM): title and body in the device owner's language.
  [5] an ack broadcast: the personal confirmation page in the guardian's
      language (its subject and body), the choices as written.
  [6] bad translations -> kairanctl submit exits 1 naming the field;
      POST /v1/broadcasts answers 400 with "field" (e.g.
      "translations.en.body"); nothing stored.
  [7] POST /v1/broadcasts with translations -> 202, stored, each reader's
      language sent.
      The preview with ?lang=en shows the English texts; ?lang=pt (no
      such translation) is 400 field lang.
  [8] registration (/r, issue 15) on the English page: the new guardian's
      "pf"."lg" is "en" and the next broadcast reaches it in English (the
      child's first guardian still in Japanese); a bad "lang" -> 400 with
      field "lang"; /r/langs.json lists the strings files (ja, en, fil,
      pt, vi, zh; Chinese with its html lang zh-Hans).
  [9] the guardian pages' strings files (web/register/, web/unsub/):
      the product's six languages (ja en pt zh vi fil, the my page's
      list), each file with exactly the keys of strings-ja.json, the
      same {placeholders} in each text, the language named in itself,
      and Chinese tagged zh-Hans.
  [10] every failure code the guardian endpoints answer with ("code",
      register.c and mypage.c) has its text "e_<code>" in every strings
      file of that page (the page shows it in its reader's language), and
      the my page's files have the keys of its strings-ja.json.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_translations.py
"""

import email
import email.policy
import http.client
import json
import os
import re
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("translations")
T = "sakura-hs"
TOKEN = "line-static-token-" + secrets.token_hex(8)

SUBJ_JA = "【緊急】台風接近に伴う臨時休校"
BODY_JA = "保護者各位\n明日は臨時休校とします。"
SUBJ_EN = "Typhoon: no school tomorrow"
BODY_EN = "Dear parents,\nSchool is closed tomorrow."
SUBJ_ZH = "台风：明天停课"
BODY_ZH = "各位家长：\n明天停课。"
SUBJ_VI = "Bão: ngày mai nghỉ học"
BODY_VI = "Kính gửi phụ huynh,\nNgày mai nghỉ học."


def line_id(i):
    return "U%032x" % (0x7a0000 + i)


def fcm_token(tag):
    return "c%s:APA91bH-%s_kairanTranslationsToken" % (tag, tag)


# id, group, email, LINE, FCM token, language (None: no choice)
KIDS = [
    ("s-en", "en@example.jp", line_id(1), fcm_token("en"), "en"),
    ("s-ja", "ja@example.jp", line_id(2), fcm_token("ja"), None),
    ("s-pt", "pt@example.jp", line_id(3), fcm_token("pt"), "pt"),
    ("s-en2", "", line_id(4), "", "en"),
    ("s-zh", "zh@example.jp", "", "", "zh-Hant"),
]
LANG_OF_MAIL = {"en@example.jp": "en", "ja@example.jp": "ja",
                "pt@example.jp": "ja", "zh@example.jp": "zh-Hans"}
TEXT = {"en": (SUBJ_EN, BODY_EN), "ja": (SUBJ_JA, BODY_JA),
        "zh-Hans": (SUBJ_ZH, BODY_ZH)}
TRANSLATIONS = {"en": {"subject": SUBJ_EN, "body": BODY_EN},
                "zh-Hans": {"subject": SUBJ_ZH, "body": BODY_ZH},
                "vi": {"subject": SUBJ_VI, "body": BODY_VI}}


def bcast(**kw):
    b = {"tenant": T, "category": "notice", "priority": "urgent",
         "subject": SUBJ_JA, "body": BODY_JA,
         "channels": ["email", "line", "push"],
         "audience": {"groups": ["2-A"]}, "translations": TRANSLATIONS}
    b.update(kw)
    return b


def request(port, method, path, token, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    data = json.dumps(body, ensure_ascii=False).encode("utf-8") \
        if not isinstance(body, (bytes, str)) else \
        (body.encode("utf-8") if isinstance(body, str) else body)
    c.request(method, path, body=data,
              headers={"Authorization": "Bearer " + token,
                       "Content-Type": "application/json"})
    r = c.getresponse()
    raw = r.read().decode("utf-8", "replace")
    c.close()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw


def mails(smtp, start):
    """{recipient: parsed message} of the mails accepted after the first
    start ones (one broadcast at a time: its Message-IDs are hashed)."""
    res = {}
    for m in smtp.messages()[start:]:
        msg = email.message_from_bytes(
            m["data"].encode("utf-8", "surrogateescape"),
            policy=email.policy.default)
        if str(msg["Subject"]).startswith("【連絡網】"):
            continue  # the registration's own mails (its notices)
        for rc in m["rcpt"]:
            assert rc not in res, "two mails to one address"
            res[rc] = msg
    return res


r = Redis(out)
smtp = FakeSMTP(out)

line = FakeLine(out, "line", ["--token", TOKEN])
fcm = FakeFCM(out)
port = free_port()
k = Kairan(out, r, smtp=smtp, conf={
    "routes": {"line": "line", "push": "push"},
    "line": {"api_base": line.url, "token": TOKEN, "timeout_ms": "5s"},
    "fcm": fcm.conf(connections=1),
    "http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
             "public_url": "http://127.0.0.1:%d" % port},
})

csv_path = os.path.join(out, "2A.csv")
with open(csv_path, "w", encoding="utf-8") as f:
    f.write("ID,氏名,グループ,メール,LINE,FCMトークン\r\n")
    for i, (rid, mail, lid, tok, _) in enumerate(KIDS):
        f.write("%s,生徒 %d,2-A,%s,%s,%s\r\n" % (rid, i, mail, lid, tok))
with tap.check("the class imports; each guardian's language set on its record"):
    cp = k.ctl("recipients", "import", "--tenant", T, csv_path)
    assert cp.returncode == 0, cp.stderr
    for rid, _, _, _, lang in KIDS:
        key = "kairan:rcpt:%s:%s" % (T, rid)
        c = json.loads(r.call("HGET", key, "c"))
        if lang is not None:
            c["pf"] = {"lg": lang, "at": int(time.time() * 1000)}
        r.call("HSET", key, "c", json.dumps(c, separators=(",", ":")))

d = k.start()
d.wait_output('"listening"', 15)

# ---------------------------------------------------------------- [1]
bid = None
with tap.check("[1] kairanctl submit stores the translations with the broadcast"):
    seen = len(smtp.messages())
    bid = k.submit(bcast())
    h = k.bc(bid)
    assert h.get("langs") == "en,zh-Hans,vi", h.get("langs")
    assert json.loads(h["translations"]) == TRANSLATIONS, h["translations"]
    assert h["subject"] == SUBJ_JA
    h = k.wait_done(bid, 60)
    c = k.counts(bid)
    assert c["email"].get("delivered") == 4, c
    assert c["line"].get("delivered") == 4, c
    assert c["push"].get("delivered") == 3, c

def split_foot(text):
    """The text before the my-page foot, and the foot ("" if none)."""
    i = text.find("\n\n--\n")
    return (text, "") if i < 0 else (text[:i], text[i:])


# ---------------------------------------------------------------- [2]
with tap.check("[2] e-mail: each guardian's language, Japanese as the fallback"):
    got = mails(smtp, seen)
    assert sorted(got) == sorted(LANG_OF_MAIL), sorted(got)
    for addr, lang in LANG_OF_MAIL.items():
        msg = got[addr]
        subj, body = TEXT[lang]
        assert str(msg["Subject"]) == subj, (addr, str(msg["Subject"]))
        text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
        # the my-page foot (issue 16) follows the message's language
        text, foot = split_foot(text)
        assert text.strip() == body, (addr, text)
        assert ("My page" in foot) == (lang != "ja"), (addr, foot)
        assert str(msg["Content-Language"]) == lang, \
            (addr, str(msg["Content-Language"]))

# ---------------------------------------------------------------- [3]
with tap.check("[3] LINE: one multicast per language, none mixed"):
    reqs = [q for q in line.requests()
            if set(q["to"]) & {line_id(i) for i in range(1, 5)}]
    by_to = {}
    for q in reqs:
        texts = [m["text"] for m in q["messages"]]
        texts[-1], foot = split_foot(texts[-1])
        assert foot.strip().endswith("/m"), foot     # the generic link
        by_to[tuple(sorted(q["to"]))] = texts
    assert by_to == {
        (line_id(1), line_id(4)): [SUBJ_EN, BODY_EN],
        (line_id(2), line_id(3)): [SUBJ_JA, BODY_JA],
    }, by_to
    assert all(q["endpoint"].endswith("multicast") for q in reqs), \
        [q["endpoint"] for q in reqs]

# ---------------------------------------------------------------- [4]
with tap.check("[4] push: title and body in the device owner's language"):
    got = {m["token"]: m["message"]["notification"] for m in fcm.messages()
           if m["message"]["data"]["bc"] == bid}
    want = {fcm_token("en"): "en", fcm_token("ja"): "ja", fcm_token("pt"): "ja"}
    assert sorted(got) == sorted(want), sorted(got)
    for tok, lang in want.items():
        assert got[tok]["title"] == TEXT[lang][0], got[tok]
        assert got[tok]["body"] == TEXT[lang][1], got[tok]

# ---------------------------------------------------------------- [5]
with tap.check("[5] ack: the confirmation page in the guardian's language"):
    choices = ["無事です", "けがをしています"]
    seen = len(smtp.messages())
    bid5 = k.submit(bcast(channels=["email"], ack=True, choices=choices))
    k.wait_done(bid5, 60)
    got = mails(smtp, seen)
    pages = {}
    for addr in ("en@example.jp", "ja@example.jp"):
        text = got[addr].get_body(("plain",)).get_content()
        m = re.search(r"http://127\.0\.0\.1:\d+(/a/[A-Za-z0-9_.-]+"
                      r"(?:\?l=[A-Za-z0-9-]+)?)", text)
        assert m, text
        assert m.group(1).endswith("?l=en") == (addr == "en@example.jp"), \
            m.group(1)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        c.request("GET", m.group(1))
        resp = c.getresponse()
        pages[addr] = resp.read().decode("utf-8")
        c.close()
        assert resp.status == 200, (addr, resp.status)
    assert SUBJ_EN in pages["en@example.jp"], pages["en@example.jp"][:2000]
    assert "School is closed tomorrow." in pages["en@example.jp"]
    assert SUBJ_JA not in pages["en@example.jp"]
    assert '<h1 lang="en">' in pages["en@example.jp"]
    assert SUBJ_JA in pages["ja@example.jp"]
    for p in pages.values():
        for ch in choices:
            assert ch in p, "choice %s missing" % ch

# ---------------------------------------------------------------- [6]
ADMIN = None
BAD = [
    ({"en": {"subject": "s"}}, "translations.en.body"),
    ({"en": {"subject": "a\r\nBcc: x@example.jp", "body": "b"}},
     "translations.en.subject"),
    ({"ja": {"subject": "s", "body": "b"}}, "translations.ja"),
    ({"English": {"subject": "s", "body": "b"}}, "translations.English"),
    ({"en": {"subject": "s", "body": "b", "titel": "t"}},
     "translations.en.titel"),
    ({"l%d" % i + "a": {"subject": "s", "body": "b"} for i in range(9)},
     "translations"),
]
with tap.check("[6] bad translations: kairanctl exits 1 naming the field"):
    for tr, field in BAD:
        cp = k.ctl("submit", "-", input=json.dumps(bcast(translations=tr),
                                                   ensure_ascii=False))
        assert cp.returncode == 1, (field, cp.returncode, cp.stdout)
        assert field + ":" in cp.stderr, (field, cp.stderr)
        assert "x@example.jp" not in cp.stderr
with tap.check("[6] bad translations: POST /v1/broadcasts 400 with field"):
    cp = k.ctl("token", "create", "--role", "admin", "--name", "本部")
    assert cp.returncode == 0, cp.stderr
    ADMIN = cp.stdout.strip()
    before = r.call("KEYS", "kairan:bc:*")
    for tr, field in BAD:
        st, body = request(port, "POST", "/v1/broadcasts", ADMIN,
                           bcast(translations=tr))
        assert st == 400, (field, st, body)
        assert body["field"] == field, (field, body)
        assert "x@example.jp" not in json.dumps(body)
    assert sorted(r.call("KEYS", "kairan:bc:*")) == sorted(before)

# ---------------------------------------------------------------- [7]
with tap.check("[7] POST /v1/broadcasts with translations: 202, stored, sent"):
    seen = len(smtp.messages())
    st, body = request(port, "POST", "/v1/broadcasts", ADMIN,
                       bcast(channels=["email"],
                             translations={"en": TRANSLATIONS["en"]}))
    assert st == 202, (st, body)
    h = k.wait_done(body["id"], 60)
    assert h.get("langs") == "en", h
    got = mails(smtp, seen)
    assert str(got["en@example.jp"]["Subject"]) == SUBJ_EN
    assert str(got["zh@example.jp"]["Subject"]) == SUBJ_JA  # no zh this time

with tap.check("[7] the preview renders a chosen translation (?lang=en)"):
    st, pv = request(port, "POST", "/v1/broadcasts/preview?lang=en", ADMIN,
                     bcast())
    assert st == 200, (st, pv)
    assert pv["texts"]["subject"] == SUBJ_EN, pv["texts"]
    st, pv = request(port, "POST", "/v1/broadcasts/preview", ADMIN, bcast())
    assert st == 200 and pv["texts"]["subject"] == SUBJ_JA, (st, pv)
    st, pv = request(port, "POST", "/v1/broadcasts/preview?lang=pt", ADMIN,
                     bcast())
    assert st == 400 and pv["field"] == "lang", (st, pv)

# ---------------------------------------------------------------- [8]
def rcall(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    c.request(method, path, body=None if body is None else
              json.dumps(body).encode(),
              headers={"Content-Type": "application/json",
                       "X-Real-IP": "192.0.2.8"})
    resp = c.getresponse()
    raw = resp.read()
    c.close()
    return resp.status, json.loads(raw or b"{}")


DAD = "dad.en@example.jp"
with tap.check("[8] /r/langs.json: one language per strings file"):
    st, langs = rcall("GET", "/r/langs.json")
    assert st == 200, st
    assert langs == [{"code": "ja", "name": "日本語", "lang": "ja"},
                     {"code": "en", "name": "English", "lang": "en"},
                     {"code": "fil", "name": "Filipino", "lang": "fil"},
                     {"code": "pt", "name": "Português", "lang": "pt"},
                     {"code": "vi", "name": "Tiếng Việt", "lang": "vi"},
                     {"code": "zh", "name": "中文", "lang": "zh-Hans"}], langs
with tap.check("[8] registering on the English page records pf.lg = en"):
    cp = k.ctl("recipients", "sheets", "--tenant", T, "--format", "csv")
    assert cp.returncode == 0, cp.stderr
    import csv
    import io
    sheets = {row["student"]: (row["id"], row["passcode"])
              for row in csv.DictReader(io.StringIO(cp.stdout))}
    st, j = rcall("POST", "/r/start", {"id": sheets["s-ja"][0],
                                       "passcode": sheets["s-ja"][1]})
    assert st == 200, (st, j)
    st, e = rcall("POST", "/r/email", {"ticket": j["ticket"], "email": DAD,
                                       "consent": True, "lang": "en_US"})
    assert st == 400 and e.get("field") == "lang", (st, e)
    seen = len(smtp.messages())
    st, e = rcall("POST", "/r/email", {"ticket": j["ticket"], "email": DAD,
                                       "consent": True, "lang": "en"})
    assert st == 202, (st, e)
    msg = wait_for(lambda: [m for m in smtp.messages()[seen:]
                            if DAD in m["rcpt"]], 30, what="the mail")[0]
    text = email.message_from_string(msg["data"], policy=email.policy.default) \
        .get_body(("plain",)).get_content()
    v = re.search(r"/r#v=([A-Za-z0-9_-]+)", text).group(1)
    st, e = rcall("POST", "/r/verify", {"v": v})
    assert st == 200 and e.get("registered"), (st, e)
    gs = json.loads(r.call("HGET", "kairan:reg:%s:s-ja" % T, "g"))
    assert [g.get("pf", {}).get("lg") for g in gs] == ["en"], gs
with tap.check("[8] the registered guardian gets English, the first Japanese"):
    seen = len(smtp.messages())
    bid8 = k.submit(bcast(channels=["email"], audience={"recipients": ["s-ja"]}))
    k.wait_done(bid8, 60)
    got = mails(smtp, seen)
    assert sorted(got) == sorted([DAD, "ja@example.jp"]), sorted(got)
    assert str(got[DAD]["Subject"]) == SUBJ_EN, str(got[DAD]["Subject"])
    assert str(got["ja@example.jp"]["Subject"]) == SUBJ_JA


# ---------------------------------------------------------------- [9]
PRODUCT = ["ja", "en", "pt", "zh", "vi", "fil"]  # mypage.c languages[]
NAMES = {"ja": "日本語", "en": "English", "pt": "Português", "zh": "中文",
         "vi": "Tiếng Việt", "fil": "Filipino"}
for page, name_key, tag_key in (("register", "langName", "htmlLang"),
                                ("unsub", "lang_name", "lang")):
    with tap.check("[9] web/%s: six languages, each file with exactly the "
                   "keys and {placeholders} of strings-ja.json" % page):
        wd = os.path.join(ROOT, "web", page)
        files = {}
        for f in sorted(os.listdir(wd)):
            if f.startswith("strings-") and f.endswith(".json"):
                with open(os.path.join(wd, f), encoding="utf-8") as fh:
                    files[f[8:-5]] = json.load(fh)
        assert sorted(files) == sorted(PRODUCT), sorted(files)
        ja = files["ja"]
        for code, st in files.items():
            assert set(st) == set(ja), \
                (code, "missing", sorted(set(ja) - set(st)),
                 "extra", sorted(set(st) - set(ja)))
            for key, text in st.items():
                assert isinstance(text, str) and text.strip(), (code, key)
                assert sorted(re.findall(r"\{[a-z]+\}", text)) == \
                    sorted(re.findall(r"\{[a-z]+\}", ja[key])), (code, key, text)
            assert st[name_key] == NAMES[code], (code, st[name_key])
            assert st[tag_key] == ("zh-Hans" if code == "zh" else code), \
                (code, st[tag_key])
with tap.check("[9] the my page names the six languages the same way"):
    with open(os.path.join(ROOT, "web", "mypage", "strings-ja.json"),
              encoding="utf-8") as fh:
        mp = json.load(fh)
    assert {c: mp["lang_" + c] for c in PRODUCT} == NAMES

# ---------------------------------------------------------------- [10]
for page, src in (("register", "register.c"), ("mypage", "mypage.c")):
    with tap.check("[10] every code %s answers a guardian with is worded in "
                   "the six languages of web/%s" % (src, page)):
        with open(os.path.join(ROOT, "dispatcher", "http", src),
                  encoding="utf-8") as fh:
            c_src = fh.read()
        codes = set(re.findall(r'kn__httpd_respond_coded\(\s*c,\s*\d+,\s*'
                               r'[^;]*?,\s*"([a-z_]+)",', c_src))
        # and in a JSON built by hand: ..., "code", "<code>")
        codes |= set(re.findall(r'"code",\s*"([a-z_]+)"\)', c_src))
        assert len(codes) >= 5, codes  # the patterns still find them
        wd = os.path.join(ROOT, "web", page)
        files = {}
        for code in PRODUCT:
            with open(os.path.join(wd, "strings-%s.json" % code),
                      encoding="utf-8") as fh:
                files[code] = json.load(fh)
        for lang, st in files.items():
            missing = sorted(c for c in codes if not
                             (isinstance(st.get("e_" + c), str)
                              and st["e_" + c].strip()))
            assert not missing, (page, lang, missing)
            assert set(st) == set(files["ja"]), \
                (page, lang, sorted(set(files["ja"]) ^ set(st)))

d.stop()
tap.diag("%.1fs" % (time.monotonic() - T0))
sys.exit(tap.done())
