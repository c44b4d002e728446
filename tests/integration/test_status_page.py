#!/usr/bin/python3
"""test_status_page.py - the status page in a real browser (issue 5).

Debian's /usr/bin/chromium, headless, driven by playwright-core from npm
(tests/browser: package.json + package-lock.json; node_modules is made
with `npm ci` when missing).  The page comes from kairand's own port.

  [1] the page loads under its strict CSP with no console error;
  [2] a wrong token is refused and shows nothing; an operator token is
      taken from the form, kept in sessionStorage, cleared from the input,
      and survives a reload of the tab;
  [3] a broadcast submitted through the API appears with a progress bar
      that reaches 100 % (all delivered);
  [4] a rejected broadcast whose reason holds markup is shown as text:
      no element is created from it, no script runs;
  [5] a screenshot is saved as $BUILD/test-out/status_page.png.

Skipped (TAP "ok # SKIP") only when /usr/bin/chromium is not installed
(scripts/deps.sh installs it).

Run:  BUILD=build /usr/bin/python3 tests/integration/test_status_page.py
"""

import json
import os
import select
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
CHROMIUM = "/usr/bin/chromium"
SHOT_DIR = os.environ.get("KAIRAN_TEST_OUT") or os.path.join(BUILD, "test-out")

if not os.access(CHROMIUM, os.X_OK):
    tap.skip("status page in headless Chromium",
             "chromium is not installed (apt-get install chromium; scripts/deps.sh)")
    tap.done()

with tap.check("playwright-core and axe-core are installed in tests/browser (npm ci from the lock file)"):
    if not all(os.path.exists(os.path.join(BROWSER_DIR, "node_modules", m, "package.json"))
               for m in ("playwright-core", "axe-core")):
        cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr[-2000:]
    assert os.path.exists(os.path.join(BROWSER_DIR, "node_modules", "playwright-core",
                                       "package.json"))

out = tmpdir("status-page")
os.makedirs(SHOT_DIR, exist_ok=True)
SHOT = os.path.join(os.path.abspath(SHOT_DIR), "status_page.png")
try:
    os.unlink(SHOT)
except FileNotFoundError:
    pass


def post(port, path, token, body):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=json.dumps(body, ensure_ascii=False).encode(),
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"},
                                 method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def get(port, path, token):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def read_event(proc, timeout):
    """The next JSON line of the driver (skipping anything else)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("browser driver said nothing for %gs" % timeout)
        r, _, _ = select.select([proc.stdout], [], [], left)
        if not r:
            continue
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("browser driver exited (%s): %s"
                                 % (proc.wait(), proc.stderr.read()[-3000:]))
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") == "error":
            raise AssertionError("browser driver failed: " + ev["message"])
        return ev


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port},
                     "retention": {"audit_dir": os.path.join(out, "audit")},
                     "queue": {"retry_base_ms": "100", "retry_cap_ms": "1000",
                               "claim_idle_ms": "30000"}})
    admin = k.ctl("token", "create", "--role", "admin", "--name", "test admin").stdout.strip()
    operator = k.ctl("token", "create", "--role", "operator", "--name", "NOC").stdout.strip()
    d = k.start()
    d.wait_output('"listening"', 15)
    url = "http://127.0.0.1:%d/" % port

    profile = os.path.join(out, "chromium-profile")
    os.makedirs(profile)
    drv = subprocess.Popen(["node", os.path.join(BROWSER_DIR, "status_page.js"), url,
                            operator, SHOT, profile],
                           cwd=BROWSER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    result = None
    with tap.check("the page loads, refuses a wrong token, and shows data for an operator token"):
        read_event(drv, 45)

    with tap.check("a broadcast's progress bar reaches 100 %; a rejected one's markup stays text"):
        N = 40
        status, j = post(port, "/v1/broadcasts", admin, {
            "id": "bc-page-1", "tenant": "sakura", "category": "notice",
            "subject": "保護者会のお知らせ", "body": "本文", "channels": ["email"],
            "recipients": [{"id": "r-%d" % i, "email": "g%d@example.jp" % i}
                           for i in range(N)]})
        assert status == 202 and j["key"] == "bc-page-1", (status, j)
        page_bc = j["id"]  # kairan's name; "bc-page-1" is the key
        evil = "<img src=x onerror=window.__kairan_xss=true>"
        eid = redis.call("XADD", "kairan:broadcasts", "*", "job",
                         json.dumps({"id": "bc-evil-1", "tenant": "sakura", evil: 1,
                                     "subject": "s", "body": "b",
                                     "channels": ["email"]})).decode()
        # A rejected entry is kept under a name made from its entry id; its
        # reason never quotes the entry (the markup key is "?").  The page
        # must show as text whatever a record holds, so the reason is then
        # set to the markup itself, as a record of an older kairan could.
        rej = "rejected-" + eid
        h = k.wait_done(rej, 30)
        assert evil not in h.get("reason", ""), h
        redis.call("HSET", "kairan:bc:" + rej, "reason", "json: " + evil)
        # More active broadcasts than the list's 100 (ids of no record,
        # after the real one in the index's order: the list skips them,
        # the count has them).
        redis.call("ZADD", "kairan:active", *[x for i in range(120)
                                               for x in (9e12 + i, "bc-fake-%03d" % i)])
        # Three of them with a record, in two schools (and one ended, and
        # a name that is no broadcast id: neither counted per school).
        redis.call("HSET", "kairan:bc:bc-fake-000", "tenant", "kita", "status", "sending",
                   "jobs", 10, "final", 4)
        redis.call("HSET", "kairan:bc:bc-fake-001", "tenant", "kita", "status", "queued",
                   "jobs", 0, "final", 0)
        redis.call("HSET", "kairan:bc:bc-fake-002", "tenant", "minami", "status", "sending",
                   "jobs", 20, "final", 5)
        redis.call("HSET", "kairan:bc:bc-fake-003", "tenant", "minami", "status", "done",
                   "jobs", 7, "final", 7)
        # Counts no kairan writes (anyone with Redis access could): taken
        # within reason, never an overflow or a percent of 100 or more.
        redis.call("HSET", "kairan:bc:bc-fake-004", "tenant", "nishi", "status", "sending",
                   "jobs", "9223372036854775807", "final", "-5")
        redis.call("HSET", "kairan:bc:bc-fake-005", "tenant", "nishi", "status", "sending",
                   "jobs", "9223372036854775807", "final", "9223372036854775807")
        redis.call("ZADD", "kairan:active", 9e12, "../bc:bc-fake-002")
        active_total = int(redis.call("ZCARD", "kairan:active"))
        status, lst = get(port, "/v1/broadcasts?active=1", operator)
        assert status == 200 and lst["active_total"] == active_total, (status, lst.get("active_total"))
        assert len(lst["broadcasts"]) <= 100 + 50 + 50, len(lst["broadcasts"])
        # A broadcast that just ended stays listed however many were
        # created after it (60 newer here: the 50 newest created no
        # longer hold it; the index of the just ended, by done_ms, does).
        k.wait_done(page_bc, 30)
        assert redis.call("ZSCORE", "kairan:ended", page_bc) is not None
        now = int(time.time() * 1000)
        for i in range(60):
            redis.call("HSET", "kairan:bc:bc-new-%02d" % i, "tenant", "kita",
                       "status", "done", "created_ms", now + i, "done_ms", now + i,
                       "jobs", 0, "final", 0)
            redis.call("ZADD", "kairan:bcs", now + i, "bc-new-%02d" % i)
        status, lst = get(port, "/v1/broadcasts?active=1", operator)
        ids = [b["id"] for b in lst["broadcasts"]]
        assert status == 200 and page_bc in ids, (status, len(ids))
        assert "bc-new-59" in ids and len(ids) <= 100 + 50 + 50, len(ids)
        # the real one has left the active index now (done): count again
        active_total = int(redis.call("ZCARD", "kairan:active"))
        school = k.ctl("token", "create", "--role", "limited_admin", "--tenant", "sakura",
                       "--name", "sakura office").stdout.strip()
        status, lst = get(port, "/v1/broadcasts?active=1", school)
        assert status == 200 and "active_total" not in lst, lst.keys()  # one school's
        # The summary is kept 2 s for the next asker (the page polls it):
        # wait for one counted after the records above.
        seen = {}

        def summary_now():
            seen["s"] = get(port, "/v1/broadcasts?active=1&summary=tenant", operator)[1]
            return seen["s"]["active_total"] == active_total
        wait_for(summary_now, 15, what="a summary with the new records")
        sm = seen["s"]
        assert sm["counted"] == active_total - 1, sm  # not the "../" name
        assert sm["tenants"] == [
            {"tenant": "kita", "active": 2, "jobs": 10, "final": 4, "percent": 40},
            {"tenant": "nishi", "active": 2, "jobs": 2 * 10**12, "final": 10**12, "percent": 50},
            {"tenant": "minami", "active": 1, "jobs": 20, "final": 5, "percent": 25}], sm
        # The same hostile counts in an ended record: kairanctl watch draws
        # its bar within its buffer (final above jobs once meant a bar of
        # 40,000 characters written into 41 bytes).
        redis.call("HSET", "kairan:bc:bc-fake-006", "tenant", "nishi", "status", "done",
                   "done_ms", "1", "jobs", "1", "final", "1000", "n:line:delivered",
                   "9223372036854775807", "n:email:delivered", "9223372036854775807")
        cp = k.ctl("watch", "bc-fake-006", timeout=30)
        assert cp.returncode in (0, 1) and "100%" in cp.stdout, (cp.returncode, cp.stdout,
                                                                 cp.stderr[-500:])
        try:
            get(port, "/v1/broadcasts?active=1&summary=tenant", school)
            assert False, "a school's token got the summary"
        except urllib.error.HTTPError as e:
            assert e.code == 400 and json.loads(e.read())["field"] == "summary"
        drv.stdin.write(json.dumps({"broadcast": page_bc, "active_total": active_total,
                                    "rejected": "rejected-" + eid}) + "\n")
        drv.stdin.flush()
        result = read_event(drv, 60)
        bar = result["bar"]
        assert bar["pct"] == "100 %" and bar["valuenow"] == "100", bar
        assert bar["delivered"] == "100%" and bar["status"] == "done", bar
        assert bar["statusText"] == "完了", bar
        assert "進行中 %d 件のうち" % active_total in result["countJa"], result["countJa"]
        assert result["schools"] == [["kita", "2", "40 %（4 / 10 件）"],
                                     ["nishi", "2", "50 %（1000000000000 / 2000000000000 件）"],
                                     ["minami", "1", "25 %（5 / 20 件）"]], result["schools"]
        assert any(evil in t for t in result["rejected"]), result["rejected"]
        assert result["injected"] == 0 and result["xss"] is False and result["alerts"] == 0

    if result:
        tap.ok("script-src 'self'" in result["csp"] and "unsafe-inline" not in result["csp"],
               "served with a strict CSP", result["csp"])
        tap.ok(result["mainHiddenAfterBad"] and "受け付けられません" in result["refusedMsg"],
               "a wrong token is refused and the data stays hidden", result["refusedMsg"])
        tap.ok(result["storedMatches"] and result["inputCleared"],
               "the token is kept in sessionStorage, not in the input field")
        # The wrong token's three 401s are expected; anything else (a CSP
        # violation, an exception, a missing file) is not.
        errs = [e for e in result["consoleErrors"]
                if "status of 401" not in e]
        tap.eq(errs, [], "no console errors (no CSP violation, no exception, no 404)")
        tap.ok("メール" in result["legend"] and "smtp: 正常" in result["breakers"]
               and result["dlq"].strip() == "0",
               "chart legend, breaker state and DLQ size shown",
               "%r %r %r" % (result["legend"], result["breakers"], result["dlq"]))
        tap.ok(result["tabs"] > 0, "the token field is reached with the Tab key and the "
               "page opens with Enter (keyboard alone)", "tabs: %r" % result["tabs"])
        tap.eq(result["axeWide"], [], "axe-core (WCAG 2.1 A/AA): no violation at 1100 px")
        tap.eq(result["overflow390"], 0, "nothing scrolls sideways on a 390 px phone")
        tap.eq(result["axe390"], [], "axe-core (WCAG 2.1 A/AA): no violation at 390 px")
        tap.ok(result["langJa"] == "ja" and "キューの深さ" in result["headJa"],
               "Japanese first: lang=ja and the page's words in Japanese",
               "%r %r" % (result["langJa"], result["headJa"]))
        en = result["en"]
        tap.ok(result["langTabs"] > 0 and en["h2"].startswith("Queue depth")
               and "e-mail" in en["legend"] and "smtp: closed" in en["breakers"]
               and "Showing" in en["count"] and en["title"] == "kairan status",
               "English with the keyboard alone (Tab to the menu, a key): every word, "
               "the data's too", repr(en))
        tap.eq(result["axeEn"], [], "axe-core: no violation in English")
        tap.eq(result["overflow390En"], 0, "in English nothing scrolls sideways at 390 px")
        tap.ok(result["langAfterReload"] == "en" and "e-mail" in result["legendAfterReload"],
               "the language chosen is kept over a reload",
               "%r %r" % (result["langAfterReload"], result["legendAfterReload"]))

    with tap.check("the driver exits 0 and the screenshot is saved under the test output"):
        rc = drv.wait(30)
        assert rc == 0, (rc, drv.stderr.read()[-2000:])
        assert os.path.getsize(SHOT) > 10000, SHOT
        with open(SHOT, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        tap.diag("screenshot: " + SHOT)

    with tap.check("the page's data calls were logged in the login log as the operator"):
        with open(os.path.join(out, "audit", "login.jsonl")) as f:
            lines = [json.loads(l) for l in f]
        ops = [l for l in lines if l["role"] == "operator" and l["result"] == "ok"]
        paths = {l["path"] for l in ops}
        assert {"/v1/queues", "/v1/broadcasts", "/v1/queues/history"} <= paths, paths
        assert any(l["result"] == "unknown" for l in lines)

    if drv.poll() is None:
        drv.kill()
    d.stop()

tap.diag("runtime %.1f s" % (time.monotonic() - T0))
tap.done()
