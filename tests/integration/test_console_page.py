#!/usr/bin/python3
"""test_console_page.py - the staff console in a real browser (issue 14,
console-core): Debian's /usr/bin/chromium, headless, driven by
tests/browser/console.js (playwright-core and axe-core from npm, as
test_status_page.py).  One redis-server, one kairand (outbox adapter,
public_url = its own port).

A sender (sato, group 2-A) has two broadcasts made with its session before
the browser logs in: an ack drill to 2-A whose subject, body and answer
choices hold script-like text, to a class list whose child, guardian and
class names hold it too (one child confirms with a comment), and a
scheduled notice.  In the browser:

  [1] the login form (ログインID, パスワード, ログイン) under the console
      CSP with Trusted Types enforced (innerHTML throws); reached and sent
      with the keyboard alone;
  [2] the forced change (新しいパスワード, 新しいパスワード（確認）,
      変更する): a mismatch and a weak password refused in Japanese;
  [3] ホーム lists both broadcasts with sender, 訓練 mark and confirmation
      rate, dates as 2026年12月5日(土) 6:05; the subject filter; a date
      range up to yesterday finds none;
  [4] the broadcast's page shows 配信済み and 確認済み with the numbers of
      GET /v1/broadcasts/{name}; the not-confirmed list, the tally and the
      comment; the CSV download is the API's recipients.csv;
  [5] 未確認者に再送 makes a new broadcast to the unconfirmed (the API
      agrees); キャンセル after a confirmation step cancels the scheduled
      one (the API agrees);
  [6] language switch, logout; an admin with TOTP is asked for its code
      and logs in with it (職員 in its menu), its ホーム shows 25
      broadcasts a page and さらに表示 the rest; five wrong passwords from one address lock
      the login there (429, shown in Japanese; then even the right one);
      a login that browsers never used for it have failed 10 times
      (an attack, made in Redis) tells the teacher in Japanese to wait
      the minutes left, use a browser used before, or ask the school's
      administrator;
  [7] on every page: script-like text is inert (no dialog, no element
      made from it, shown literally), axe-core finds no serious or
      critical violation, nothing scrolls sideways at 390 px, no console
      error; screenshots at 390 and 1280 px in $BUILD/test-out/.

Skipped (TAP "ok # SKIP") only when /usr/bin/chromium is not installed.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_console_page.py
"""

import email
import email.policy
import glob
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
CHROMIUM = "/usr/bin/chromium"
SHOT_DIR = os.path.abspath(os.environ.get("KAIRAN_TEST_OUT") or os.path.join(BUILD, "test-out"))

if not os.access(CHROMIUM, os.X_OK):
    tap.skip("the console in headless Chromium",
             "chromium is not installed (apt-get install chromium; scripts/deps.sh)")
    tap.done()

with tap.check("playwright-core and axe-core are installed in tests/browser (npm ci from the lock file)"):
    if not all(os.path.exists(os.path.join(BROWSER_DIR, "node_modules", m, "package.json"))
               for m in ("playwright-core", "axe-core")):
        cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr[-2000:]

out = tmpdir("console-page")
os.makedirs(SHOT_DIR, exist_ok=True)
EVIL = "<img src=x onerror=window.__kairan_xss=true>"
SUBJ = "【訓練】安否確認 %s </script> {{7*7}}" % EVIL
BODY = "保護者各位\n</script><script>window.__kairan_xss=true</script>\n{{7*7}}"
CHOICES = ["無事 <b>です</b>", "けが {{7*7}}"]
COMMENT = "<script>window.__kairan_xss=true</script> 元気です"


class Client(StaffSession):
    """A browser-like API client: cookie, CSRF token, our Origin
    (harness.StaffSession); a bytes body is sent as a form.  Answers
    (status, JSON or None, raw body)."""

    def call(self, method, path, body=None, token=None):
        form = "application/x-www-form-urlencoded" if isinstance(body, bytes) else None
        r = super().call(method, path, body, token=token, ctype=form)
        return r.status, r.json, r.raw


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "public_url": "http://127.0.0.1:%d" % port},
                     "retention": {"audit_dir": os.path.join(out, "audit")}})
    PW = {}
    for login, role, name, groups in (("sato", "sender", "佐藤 " + EVIL, "2-A"),
                                      ("kocho", "admin", "校長", None),
                                      ("fuku", "admin", "副校長", None),
                                      ("ueda", "sender", "上田", "2-A"),
                                      ("yoshida", "sender", "吉田", "2-A")):
        args = ["staff", "add", "--tenant", "sakura", "--login", login, "--name", name,
                "--role", role] + (["--groups", groups] if groups else [])
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        PW[login] = cp.stdout.rstrip("\n").split("\n")[-1]
    admin = k.ctl("token", "create", "--role", "admin", "--name", "ops").stdout.strip()
    CLASS = "\r\n".join([
        "ID,氏名,学年,クラス,グループ,保護者氏名,電話番号,メール",
        "c-1,山田 一郎,2年,A,2-A,山田 花子,090-1111-2222,c1@example.jp",
        "c-2,%s,2年,A,2-A;%s部,田中 {{7*7}},,c2@example.jp" % (EVIL, EVIL),
        "c-3,鈴木 三郎,2年,</script>,2-A,,,c3@example.jp",
        "c-4,佐藤 四郎,2年,A,2-A,佐藤 父,080-3333-4444,",
    ]) + "\r\n"
    path = os.path.join(out, "class.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write(CLASS)
    cp = k.ctl("recipients", "import", "--tenant", "sakura", path)
    assert cp.returncode == 0, cp.stderr
    d = k.start()
    d.wait_output('"listening"', 15)

    api = Client(port)
    st, j, _ = api.call("POST", "/v1/session", {"tenant": "sakura", "login": "sato",
                                                 "password": PW["sato"]})
    assert st == 200 and j["must_change_password"], j
    # (a session that still owes the change may not submit: the sender's
    # broadcasts are made with the password changed, then changed back to
    # an initial one by the admin's reset, as a school would.)
    st, j, _ = api.call("POST", "/v1/session/password",
                        {"current": PW["sato"], "new": "sato no kari pasuwado"})
    assert st == 200, j
    st, j, _ = api.call("POST", "/v1/broadcasts", {
        "category": "drill", "drill": True, "ack": True, "subject": SUBJ, "body": BODY,
        "channels": ["email"], "choices": CHOICES, "audience": {"groups": ["2-A"]}})
    assert st == 202, j
    ACK = j["id"]
    st, j, _ = api.call("POST", "/v1/broadcasts", {
        "category": "notice", "subject": "予定のお知らせ", "body": "b", "channels": ["email"],
        "send_at": "2030-01-01T07:00:00+09:00", "expires_at": "2030-01-01T18:00:00+09:00",
        "audience": {"groups": ["2-A"]}})
    assert st == 202, j
    SCHED = j["id"]
    k.wait_done(ACK, 60)
    # c-1's guardian confirms with an answer and a comment.
    link = None
    for p in glob.glob(os.path.join(k.outbox, ACK, "*.eml")):
        with open(p, "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        if str(msg["To"]).lower() == "c1@example.jp":
            m = re.search(r"https?://[^/\s]+(/a/[A-Za-z0-9_.-]+)",
                          msg.get_body(("plain",)).get_content())
            link = m.group(1)
    assert link, "no confirmation link for c-1"
    import urllib.parse
    st, _, raw = Client(port).call("POST", link, ("a=0&c=" + urllib.parse.quote(COMMENT)).encode())
    assert st in (200, 303), (st, raw[:300])
    # c-2's e-mail came back (issue 18): its state and the counts made
    # directly in Redis as the bounce path leaves them.
    rk = k.prefix + "bc:" + ACK + ":r"
    v = redis.call("HGETALL", rk)
    for i in range(0, len(v), 2):
        parts = v[i + 1].decode().split("|")
        if parts[1] == "c-2":
            redis.call("HSET", rk, v[i], "b|c-2|%s|5.1.1;1;dsn" % parts[2])
    bkey = k.prefix + "bc:" + ACK
    dfield = [f for f in k.bc(ACK) if f.endswith("delivered") and "email" in f]
    assert len(dfield) == 1, k.bc(ACK)
    redis.call("HINCRBY", bkey, dfield[0], -1)
    redis.call("HINCRBY", bkey, dfield[0].replace("delivered", "bounced"), 1)
    cp = k.ctl("staff", "reset", "--tenant", "sakura", "sato")
    assert cp.returncode == 0, cp.stderr
    PW["sato"] = cp.stdout.rstrip("\n").split("\n")[-1]

    # fuku (admin) sets up TOTP: the browser must then ask for the code.
    import base64, hashlib, hmac, struct
    fuku = Client(port)
    st, j, _ = fuku.call("POST", "/v1/session", {"tenant": "sakura", "login": "fuku",
                                                  "password": PW["fuku"]})
    assert st == 200, j
    st, j, _ = fuku.call("POST", "/v1/session/password",
                         {"current": PW["fuku"], "new": "fuku kocho no pasuwado"})
    assert st == 200, j
    PW["fuku"] = "fuku kocho no pasuwado"
    st, j, _ = fuku.call("POST", "/v1/session/totp", {"action": "setup"})
    assert st == 200, j
    SECRET = j["secret"]

    def totp(step):
        key = base64.b32decode(SECRET + "=" * (-len(SECRET) % 8))
        mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
        off = mac[-1] & 15
        return "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7fffffff) % 1000000)
    # The step before the current one: the browser's login uses the
    # current one (a code is accepted once).
    st, j, _ = fuku.call("POST", "/v1/session/totp",
                         {"action": "confirm", "code": totp(int(time.time()) // 30 - 1)})
    assert st == 200, j

    # 25 more scheduled notices by an API token (the tenant's admins see
    # them, the sender does not): ホーム's pages of 25 and さらに表示.
    # (http.rate is the default 20/s here, as a school's: a 429 is waited
    # out as its Retry-After says.)
    for i in range(25):
        while True:
            st, j, _ = Client(port).call("POST", "/v1/broadcasts", {
                "tenant": "sakura", "category": "event", "subject": "行事 %02d" % i,
                "body": "b", "channels": ["email"], "send_at": "2030-01-02T07:00:00+09:00",
                "expires_at": "2030-01-02T18:00:00+09:00", "audience": {"groups": ["2-A"]}},
                token=admin)
            if st != 429:
                break
            time.sleep(1)
        assert st == 202, j

    # An attack on ueda from elsewhere: 10 failures from browsers without
    # ueda's device cookie, just now (set in Redis, not made).
    redis.call("SET", "kairan:luntr:sakura:ueda", "10", "PX", str(15 * 60 * 1000))
    profile = os.path.join(out, "chromium-profile")
    os.makedirs(profile)
    cfg = {"url": "http://127.0.0.1:%d/c/sakura/" % port, "login": "sato",
           "password": PW["sato"], "newPassword": "sato sensei no atarashii pasuwado",
           "ack": ACK, "scheduled": SCHED, "lockLogin": "kocho", "lockPassword": PW["kocho"],
           "attackedLogin": "ueda", "attackedPassword": PW["ueda"],
           "totpLogin": "fuku", "totpPassword": PW["fuku"], "totpSecret": SECRET,
           "stolenLogin": "yoshida", "stolenPassword": PW["yoshida"],
           "shots": SHOT_DIR, "profile": profile}
    t_drv = time.monotonic()
    cp = subprocess.run(["node", os.path.join(BROWSER_DIR, "console.js"), json.dumps(cfg)],
                        cwd=BROWSER_DIR, capture_output=True, text=True, timeout=300)
    tap.diag("browser driver: %.1f s" % (time.monotonic() - t_drv))
    res = None
    for line in cp.stdout.splitlines():
        try:
            res = json.loads(line)
        except ValueError:
            continue
    with tap.check("the browser driver ran every step"):
        assert res is not None, (cp.returncode, cp.stdout[-2000:], cp.stderr[-2000:])
        assert res["event"] == "done", (res.get("message", "")[:2000],
                                        {k: v for k, v in res.get("partial", {}).items()
                                         if k.startswith("totp") or k in ("errors", "lock")})
        assert cp.returncode == 0, cp.stderr[-2000:]
    if res is None or res["event"] != "done":
        d.stop()
        tap.done()

    with tap.check("[1] login form: labels, button, CSP with Trusted Types, innerHTML blocked"):
        assert res["loginLabels"] == ["ログインID", "パスワード"], res["loginLabels"]
        assert res["loginButton"] == "ログイン" and res["lang"] == "ja", res
        assert "require-trusted-types-for 'script'" in res["csp"] and "unsafe-inline" not in res["csp"]
        assert res["trustedTypes"] == "blocked", res["trustedTypes"]

    with tap.check("[1] keyboard alone: focus on the h1, Tab reaches ログインID, Enter logs in"):
        assert res["loginFocusStart"] == "H1", res["loginFocusStart"]
        assert 0 < res["tabsToLogin"] <= 3, res["tabsToLogin"]
        assert res["passwordFocused"] == "login-pw", res["passwordFocused"]

    with tap.check("[2] forced change: labels, button; mismatch and weak password in Japanese"):
        assert res["pwLabels"] == ["新しいパスワード", "新しいパスワード（確認）"], res["pwLabels"]
        assert res["pwButton"] == "変更する", res["pwButton"]
        assert "一致しません" in res["mismatch"], res["mismatch"]
        assert "短すぎます" in res["weak"] and "12文字" in res["weak"], res["weak"]

    with tap.check("[3] ホーム: nav, both broadcasts with sender, 訓練, rate, JST dates"):
        assert res["nav"] == ["ホーム", "新規連絡", "名簿"], res["nav"]  # 職員: admins only
        assert res["who"].startswith("佐藤 " + EVIL), res["who"]
        assert res["homeFocus"] == "H1", res["homeFocus"]
        rows = {r["name"]: r["cells"] for r in res["home"]}
        assert set(rows) == {ACK, SCHED}, rows
        a = rows[ACK]
        assert a[0] == SUBJ, a
        assert a[1].startswith("訓練") and "訓練" in a[1][2:], a
        assert a[2] == "佐藤 " + EVIL, a
        assert re.fullmatch(r"20\d\d年\d{1,2}月\d{1,2}日\([日月火水木金土]\) \d{1,2}:\d\d", a[3]), a
        assert "完了" in a[4] and "100%" in a[4], a
        assert a[5] == "33%（1/3）", a  # c-4 has no link: 3 members
        assert rows[SCHED][5] == "確認なし" and "予約" in rows[SCHED][4], rows[SCHED]
        assert res["filtered"] == [SCHED], res["filtered"]
        assert res["beforeToday"] == "0件中 0件を表示", res["beforeToday"]

    st, full, _ = Client(port).call("GET", "/v1/broadcasts/" + ACK, token=admin)
    with tap.check("[4] 配信済み and 確認済み followed by the API's numbers"):
        delivered = sum(c["delivered"] for c in full["counts"].values())
        assert re.fullmatch(r"配信済み\s*%d" % delivered, res["bc"]["delivered"]), (res["bc"], delivered)
        assert re.fullmatch(r"確認済み\s*%d" % full["ack"]["confirmed"], res["bc"]["confirmed"]), res["bc"]
        assert full["ack"]["confirmed"] == 1 and delivered == 2, full
        assert res["bc"]["subject"].startswith(SUBJ), res["bc"]["subject"]
        assert res["bcFocus"].startswith("H1:配信状況"), res["bcFocus"]

    with tap.check("[4] not confirmed / not reached lists, tally and comment, as text"):
        unconf = {r[0]: r for r in res["bc"]["unconfirmed"]}
        assert set(unconf) == {EVIL, "鈴木 三郎", "佐藤 四郎"}, unconf
        assert unconf[EVIL][1] == "2年 A" and unconf[EVIL][2] == "田中 {{7*7}}", unconf[EVIL]
        assert unconf["鈴木 三郎"][1] == "2年 </script>", unconf
        assert unconf["佐藤 四郎"][5].startswith("***4444"), unconf["佐藤 四郎"]
        assert sorted(r[0] for r in res["bc"]["unreached"]) == sorted([EVIL, "佐藤 四郎"]), res["bc"]["unreached"]
        assert res["bc"]["tally"][:2] == ["%s：1" % CHOICES[0], "%s：0" % CHOICES[1]], res["bc"]["tally"]
        assert res["bc"]["comments"] == [["山田 一郎", "2年 A", CHOICES[0], COMMENT]], res["bc"]["comments"]
        # who confirmed (issue 16): 山田 花子, the guardian the link went to
        cl = res["bc"]["confirmedList"]
        assert len(cl) == 1 and cl[0][:3] == ["山田 一郎", "2年 A", "山田 花子"], cl
        assert re.match(r"\d{4}年\d+月\d+日", cl[0][3]), cl
        assert res["printHidesActions"] is True

    with tap.check("[4] bounced: counted per channel and listed with the teacher's reason"):
        assert re.fullmatch(r"戻ってきた\s*1", res["bc"]["bounced"] or ""), res["bc"]
        heads = res["bc"]["chHeads"]
        assert "戻ってきた" in heads and "送信停止" in heads, heads
        row = res["bc"]["chRows"][0]
        assert row[heads.index("戻ってきた")] == "1" and row[heads.index("送信停止")] == "0", row
        un = {r[0]: r for r in res["bc"]["unreached"]}
        assert un[EVIL][4].startswith("メールが戻ってきた：") and "ドメイン指定受信" in un[EVIL][4], un[EVIL]

    with tap.check("[4] 電話番号を表示: the whole number as a tel: link, focused"):
        assert res["phoneButton"] == "電話番号を表示", res["phoneButton"]
        assert res["phoneLinks"] == [["tel:08033334444", "佐藤 父 080-3333-4444"]], res["phoneLinks"]
        assert res["phoneFocus"] == "tel:08033334444", res["phoneFocus"]

    with tap.check("[4] the CSV download is the API's recipients.csv"):
        st, _, raw = Client(port).call("GET", "/v1/broadcasts/%s/recipients.csv" % ACK, token=admin)
        assert st == 200
        assert res["csvText"] == raw.decode("utf-8").lstrip("\ufeff") or \
            res["csvText"] == raw.decode("utf-8"), (res["csvText"][:300], raw[:300])
        assert res["csvName"] == "%s-recipients.csv" % ACK, res["csvName"]
        assert res["bc"]["csvExcel"].endswith("/recipients.csv?charset=cp932"), res["bc"]

    with tap.check("[5] 未確認者に再送: a new broadcast to the three unconfirmed with a contact"):
        assert "2人" in res["resendQuestion"], res["resendQuestion"]
        st, nb, _ = Client(port).call("GET", "/v1/broadcasts/" + res["resent"], token=admin)
        assert st == 200 and nb["subject"] == SUBJ, nb
        assert nb["ack"]["recipients"] == 2, nb["ack"]  # c-2, c-3 (c-4: no contact)
        assert "2人に再送" in res["resentNotice"], res["resentNotice"]

    with tap.check("[5] cancel: the question, キャンセル keeps it, 取り消す cancels it"):
        assert res["cancelKept"] is True
        assert "取り消しました" in res["cancelNotice"], res["cancelNotice"]
        assert "取り消し" in res["cancelStatus"], res["cancelStatus"]
        assert k.bc(SCHED).get("status") == "cancelled", k.bc(SCHED)

    with tap.check("[6] English on request (kept), logout ends the session"):
        assert res["navEn"] == ["Home", "New message", "Class list"], res["navEn"]
        assert res["langStored"] == "en"
        assert res["afterLogout"] == 401, res["afterLogout"]

    with tap.check("[6] an admin with TOTP: the code field appears, the code logs in; 職員 shown"):
        assert res["totpHidden"] is True, res
        assert res["totpShown"] is True and "6桁" in res["totpAsk"], res
        assert res["totpNav"] == ["ホーム", "新規連絡", "名簿", "職員"], res["totpNav"]

    with tap.check("[6] the admin's ホーム: 25 a page, さらに表示 loads the rest (28)"):
        assert res["paged"] == [25, True, 28, False], res["paged"]

    with tap.check("[6] five wrong passwords from one address lock the login (429, in Japanese)"):
        assert [x["status"] for x in res["lock"]] == [401] * 5 + [429], res["lock"]
        assert all("違います" in x["text"] for x in res["lock"][:5]), res["lock"]
        assert "15分" in res["lock"][5]["text"], res["lock"][5]

    with tap.check("[6] a login under attack from new browsers: 429, told in Japanese to wait the minutes left, use a browser used before, or ask the administrator"):
        a = res["attacked"]
        assert a["status"] == 429, a
        m = re.search(r"あと(\d+)分ほど", a["text"] or "")
        assert m and 1 <= int(m.group(1)) <= 15, a
        assert "以前に" in a["text"] and "管理者" in a["text"], a

    with tap.check("[6] a session whose current password is guessed at the password form: "
                   "four 403s, the 5th ends the session (401), the login page says why in "
                   "Japanese, and the session is gone"):
        st = res["stolen"]
        assert [x["status"] for x in st] == [403] * 4 + [401], st
        assert all("違います" in (x["text"] or "") for x in st[:4]), st
        assert "何度も違ったため" in (st[4]["text"] or ""), st[4]
        assert "もう一度ログイン" in st[4]["text"], st[4]
        assert res["stolenAfter"] == {"status": 401, "session": False}, res["stolenAfter"]

    with tap.check("[7] script-like text is inert everywhere: no dialog, no element made, no script ran"):
        assert res["dialogs"] == 0 and res["xss"] is False, res
        for name, p in res["pages"].items():
            assert p["injected"] == 0, (name, p)

    with tap.check("[7] axe-core: no serious or critical violation on any page"):
        bad = {n: [v for v in p["violations"] if v["impact"] in ("serious", "critical")]
               for n, p in res["pages"].items()}
        for n, p in res["pages"].items():
            for v in p["violations"]:
                tap.diag("axe %s: %s %s %s" % (n, v["impact"], v["id"], v["targets"]))
        assert not any(bad.values()), bad
        assert set(res["pages"]) == {"login", "password", "home", "broadcast",
                                     "session_ended"}, res["pages"].keys()

    with tap.check("[7] nothing scrolls sideways at 390 px; no console error"):
        assert {n: p["overflow"] for n, p in res["pages"].items()} == \
            {n: 0 for n in res["pages"]}, res["pages"]
        assert res["errors"] == [], res["errors"]

    with tap.check("[7] screenshots at 390 and 1280 px"):
        for n in res["pages"]:
            for w in (390, 1280):
                f = os.path.join(SHOT_DIR, "console_%s_%d.png" % (n, w))
                assert os.path.getsize(f) > 5000, f
        tap.diag("screenshots: " + os.path.join(SHOT_DIR, "console_*.png"))

    d.stop()

tap.diag("runtime %.1f s" % (time.monotonic() - T0))
tap.done()
