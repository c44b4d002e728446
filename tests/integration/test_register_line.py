#!/usr/bin/python3
"""test_register_line.py - a guardian signs up by LINE (issue 15, the LINE
bullet): the registration page's link code (POST /r/line), the signed
webhook message event that carries it (/line/webhook), the Reply API call
(fake LINE), and the broadcast that then reaches the LINE user.

kairand with line.channel_secret, line.add_friend_url and the fake LINE
(tests/fakes/fake_line.py, which checks the reply call as LINE does and
records it in replies.jsonl); the fake SMTP server for the mails.

  [1] /r/line: consent and ticket are checked; the answer has an 8-digit
      code, the friend-add link and /r/line-qr.svg (an SVG QR code under
      the page's CSP); only a keyed hash of the code is in Redis.
  [2] a signed text message with the code links the LINE user to s-1
      (reg:<T>:s-1 g: sealed id and blind index, counted on the sheet);
      the fake LINE receives the reply (the event's replyToken, the
      confirmation in Japanese, then in English, the sign-up page's
      language; [8]: Japanese only for the Japanese page, Portuguese after
      it for the Portuguese one); s-1's imported contact is told by mail; no user id in
      clear in Redis or kairand's log, no code in the log.
  [3] a LINE broadcast to the class reaches the linked user id through
      the fake LINE.
  [4] a wrong code: a reply saying wrong or expired (Japanese, then
      English: the code's language is not known), nothing linked.
  [5] a used code and an expired code: the same reply, nothing linked.
  [6] per-user throttle: after 5 wrong codes a LINE user's live code is
      refused (a "wait" reply, worded the same as for a code that does
      not exist: Japanese, then English, never the live code's page
      language) and stays live: another user links with it.
  [7] an unsigned (401) or forged (403) webhook changes nothing, no reply;
      the code it carried still works.
  [8] the sheet's max_guardians counts LINE: s-2's sheet (max 2) used up
      by two LINE users, a third code is refused (409 at /r/line or a
      reply that the sheet is used up).

Run:  BUILD=build /usr/bin/python3 tests/integration/test_register_line.py
"""

import base64
import csv
import hashlib
import hmac
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
out = tmpdir("regline")
T = "sakura-es"
SECRET = "line-channel-secret-for-tests"
TOKEN = "line-token-for-register-tests"
FRIEND = "https://lin.ee/AbCdEf1"
CLASS = "\r\n".join([
    "ID,氏名,クラス,グループ,保護者氏名,メール,電話番号",
    "s-1,山田 一郎,A,1年A組,山田 花子,mama1@example.jp,",
    "s-2,田中 二郎,A,1年A組,,,090-0000-0002",
]) + "\r\n"
U1 = "U" + "4af4980629a1b2c3d4e5f60718293a4b"
U2 = "U" + "0123456789abcdef0123456789abcdef"
U3 = "U" + "fedcba9876543210fedcba9876543210"
U4 = "U" + "00000000111111112222222233333333"
U5 = "U" + "44444444555555556666666677777777"
U6 = "U" + "88888888999999990000000011111111"


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


n_events = [0]


def message(uid, text):
    n_events[0] += 1
    rt = "rt%05d%s" % (n_events[0], "x" * 20)
    return rt, {"type": "message", "mode": "active",
                "timestamp": 1700000000000 + n_events[0],
                "source": {"type": "user", "userId": uid},
                "webhookEventId": "01HEV%05d" % n_events[0],
                "deliveryContext": {"isRedelivery": False},
                "replyToken": rt,
                "message": {"id": str(n_events[0]), "type": "text",
                            "quoteToken": "q", "text": text}}


def hook(events, sig="good"):
    body = json.dumps({"destination": "Uxxx", "events": events}).encode()
    headers = {"Content-Type": "application/json"}
    if sig == "good":
        headers["X-Line-Signature"] = base64.b64encode(hmac.new(
            SECRET.encode(), body, hashlib.sha256).digest()).decode()
    elif sig == "forged":
        headers["X-Line-Signature"] = base64.b64encode(hmac.new(
            b"not-the-secret", body, hashlib.sha256).digest()).decode()
    req = urllib.request.Request(base + "/line/webhook", data=body,
                                 method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def replies():
    return {q["reply_token"]: q for q in
            (json.loads(x) for x in open(rep_path) if x.strip())} \
        if os.path.exists(rep_path) else {}


def send(uid, text):
    """Send text from uid, signed; the reply's text (waited for)."""
    rt, ev = message(uid, text)
    assert hook([ev]) == 200
    q = wait_for(lambda: replies().get(rt), 30, 0.05,
                 what="the reply to " + rt)
    assert len(q["messages"]) == 1 and q["token"] == "static", q
    return q["messages"][0]["text"]


def reg(rcpt):
    g = r.call("HGET", k.prefix + "reg:%s:%s" % (T, rcpt), "g")
    return json.loads(g) if g else []


def start(sheet, ip="198.51.100.7"):
    st, j = call("POST", "/r/start", {"id": sheet[0], "passcode": sheet[1]},
                 ip=ip)
    assert st == 200, (st, j)
    return j["ticket"]


def line_code(ticket, ip="198.51.100.7", lang=None):
    body = {"ticket": ticket, "consent": True}
    if lang:
        body["lang"] = lang
    st, j = call("POST", "/r/line", body, ip=ip)
    assert st == 200, (st, j)
    return j["code"]


def subjects(addr):
    import email
    import email.policy
    return [str(email.message_from_string(m["data"],
                                          policy=email.policy.default)
                ["Subject"]) for m in smtp.messages() if addr in m["rcpt"]]


def scan():
    keys, cursor = [], b"0"
    while True:
        cursor, ks = r.call("SCAN", cursor, "COUNT", 1000)
        keys.extend(ks)
        if cursor in (b"0", 0, "0"):
            return sorted(keys)


SAID_WRONG = "コードが違うか"
SAID_DONE = "登録しました"
SAID_WAIT = "しばらく受け付けません"

with Redis(out) as r, FakeSMTP(out) as smtp, \
        FakeLine(out, "line", ["--token", TOKEN]) as line:
    rep_path = os.path.join(line.store, "replies.jsonl")
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    k = Kairan(out, r, smtp=smtp, conf={
        "http": {"listen": "127.0.0.1:%d" % port, "public_url": base,
                 "rate": "1000"},
        "routes": {"line": "line"},
        "line": {"api_base": line.url, "token": TOKEN, "timeout_ms": "5s",
                 "channel_secret": SECRET, "add_friend_url": FRIEND},
    })
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
    codes_seen = []

    with tap.check("[1] /r/line: checks, an 8-digit code, the friend-add "
                   "link and its QR code; only a keyed hash in Redis"):
        tk = start(sheets["s-1"])
        st, e = call("POST", "/r/line", {"ticket": tk, "consent": False})
        assert st == 400 and e["field"] == "consent", (st, e)
        st, e = call("POST", "/r/line", {"ticket": "short", "consent": True})
        assert st == 400 and e["field"] == "ticket", (st, e)
        st, e = call("POST", "/r/line", {"ticket": "x" * len(tk),
                                         "consent": True})
        assert st == 401 and e["field"] == "ticket", (st, e)
        st, e = call("POST", "/r/line", {"ticket": tk, "consent": True,
                                         "lang": "english"})
        assert st == 400 and e["field"] == "lang", (st, e)
        # Signed up on the English page: the guardian gets English.
        st, j = call("POST", "/r/line", {"ticket": tk, "consent": True,
                                         "lang": "en"})
        assert st == 200 and re.fullmatch(r"[0-9]{8}", j["code"]), (st, j)
        assert j["add_friend_url"] == FRIEND and \
            j["qr"] == "/r/line-qr.svg" and j["expires_in"] == 600, j
        code1 = j["code"]
        codes_seen.append(code1)
        st, hd, b = call("GET", "/r/line-qr.svg", raw=True)
        assert st == 200 and hd["Content-Type"].startswith("image/svg+xml") \
            and b.startswith(b"<svg") and b"<path" in b, (st, b[:80])
        assert "img-src 'self'" in hd["Content-Security-Policy"]
        # kept once drawn: the same bytes again
        st2, hd2, b2 = call("GET", "/r/line-qr.svg", raw=True)
        assert (st2, b2, hd2["Content-Type"]) == (st, b, hd["Content-Type"])
        page = call("GET", "/r", raw=True)[2].decode()
        assert 'id="line-code"' in page and 'id="line-qr"' in page
        keys = [x for x in scan() if b":rline:" in x or
                x.startswith((k.prefix + "rline:").encode())]
        assert len(keys) == 1 and re.search(rb"rline:[0-9a-f]{32}$", keys[0]), \
            keys
        assert r.call("PTTL", keys[0]) > 590000
        blob = b"".join([x + (r.call("DUMP", x) or b"") for x in scan()])
        assert code1.encode() not in blob

    with tap.check("[2] a signed message with the code links the LINE user; "
                   "the reply confirms; the school's contact is told"):
        text = send(U1, " %s-%s " % (code1[:4], code1[4:]))
        # Japanese first, then the sign-up page's English
        assert SAID_DONE in text and "山田 一郎" in text, text
        assert text.index("Registered: the school's messages") > \
            text.index(SAID_DONE), text
        g = reg("s-1")
        assert len(g) == 1 and g[0]["l"].startswith("k") and \
            re.fullmatch(r"[0-9a-f]{32}", g[0]["li"]) and g[0]["cs"] > 0, g
        assert g[0]["pf"]["lg"] == "en", g
        assert r.call("HGET", k.prefix + "sheet:" + sheets["s-1"][0],
                      "used") == b"1"
        assert r.call("SISMEMBER", k.prefix + "regd:" + T, "s-1") == 1
        wait_for(lambda: "【連絡網】保護者の登録がありました" in
                 subjects("mama1@example.jp"), 30, 0.1,
                 what="the mail telling mama1")
        blob = b"".join([x + (r.call("DUMP", x) or b"") for x in scan()])
        assert U1.encode() not in blob
        log = d.stderr_text()
        assert U1 not in log and code1 not in log, "id or code logged"
        assert "guardian registered (LINE)" in log

    with tap.check("[3] a LINE broadcast to the class reaches the linked "
                   "user through the fake LINE"):
        bid = k.submit({"tenant": T, "subject": "遠足のお知らせ",
                        "body": "明日は遠足です。", "channels": ["line"],
                        "audience": {"groups": ["1年A組"]}})
        k.wait_done(bid, 60)
        got = [q for q in line.requests() if U1 in q["to"]]
        assert len(got) == 1 and "遠足" in json.dumps(
            got[0]["messages"], ensure_ascii=False), line.requests()
        assert k.counts(bid)["line"].get("delivered") == 1, k.counts(bid)

    with tap.check("[4] a wrong code: a 'wrong or expired' reply, nothing "
                   "linked"):
        tk = start(sheets["s-2"])
        live = line_code(tk)
        bad = "%08d" % ((int(live) + 1) % 100000000)
        text = send(U2, bad)
        # the code's language is not known (there is no such code): English
        # after the Japanese
        assert SAID_WRONG in text and "The code is wrong or has expired" \
            in text, text
        assert reg("s-2") == []
        assert r.call("HGET", k.prefix + "sheet:" + sheets["s-2"][0],
                      "used") in (None, b"0")

    with tap.check("[5] a used code and an expired code: the same reply, "
                   "nothing linked"):
        assert SAID_WRONG in send(U2, code1)
        assert len(reg("s-1")) == 1
        ck = [x for x in scan() if b"rline:" in x]
        assert len(ck) == 1, ck  # live, from [4]
        r.call("PEXPIRE", ck[0], 1)
        wait_for(lambda: r.call("EXISTS", ck[0]) == 0, 10, 0.01,
                 what="the code to expire")
        assert SAID_WRONG in send(U2, live)
        assert reg("s-2") == []

    with tap.check("[6] per-user throttle: after 5 wrong codes a live code "
                   "is refused and stays live for others"):
        tk = start(sheets["s-2"])
        live = line_code(tk, lang="pt")
        bad = "%08d" % ((int(live) + 7) % 100000000)
        for _ in range(2):  # U2 has 3 wrong codes already ([4], [5])
            assert SAID_WRONG in send(U2, bad)
        text = send(U2, live)
        # worded the same for a live code (made on the Portuguese page) as
        # for one that does not exist: a throttled sender learns nothing
        assert SAID_WAIT in text and "Too many wrong codes" in text and \
            "Muitos" not in text, text
        assert send(U2, bad) == text
        assert reg("s-2") == []
        text = send(U3, live)
        assert SAID_DONE in text, text
        g = reg("s-2")
        assert len(g) == 1, g
        ttl = r.call("PTTL", (k.prefix + "rlfail:").encode() +
                     g[0]["li"].encode())
        assert ttl == -2  # U3 made no mistake
        fails = [x for x in scan() if b"rlfail:" in x]
        assert len(fails) == 2 and all(0 < r.call("PTTL", x) <= 600000
                                       for x in fails), fails

    with tap.check("[7] an unsigned or forged webhook changes nothing and "
                   "gets no reply; the code still works"):
        tk = start(sheets["s-2"], ip="198.51.100.9")
        live = line_code(tk, ip="198.51.100.9")
        rt1, ev1 = message(U4, live)
        rt2, ev2 = message(U4, live)
        assert hook([ev1], sig=None) == 401
        assert hook([ev2], sig="forged") == 403
        assert reg("s-2") and len(reg("s-2")) == 1
        assert len([x for x in scan() if b"rline:" in x]) == 1
        text = send(U4, live)
        assert SAID_DONE in text, text
        assert rt1 not in replies() and rt2 not in replies()

    with tap.check("[8] max_guardians counts LINE: s-2's sheet is used up"):
        assert len(reg("s-2")) == 2
        assert r.call("HGET", k.prefix + "sheet:" + sheets["s-2"][0],
                      "used") == b"2"
        st, j = call("POST", "/r/start", {"id": sheets["s-2"][0],
                                          "passcode": sheets["s-2"][1]},
                     ip="198.51.100.10")
        assert st == 409, (st, j)
        # s-1 (1 of 2): two codes; the second is refused once the first
        # fills the sheet
        c1 = line_code(start(sheets["s-1"], ip="198.51.100.11"),
                       ip="198.51.100.11", lang="ja")
        c2 = line_code(start(sheets["s-1"], ip="198.51.100.12"),
                       ip="198.51.100.12", lang="pt")
        text = send(U5, c1)
        assert SAID_DONE in text and "\n\n" not in text, text  # ja only
        text = send(U6, c2)
        # signed up on the Portuguese page: Japanese, then Portuguese
        assert "使えなくなりました" in text and \
            "Esta ficha de cadastro não pode mais ser usada" in text, text
        assert len(reg("s-1")) == 2
        assert call("POST", "/r/start", {"id": sheets["s-1"][0],
                                         "passcode": sheets["s-1"][1]},
                    ip="198.51.100.13")[0] == 409

    d.stop()

tap.done()
