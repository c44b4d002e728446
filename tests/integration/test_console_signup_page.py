#!/usr/bin/python3
"""test_console_signup_page.py - the console's 名簿 for guardians signing
up (issue 15) in a real browser: Debian's /usr/bin/chromium, headless,
driven by tests/browser/console_signup.js (playwright-core and axe-core
from npm, as test_console_admin_page.py).  One redis-server, one kairand
(outbox adapter, public_url = its own port), an admin account (kocho).

  [1] a class list with students without any contact, dropped on 名簿:
      the dry run says 連絡先なし 2 名: 登録用紙を配ってください, no bad row;
  [2] 登録用紙を印刷 with the keyboard (reached by Tab): the printable page
      is saved (one sheet per active student, no script), the count said;
      again: nothing new, the live ones skipped (said); 再発行 of one
      group asks first (the warning that old passcodes stop working),
      then issues that group's sheets anew;
  [3] 未登録 per class and the list (the channels the school holds; none:
      by the sheet), as GET /v1/directory/unregistered answers;
  [4] 未登録の家庭に登録のお願いを送る asks first (how many, how many
      without a contact), then sends one broadcast (the API has it, with
      the staff member as sender), linked from the page;
  [5] every step: nothing made from data, axe-core finds no serious or
      critical violation, nothing scrolls sideways at 390 px, no console
      error; screenshots at 390 and 1280 px in
      $BUILD/test-out/console_signup_*.png.

Skipped (TAP "ok # SKIP") only when /usr/bin/chromium is not installed.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_console_signup_page.py
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
    tap.skip("the console's 登録用紙 and 未登録 in headless Chromium",
             "chromium is not installed (apt-get install chromium; scripts/deps.sh)")
    tap.done()

with tap.check("playwright-core and axe-core are installed in tests/browser"):
    if not all(os.path.exists(os.path.join(BROWSER_DIR, "node_modules", m, "package.json"))
               for m in ("playwright-core", "axe-core")):
        cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr[-2000:]

out = tmpdir("console-signup-page")
os.makedirs(SHOT_DIR, exist_ok=True)
EVIL = "<img src=x onerror=window.__kairan_xss=true>"
CSV = "\r\n".join([
    "ID,氏名,クラス,グループ,保護者氏名,メール",
    "s-1,山田 一郎,1-A,1年A組,山田 花子,mama1@example.jp",
    "s-2,%s,1-A,1年A組,," % EVIL,
    "s-3,佐藤 三郎,1-B,1年B組,,papa3@example.jp",
    "s-4,鈴木 四郎,1-B,1年B組,,",
]) + "\r\n"


def call(port, method, path, token):
    """(status, JSON) of one request with an API token."""
    r = http_request(port, method, path, token=token)
    return r.status, json.loads(r.raw)


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port},
                     "retention": {"audit_dir": os.path.join(out, "audit")}})
    cp = k.ctl("staff", "add", "--tenant", "sakura", "--login", "kocho",
               "--name", "校長", "--role", "admin")
    assert cp.returncode == 0, cp.stderr
    PW = cp.stdout.rstrip("\n").split("\n")[-1]
    admin = k.ctl("token", "create", "--role", "admin", "--name", "check",
                  "--tenant", "sakura").stdout.strip()
    d = k.start()
    d.wait_output('"listening"', 15)

    profile = os.path.join(out, "chromium-profile")
    os.makedirs(profile)
    cfg = {"url": "http://127.0.0.1:%d/c/sakura/" % port, "login": "kocho",
           "password": PW, "newPassword": "kocho sensei no atarashii pasuwado",
           "csv": CSV, "group": "1年B組", "shots": SHOT_DIR, "profile": profile}
    t0 = time.monotonic()
    cp = subprocess.run(["node", os.path.join(BROWSER_DIR, "console_signup.js"), json.dumps(cfg)],
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

    with tap.check("[1] the dry run says 連絡先なし 2 名; no bad row"):
        assert res["noContact"] == "連絡先なし 2 名: 登録用紙を配ってください", res["noContact"]
        assert res["badRows"] == 0, res["badRows"]
        assert 0 < res["tabsToLogin"] <= 3, res["tabsToLogin"]

    with tap.check("[2] 登録用紙を印刷 (by Tab and Enter): the page saved, one sheet per student"):
        assert 0 < res["tabsToPrint"] <= 4, res["tabsToPrint"]
        f = res["first"]
        assert "4 名分の登録用紙を作りました" in f["text"], f["text"]
        assert f["name"] == "登録用紙.html", f["name"]
        body = f["body"]
        assert body.count('<section class="sheet">') == 4, body[:300]
        assert "<script" not in body and "<img" not in body, "escaped"
        assert "&lt;img src=x" in body

    with tap.check("[2] again: nothing new, the live ones skipped; 再発行 asks, then issues"):
        s = res["second"]
        assert "新しく作る登録用紙はありませんでした" in s["text"], s["text"]
        assert "使用中のパスコードがある 4 名は飛ばしました" in s["text"], s["text"]
        assert s["body"] is None, "no file"
        assert "使えなくなります" in res["reissueHint"], res["reissueHint"]
        assert res["reissueChecked"] is True
        asked = [m for t, m in res["dialogs"] if "再発行" in m]
        assert len(asked) == 1 and "使えなくなります" in asked[0], res["dialogs"]
        t = res["third"]
        assert "2 名分" in t["text"] and t["name"] == "登録用紙-1年B組.html", t
        assert t["body"].count('<section class="sheet">') == 2

    with tap.check("[3] 未登録 per class and the list, as the API says"):
        assert res["unregH"] == "未登録 4 名（在籍 4 名）", res["unregH"]
        assert res["classes"] == [["1-A", "2"], ["1-B", "2"]], res["classes"]
        st, j = call(port, "GET", "/v1/directory/unregistered", admin)
        assert st == 200, j
        assert [r[1] for r in res["unreg"]] == [s["id"] for s in j["students"]], res["unreg"]
        assert res["unreg"][0] == ["1-A", "s-1", "山田 一郎", "メール"], res["unreg"]
        assert res["unreg"][1][2] == EVIL and res["unreg"][1][3] == "なし（登録用紙で）", res["unreg"]

    with tap.check("[4] the reminder: asked first, then one broadcast (the API has it)"):
        asked = [m for t, m in res["dialogs"] if "登録のお願い" in m]
        assert len(asked) == 1 and "2 家庭" in asked[0] and "2 名" in asked[0], res["dialogs"]
        assert "2 家庭に登録のお願いを送りました（連絡先なし 2 名）" in res["remindDone"], res["remindDone"]
        bid = res["remindHref"].split("/", 1)[1]
        h = k.wait_done(bid, 60)
        assert h["category"] == "notice" and h["sender"] == "校長", h

    with tap.check("[5] nothing made from data, no dialog of its own, no console error"):
        assert res["xss"] is False and not res["errors"], (res["xss"], res["errors"])
        assert all(t == "confirm" for t, m in res["dialogs"]), res["dialogs"]
        for name, p in res["pages"].items():
            assert p["injected"] == 0, (name, p)

    with tap.check("[5] axe-core: no serious or critical violation"):
        for name, p in res["pages"].items():
            bad = [v for v in p["violations"] if v["impact"] in ("serious", "critical")]
            assert not bad, (name, bad)

    with tap.check("[5] nothing scrolls sideways at 390 px; screenshots saved"):
        for name, p in res["pages"].items():
            assert p["overflow"] == 0, (name, p["overflow"])
            for w in (390, 1280):
                assert os.path.exists(os.path.join(SHOT_DIR, "console_signup_%s_%d.png" % (name, w)))
        tap.diag("screenshots: %s/console_signup_*.png" % SHOT_DIR)

tap.done()
