#!/usr/bin/python3
"""test_unsubscribe_page.py - the one-click unsubscribe page (GET/POST
/u/<token>, issue 16) in a real browser.

Debian's /usr/bin/chromium, headless, driven by playwright-core
(tests/browser/unsubscribe.js), with axe-core's WCAG 2.1 A/AA rules
(tests/browser/a11y.js).  One redis-server, one kairand (outbox adapter,
http.public_url https://…), a child with one guardian, a broadcast of the
tenant's category 行事; the link is taken from the mail's List-Unsubscribe.

  [1] the page at 390 and 1280 px: axe clean, nothing scrolls sideways,
      no script, lang ja, the category shown, one form with one button;
      the GET changed nothing;
  [2] English (?lang=en): the same, lang en;
  [3] keyboard alone: Tab to the button (a focus outline), Enter: the done
      page (200) says so, links the my page (<public_url>/m); the guardian
      has opted out of 行事;
  [4] a link that is not valid: 400, says so, axe clean;
  [5] every page under a strict CSP (default-src 'none', no script-src,
      no 'unsafe-inline'), no console error but the expected 400;
  [6] screenshots under $BUILD/test-out/unsubscribe-*.png.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_unsubscribe_page.py
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
T = "sakura"
PUB = "https://kairan.example.jp"

if not os.access(CHROMIUM, os.X_OK):
    tap.skip("unsubscribe page in headless Chromium",
             "chromium is not installed (apt-get install chromium; scripts/deps.sh)")
    tap.done()

with tap.check("playwright-core and axe-core are installed in tests/browser (npm ci from the lock file)"):
    if not all(os.path.exists(os.path.join(BROWSER_DIR, "node_modules", m, "package.json"))
               for m in ("playwright-core", "axe-core")):
        cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr[-2000:]


def strict_csp(csp):
    return ("default-src 'none'" in csp and "script-src" not in csp
            and "unsafe-" not in csp and "style-src 'sha256-" in csp)


out = tmpdir("unsub-page")
os.makedirs(SHOT_DIR, exist_ok=True)
for old in glob.glob(os.path.join(SHOT_DIR, "unsubscribe-*.png")):
    os.unlink(old)

with Redis(out) as redis:
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "public_url": PUB}})
    P = k.prefix
    cp = k.ctl("category", "add", "--tenant", T, "行事")
    tap.ok(cp.returncode == 0, "the category is added", cp.stderr)
    path = os.path.join(out, "2A.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("ID,氏名,クラス,グループ,保護者氏名,メール\r\n"
                "c-1,山田 一郎,A,2A,山田 花子,mama@example.jp\r\n")
    cp = k.ctl("recipients", "import", "--tenant", T, path)
    tap.ok(cp.returncode == 0, "the class list imports", cp.stderr)
    d = k.start()
    d.wait_output('"listening"', 15)
    bid = k.submit({"tenant": T, "category": "行事", "subject": "運動会のお知らせ",
                    "body": "運動会は10月です。", "channels": ["email"],
                    "audience": {"groups": ["2A"]}})
    k.wait_done(bid, 60)
    emls = wait_for(lambda: glob.glob(os.path.join(k.outbox, bid, "*.eml")) or None,
                    30, 0.1, what="the .eml file")
    with open(emls[0], "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    m = re.fullmatch(re.escape("<" + PUB) + r"(/u/[A-Za-z0-9_.-]+)>", str(msg["List-Unsubscribe"]))
    tap.ok(m is not None and msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click",
           "the mail carries the one-click headers", str(msg["List-Unsubscribe"]))
    before = redis.call("HGET", P + "rcpt:%s:c-1" % T, "c")

    profile = os.path.join(out, "chromium-profile")
    os.makedirs(profile)
    cfg = {"url": base + m.group(1), "invalid": base + "/u/" + "x" * 40,
           "shots": SHOT_DIR, "profile": profile}
    r = None
    with tap.check("the browser driver runs every step"):
        cp = subprocess.run(["node", os.path.join(BROWSER_DIR, "unsubscribe.js"), json.dumps(cfg)],
                            cwd=BROWSER_DIR, capture_output=True, text=True, timeout=240)
        lines = [json.loads(x) for x in cp.stdout.splitlines() if x.startswith("{")]
        assert lines, (cp.returncode, cp.stdout[-1000:], cp.stderr[-3000:])
        r = lines[-1]
        assert r["event"] == "done", r.get("message", r)

    if r and r.get("event") == "done":
        tap.diag(json.dumps({k_: r[k_] for k_ in ("statuses", "csps")}, ensure_ascii=False))
        f = r["form"]
        tap.eq(f["axe390"] + f["axe1280"], [], "[1] the page: axe-core clean at 390 and 1280 px")
        tap.eq(f["overflow390"], 0, "[1] nothing scrolls sideways at 390 px")
        tap.ok(f["scripts"] == 0 and f["lang"] == "ja" and f["category"] == "行事"
               and f["forms"] == 1 and f["buttons"] == 1,
               "[1] no script, lang ja, the category, one form, one button",
               json.dumps(f, ensure_ascii=False)[:500])
        tap.eq(r["statuses"].get("form"), [200], "[1] GET: 200")
        e = r["en"]
        tap.ok(e["lang"] == "en" and e["category"] == "行事" and e["axe390"] == []
               and e["overflow390"] == 0, "[2] English: lang en, axe clean, fits",
               json.dumps(e, ensure_ascii=False)[:500])
        kk = r["keys"]
        tap.ok(kk["tabsToButton"] > 0 and kk["focusOutline"],
               "[3] keyboard alone: Tab reaches the button, a focus outline shows", json.dumps(kk))
        dn = r["done"]
        tap.ok(r["statuses"].get("done") == [200] and dn["h1"] == "配信を停止しました"
               and dn["forms"] == 0 and PUB + "/m" in dn["links"],
               "[3] Enter: the done page (200), no form, the my page linked",
               json.dumps(dn, ensure_ascii=False)[:600])
        tap.eq(dn["axe390"] + dn["axe1280"], [], "[3] the done page: axe-core clean")
        iv = r["invalid"]
        tap.ok(r["statuses"].get("invalid") == [400] and iv["err"] and iv["axe390"] == []
               and iv["forms"] == 0, "[4] an invalid link: 400, says so, axe clean",
               json.dumps(iv, ensure_ascii=False)[:500])
        tap.ok(all(strict_csp(c) for c in r["csps"].values()),
               "[5] every page under a strict CSP", json.dumps(r["csps"]))
        errs = [x for x in r["consoleErrors"] if not re.search(r"status of 400", x)]
        tap.eq(errs, [], "[5] no console error (no CSP violation, no exception)")

    with tap.check("[1][3] Redis: the GET changed nothing; the POST opted out of 行事 only"):
        c = json.loads(redis.call("HGET", P + "rcpt:%s:c-1" % T, "c"))
        assert "pf" not in json.loads(before), before
        assert c["pf"]["ox"] == ["行事"], c
        assert {x: c[x] for x in c if x != "pf"} == json.loads(before)

    with tap.check("[6] screenshots at 390 and 1280 px are saved under the test output"):
        shots = sorted(glob.glob(os.path.join(SHOT_DIR, "unsubscribe-*.png")))
        assert len(shots) == 8, shots
        tap.diag("screenshots: " + " ".join(os.path.basename(s) for s in shots))

    d.stop()

tap.diag("runtime %.1f s" % (time.monotonic() - T0))
tap.done()
