#!/usr/bin/python3
"""test_console_admin_page.py - the console's 名簿 and 職員 pages in a real
browser (issue 14, console-admin): Debian's /usr/bin/chromium, headless,
driven by tests/browser/console_admin.js (playwright-core and axe-core
from npm, as test_console_page.py).  One redis-server, one kairand
(outbox adapter, public_url = its own port), an admin account (kocho).

  [1] the admin logs in with the keyboard and changes its initial
      password; the navigation has 名簿 and 職員;
  [2] 名簿: a class list dropped on the drop zone (Japanese group names,
      the clerk's own header 保護者メール, an extra column 備考, a bad
      address, a name with a gaiji (a private-use character, what CP932's
      user-defined characters become), script-like names and group
      names): the dry run asks about 備考 (the ignore button has the
      focus), then shows added and the bad rows with their rows and
      Japanese reasons (naming 「保護者メール」（E列）, the gaiji's place);
      反映する writes the good rows (the API and Redis agree: groups with
      Japanese names, names sealed, the refused rows left out); the groups
      with their sizes;
  [3] the student found by its id, its second guardian deactivated with
      the keyboard (the API agrees); a name with a gaiji saved: refused,
      the alert names 氏名 and the place with 〓; the first guardian's e-mail address
      changed in the card (shown masked after; sealed in Redis); a
      student whose address is suppressed (supp:<tenant>) shows
      配信停止中 with the reason, cleared from the card (Redis agrees);
  [4] 職員: an account added, its initial password shown once and valid
      (it logs in); the operation log filtered by that login shows
      staff.add; the login log filtered by the admin's login;
  [5] every page: script-like text inert (no dialog, no element made from
      it), axe-core finds no serious or critical violation, nothing
      scrolls sideways at 390 px, no console error; screenshots at 390 and
      1280 px in $BUILD/test-out/console_admin_*.png.

Skipped (TAP "ok # SKIP") only when /usr/bin/chromium is not installed.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_console_admin_page.py
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
CHROMIUM = "/usr/bin/chromium"
SHOT_DIR = os.path.abspath(os.environ.get("KAIRAN_TEST_OUT") or os.path.join(BUILD, "test-out"))

if not os.access(CHROMIUM, os.X_OK):
    tap.skip("the console's 名簿 and 職員 in headless Chromium",
             "chromium is not installed (apt-get install chromium; scripts/deps.sh)")
    tap.done()

with tap.check("playwright-core and axe-core are installed in tests/browser"):
    if not all(os.path.exists(os.path.join(BROWSER_DIR, "node_modules", m, "package.json"))
               for m in ("playwright-core", "axe-core")):
        cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr[-2000:]

out = tmpdir("console-admin-page")
os.makedirs(SHOT_DIR, exist_ok=True)
EVIL = "<img src=x onerror=window.__kairan_xss=true>"
CSV = "\r\n".join([
    "ID,氏名,組,グループ,保護者メール,保護者氏名,備考",
    "k-1,山田 一郎,2年A組,2年A組;サッカー部,k1.mother@example.jp,山田 花子,",
    "k-1,,,,k1.father@example.jp,山田 太郎,",
    "k-2,%s,2年A組,2年A組;%s,k2@example.jp,,メモ" % (EVIL, EVIL),
    "k-3,鈴木 三郎,2年B組,2年B組,not-an-address,,",
    "k-4,佐藤 四郎,2年B組,2年B組;サッカー部,k4@example.jp,,",
    "k-5,渡\ue000 五郎,2年B組,2年B組,k5@example.jp,,",
]) + "\r\n"


def call(port, method, path, body=None, token=None):
    """(status, JSON or None) of one request with our Origin."""
    r = http_request(port, method, path, body, {"Origin": "http://127.0.0.1:%d" % port},
                     token=token)
    return r.status, r.json


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port},
                     "retention": {"audit_dir": os.path.join(out, "audit")}})
    cp = k.ctl("staff", "add", "--tenant", "sakura", "--login", "kocho",
               "--name", "校長 " + EVIL, "--role", "admin")
    assert cp.returncode == 0, cp.stderr
    PW = cp.stdout.rstrip("\n").split("\n")[-1]
    admin = k.ctl("token", "create", "--role", "admin", "--name", "check",
                  "--tenant", "sakura").stdout.strip()
    # A student whose guardian's address is suppressed (issue 18): the
    # card shows 配信停止中 with the reason and clears it.
    zcsv = os.path.join(out, "z.csv")
    with open(zcsv, "w") as f:
        f.write("ID,氏名,組,グループ,メールアドレス,保護者氏名\nz-1,高橋 五郎,3年C組,3年C組,"
                "z1.mother@docomo.ne.jp,高橋 母\n")
    cp = k.ctl("recipients", "import", "--tenant", "sakura", zcsv)
    assert cp.returncode == 0, cp.stderr
    zc = json.loads(redis.call("HGET", "kairan:rcpt:sakura:z-1", "c"))
    redis.call("HSET", "kairan:supp:sakura", zc["ei"],
               "h|1765000000000|5.1.1;1;dsn|z-1|bc-z|" + zc["e"])
    d = k.start()
    d.wait_output('"listening"', 15)

    profile = os.path.join(out, "chromium-profile")
    os.makedirs(profile)
    cfg = {"url": "http://127.0.0.1:%d/c/sakura/" % port, "login": "kocho",
           "password": PW, "newPassword": "kocho sensei no atarashii pasuwado",
           "csv": CSV, "student": "k-1", "newLogin": "tanaka.jimu",
           "newName": "田中 " + EVIL, "newGroups": "2年A組、サッカー部",
           "newEmail": "hanako.new@example.jp", "suppressed": "z-1", "newEmailMasked": "h***@example.jp",
           "shots": SHOT_DIR, "profile": profile}
    t0 = time.monotonic()
    cp = subprocess.run(["node", os.path.join(BROWSER_DIR, "console_admin.js"), json.dumps(cfg)],
                        cwd=BROWSER_DIR, capture_output=True, text=True, timeout=300)
    tap.diag("browser driver: %.1f s" % (time.monotonic() - t0))
    res = None
    for line in cp.stdout.splitlines():
        try:
            res = json.loads(line)
        except ValueError:
            continue
    with tap.check("the browser driver ran every step"):
        assert res is not None, (cp.returncode, cp.stdout[-2000:], cp.stderr[-2000:])
        assert res["event"] == "done", res.get("message", res)
    if res is None or res["event"] != "done":
        tap.done()

    with tap.check("[1] keyboard login and change; the navigation has 名簿 and 職員"):
        assert 0 < res["tabsToLogin"] <= 3, res["tabsToLogin"]
        assert res["nav"] == ["ホーム", "新規連絡", "名簿", "職員"], res["nav"]
        assert res["rosterH1"] == "名簿", res["rosterH1"]

    with tap.check("[2] the dropped file: 備考 asked about, the ignore button focused"):
        assert "「備考」（G列）" in res["unknownQ"], res["unknownQ"]
        assert res["unknownFocus"] == "roster-ignore", res["unknownFocus"]

    with tap.check("[2] the dry run: counts, the bad rows with their rows and Japanese reasons"):
        assert dict(res["dryCounts"]) == {"added": "3", "updated": "0", "unchanged": "0",
                                          "deleted": "0"}, res["dryCounts"]
        assert [b[0] for b in res["badRows"]] == ["5", "7"], res["badRows"]
        # the row in its own column (not again in the reason: the API's
        # reason_ja starts with "5行目：")
        assert res["badRows"][0][1] == (
            "「保護者メール」（E列）の「not-***」はメールアドレスになっていません"
            "（「@」がありません）。正しいアドレスに直してください。"), res["badRows"]
        assert res["badRows"][1][1].startswith(
            "「氏名」（B列）に外字（機種依存文字）が含まれています"
            "（「渡〓 五郎」の〓の所、2 文字目）。"), res["badRows"]
        assert "通常の漢字やかなに置き換えてください" in res["badRows"][1][1], res["badRows"]
        assert res["badHead"] == ["行", "理由"], res["badHead"]

    with tap.check("[2] 反映する: written (the API and Redis agree), groups with sizes"):
        assert dict(res["applied"])["added"] == "3", res["applied"]
        assert "反映しました" in res["notice"], res["notice"]
        assert redis.call("EXISTS", "kairan:rcpt:sakura:k-1") == 1
        assert redis.call("EXISTS", "kairan:rcpt:sakura:k-3") == 0  # the bad rows
        assert redis.call("EXISTS", "kairan:rcpt:sakura:k-5") == 0
        g = redis.call("HGET", "kairan:rcpt:sakura:k-2", "groups").decode()
        assert g == "2年A組;" + EVIL or g == EVIL + ";2年A組" or set(g.split(";")) == {"2年A組", EVIL}, g
        assert b"\xe5\xb1\xb1\xe7\x94\xb0" not in b"".join(redis.call("HGETALL", "kairan:rcpt:sakura:k-1"))
        st, _ = call(port, "GET", "/v1/groups", token=admin)
        if st == 404:  # console-compose's endpoint, not merged here yet
            assert "まだ使えません" in res["groupsText"], res["groupsText"]
            tap.diag("GET /v1/groups not served in this branch: the page says so")
        else:
            groups = sorted(res["groups"])
            assert "2サッカー部" in groups and "2" + "2年A組" in groups, groups  # size then name

    with tap.check("[3] the student found by id; its second guardian deactivated (API agrees)"):
        assert res["found"][0][:2] == ["k-1", "山田 一郎"], res["found"]
        assert "山田 太郎" in res["guardiansBefore"][1], res["guardiansBefore"]
        assert "配信停止中" in res["guardiansAfter"][1], res["guardiansAfter"]
        assert "配信停止中" not in res["guardiansAfter"][0], res["guardiansAfter"]
        st, j = call(port, "GET", "/v1/directory/k-1", token=admin)
        assert st == 200 and [g["active"] for g in j["guardians"]] == [True, False], j

    with tap.check("[3] a name with a gaiji saved in the card: refused, the alert names "
                   "氏名 and the place with 〓 (Japanese first)"):
        assert res["gaijiRole"] == "alert", res["gaijiRole"]
        assert ("氏名に外字（機種依存文字）が含まれています（「渡〓 五郎」の〓の所、"
                "2 文字目）") in res["gaijiError"], res["gaijiError"]
        # the save before it said "saved": that notice is gone with the error
        assert res["gaijiNotice"].strip() == "", res["gaijiNotice"]
        assert res["gaijiError"].index("氏名に外字") < res["gaijiError"].index(
            "name: contains a user-defined character"), res["gaijiError"]
        st, j = call(port, "GET", "/v1/directory/k-1", token=admin)
        assert st == 200 and j["name"] == "山田 一郎", j

    with tap.check("[3] the first guardian's e-mail changed in the card (API and Redis agree)"):
        assert res["emailLabel"] == "メールアドレス", res["emailLabel"]
        assert "k***@example.jp" in res["emailBefore"], res["emailBefore"]
        assert "h***@example.jp" in res["emailAfter"], res["emailAfter"]
        st, j = call(port, "GET", "/v1/directory/k-1", token=admin)
        assert [g["email"] for g in j["guardians"]] == ["h***@example.jp", "k***@example.jp"], j
        assert b"hanako.new" not in b"".join(redis.call("HGETALL", "kairan:rcpt:sakura:k-1"))

    with tap.check("[3] a suppressed address on the card: 配信停止中 with its reason, cleared there"):
        assert "配信停止中" in res["suppText"] and "ドメイン指定受信" in res["suppText"], res["suppText"]
        assert res["suppButton"] == "配信停止を解除する", res["suppButton"]
        assert res["suppAfter"] == 0, res["suppAfter"]
        assert redis.call("HLEN", "kairan:supp:sakura") == 0
        st, j = call(port, "GET", "/v1/directory/z-1", token=admin)
        assert st == 200 and j["guardians"][0]["suppression"] is None, j

    with tap.check("[4] 職員: the account added, its initial password shown once and valid"):
        pw = res["newPassword"]
        assert len(pw) == 20, pw
        rows = {r[0]: r for r in res["staffRows"]}
        assert rows["tanaka.jimu"][1] == "田中 " + EVIL and rows["tanaka.jimu"][2] == "送信者", rows
        st, j = call(port, "POST", "/v1/session", {"tenant": "sakura", "login": "tanaka.jimu",
                                                   "password": pw})
        assert st == 200 and j["must_change_password"] is True, (st, j)
        st, j = call(port, "GET", "/v1/staff", token=admin)
        t = [a for a in j["staff"] if a["login"] == "tanaka.jimu"][0]
        assert t["groups"] == ["2年A組", "サッカー部"], t

    with tap.check("[4] the operation log by person shows staff.add; the login log by the admin"):
        assert any(r[2] == "staff.add" for r in res["opLog"]), res["opLog"]
        assert res["loginLog"] and all(r[1] == "kocho" for r in res["loginLog"]), res["loginLog"]

    with tap.check("[5] script-like text inert: no dialog, nothing made from it, no console error"):
        assert res["dialogs"] == 0 and res["xss"] is False, res
        assert not res["errors"], res["errors"]
        for name, p in res["pages"].items():
            assert p["injected"] == 0, (name, p)

    with tap.check("[5] axe-core: no serious or critical violation on any page"):
        for name, p in res["pages"].items():
            bad = [v for v in p["violations"] if v["impact"] in ("serious", "critical")]
            assert not bad, (name, bad)

    with tap.check("[5] no page scrolls sideways at 390 px; screenshots saved"):
        for name, p in res["pages"].items():
            assert p["overflow"] == 0, (name, p["overflow"])
            for w in (390, 1280):
                assert os.path.exists(os.path.join(SHOT_DIR, "console_admin_%s_%d.png" % (name, w)))
        tap.diag("screenshots: %s/console_admin_*.png" % SHOT_DIR)

tap.done()
