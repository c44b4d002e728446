#!/usr/bin/python3
"""test_ack_page.py - the guardians' confirmation page in a real browser.

Debian's /usr/bin/chromium, headless, driven by playwright-core from npm
(tests/browser/ack_page.js; node_modules is made with `npm ci` when
missing), with axe-core's WCAG 2.1 A/AA rules (tests/browser/a11y.js).
One redis-server, one kairand (outbox adapter), a class of four imported
from a class list: c-1, c-2 and c-3 share their mother's address, c-6 has
its own.  One drill with three choices to the class.

  [1] the one-child page (c-6): axe clean at 390 and 1280 px, nothing
      scrolls sideways at 390, no script, lang ja;
  [2] submitting without an answer is stopped by the browser (`required`:
      no request, nothing recorded); forced past it, the 400 page says
      what to fix (Japanese and English) and offers the form again;
  [3] with the keyboard alone: Tab to the answers, arrow to one, Tab to
      the comment and type it (it holds markup), Tab to the button,
      Enter; the thank-you page shows the answer and the comment as text
      (no element made from it); recorded once, the comment sealed;
  [4] the guardian of three: one form per child (names as headings) and
      one for all at once, each with the answers; axe clean at both
      widths; one child's form then the all-at-once form with the keyboard
      alone; each child recorded with its own answer;
  [5] the invalid link: 404, says so in Japanese and English, axe clean;
  [6] every page under a strict CSP (default-src 'none', no script-src,
      no 'unsafe-inline'), no console error (a CSP violation would show
      there), no dialog;
  [7] screenshots at 390 and 1280 px of each page under
      $BUILD/test-out/ack_page-*.png.

Skipped (TAP "ok # SKIP") only when /usr/bin/chromium is not installed.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_ack_page.py
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
CHOICES = ["無事です", "けがをしています", "お迎えが必要です"]
COMMENT = "<b>足をけが</b> & \"迎え\" <script>alert(1)</script>"

if not os.access(CHROMIUM, os.X_OK):
    tap.skip("confirmation page in headless Chromium",
             "chromium is not installed (apt-get install chromium; scripts/deps.sh)")
    tap.done()

with tap.check("playwright-core and axe-core are installed in tests/browser (npm ci from the lock file)"):
    if not all(os.path.exists(os.path.join(BROWSER_DIR, "node_modules", m, "package.json"))
               for m in ("playwright-core", "axe-core")):
        cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr[-2000:]

CLASS_LIST = "\r\n".join([
    "ID,氏名,クラス,グループ,保護者氏名,メール",
    "c-1,山田 一郎,A,2年A組,山田 花子,mama@example.jp",
    "c-2,山田 二子,A,2年A組,山田 花子,mama@example.jp",
    "c-3,山田 三郎,A,2年A組,山田 花子,mama@example.jp",
    "c-6,田中 六郎,A,2年A組,田中 父,roku@example.jp",
]) + "\r\n"


def links_of(outbox, bid):
    """{recipient address: link path} from the .eml files of a broadcast."""
    res = {}
    for path in glob.glob(os.path.join(outbox, bid, "*.eml")):
        with open(path, "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        m = re.search(r"https?://[^/\s]+(/a/[A-Za-z0-9_.-]+)",
                      msg.get_body(("plain",)).get_content())
        res[str(msg["To"]).lower()] = m.group(1) if m else None
    return res


def strict_csp(csp):
    return ("default-src 'none'" in csp and "script-src" not in csp
            and "unsafe-" not in csp and "style-src 'sha256-" in csp)


out = tmpdir("ack-page")
os.makedirs(SHOT_DIR, exist_ok=True)
for old in glob.glob(os.path.join(SHOT_DIR, "ack_page-*.png")):
    os.unlink(old)

with Redis(out) as redis:
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "public_url": base}})
    P = k.prefix
    d = k.start()
    d.wait_output('"listening"', 15)

    path = os.path.join(out, "2A.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write(CLASS_LIST)
    cp = k.ctl("recipients", "import", "--tenant", T, path)
    tap.ok(cp.returncode == 0, "the class list imports", cp.stderr)

    drill = {"tenant": T, "category": "emergency", "subject": "安否確認 (地震)",
             "body": "地震がありました。\nお子さまの様子を答えてください。<学校>",
             "channels": ["email"], "audience": {"groups": ["2年A組"]},
             "choices": CHOICES}
    cp = k.ctl("drill", "-", input=json.dumps(drill, ensure_ascii=False))
    bid = cp.stdout.strip()
    if cp.returncode != 0 or not bid:
        tap.ok(False, "kairanctl drill prints an id", cp.stderr)
        d.stop()
        tap.done()
    k.wait_done(bid, 60)
    links = wait_for(lambda: (lambda L: L if len(L) == 2 else None)(links_of(k.outbox, bid)),
                     30, 0.1, what="2 .eml files")
    one, three = links["roku@example.jp"], links["mama@example.jp"]
    # The family's link is one child's; the form of another sibling is
    # the one driven by keyboard.
    own = redis.call("HKEYS", P + "bc:%s:fam" % bid)
    kid = sorted({"c-1", "c-2", "c-3"} - {x.decode() for x in own})[0]

    profile = os.path.join(out, "chromium-profile")
    os.makedirs(profile)
    cfg = {"one": base + one, "three": base + three,
           "invalid": base + "/a/" + "x" * 40, "comment": COMMENT, "kid": kid,
           "shots": SHOT_DIR, "profile": profile}
    r = None
    with tap.check("the browser driver runs every step"):
        cp = subprocess.run(["node", os.path.join(BROWSER_DIR, "ack_page.js"), json.dumps(cfg)],
                            cwd=BROWSER_DIR, capture_output=True, text=True, timeout=240)
        lines = [json.loads(x) for x in cp.stdout.splitlines() if x.startswith("{")]
        assert lines, (cp.returncode, cp.stdout[-1000:], cp.stderr[-3000:])
        r = lines[-1]
        assert r["event"] == "done", r.get("message", r)
        assert cp.returncode == 0, cp.stderr[-2000:]

    if r and r.get("event") == "done":
        tap.diag(json.dumps({k_: r[k_] for k_ in ("statuses", "csps")}, ensure_ascii=False))
        o = r["one"]
        tap.eq(o["axe390"], [], "[1] one child: axe-core (WCAG 2.1 A/AA) clean at 390 px")
        tap.eq(o["axe1280"], [], "[1] one child: axe-core (WCAG 2.1 A/AA) clean at 1280 px")
        tap.eq(o["overflow390"], 0, "[1] one child: nothing scrolls sideways at 390 px")
        tap.eq(o["outside390"], [], "[1] one child: no field sticks out of the column at 390 px")
        tap.ok(o["scripts"] == 0 and o["lang"] == "ja", "[1] no script; lang ja",
               "%r %r" % (o["scripts"], o["lang"]))
        tap.eq(o["choices"], CHOICES, "[1] the answers are offered, in order")
        tap.eq(o["title"], "確認のお願い: " + drill["subject"],
               "[1] the title says which message")

        q = r["required"]
        tap.ok(q["tabsToButton"] > 0 and not q["valid"] and q["message"]
               and q["navigated"] == 0,
               "[2] Enter without an answer: the browser's `required` stops it (no request)",
               json.dumps(q, ensure_ascii=False))
        f = r["forced"]
        tap.ok(f["status"] == [400] and f["err"] and "回答を一つ選んでください" in f["err"]
               and "Pick one of the answers" in f["err"] and f["errRole"] == "alert"
               and f["forms"] == 1,
               "[2] forced without an answer: 400, says what to fix (ja/en), the form again",
               json.dumps(f, ensure_ascii=False)[:600])
        tap.eq(f["title"], "エラー: 確認のお願い: " + drill["subject"],
               "[2] the 400 page's title starts with エラー")
        tap.eq(f["axe390"] + f["axe1280"], [], "[2] the 400 page: axe-core clean at both widths")
        tap.eq(f["overflow390"], 0, "[2] the 400 page: nothing scrolls sideways at 390 px")

        kk = r["keys"]
        tap.ok(kk["tabsToRadio"] > 0 and kk["checked"] == "1" and kk["tabsToComment"] > 0
               and kk["tabsToButton"] > 0,
               "[3] keyboard alone: Tab to the answers, arrow to one, Tab to the comment, "
               "Tab to the button", json.dumps(kk))
        tap.ok(kk["focusOutline"], "[3] the focused button shows a focus outline")
        t = r["thanks"]
        tap.ok(t["status"] == [200] and t["ok"] and "ありがとうございました" in t["ok"]
               and t["forms"] == 0,
               "[3] Enter: the thank-you page (200), no form left", json.dumps(t, ensure_ascii=False)[:600])
        tap.eq(t["recorded"], [{"child": None, "answer": CHOICES[1], "comment": COMMENT}],
               "[3] the thank-you page shows the answer and the comment as typed")
        tap.eq(t["injected"], 0, "[3] the comment's markup made no element")
        tap.ok(re.fullmatch(r"20\d\d年\d{1,2}月\d{1,2}日 \d\d:\d\d", t["time"]["text"])
               and re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+09:00",
                                t["time"]["datetime"]),
               "[3] the time for people (年月日 時:分), RFC 3339 in the datetime attribute",
               json.dumps(t["time"], ensure_ascii=False))
        tap.ok("(Confirmed. Thank you.)" in t["en"] and "(Answer)" in t["en"],
               "[3] English hints, marked lang=en", json.dumps(t["en"]))
        tap.eq(t["axe390"] + t["axe1280"], [], "[3] the thank-you page: axe-core clean")
        tap.eq(t["overflow390"], 0, "[3] the thank-you page: nothing scrolls sideways at 390 px")

        th = r["three"]
        tap.eq(sorted(th["children"]), ["山田 一郎", "山田 三郎", "山田 二子"],
               "[4] the guardian of three: each child by name")
        tap.eq(sorted(x["child"] for x in th["forms"]), ["*", "c-1", "c-2", "c-3"],
               "[4] one form per child and one for all at once")
        tap.ok(all(x["radios"] == 3 for x in th["forms"]),
               "[4] every form offers the three answers", json.dumps(th["forms"], ensure_ascii=False))
        tap.eq(th["axe390"], [], "[4] the guardian of three: axe-core clean at 390 px")
        tap.eq(th["axe1280"], [], "[4] the guardian of three: axe-core clean at 1280 px")
        tap.eq(th["overflow390"], 0, "[4] the guardian of three: nothing scrolls sideways at 390 px")
        tap.eq(th["outside390"], [], "[4] the guardian of three: no field sticks out at 390 px")
        tap.eq(th["regions"], {n: {"buttons": 1, "described": n} for n in th["children"]},
               "[4] to a screen reader each child is a region named by its name, "
               "its button described by it")
        kd = r["kid"]
        tap.ok(kd["tabsToRadio"] > 0 and kd["checked"] == "0" and kd["tabsToComment"] > 0
               and kd["tabsToButton"] > 0 and kd["status"] == [200],
               "[4] one child's form with the keyboard alone", json.dumps(kd)[:400])
        tap.eq([x["answer"] for x in kd["recorded"]], [CHOICES[0]],
               "[4] that child alone is recorded, with its answer")
        tap.eq(sorted(x for x in kd["forms"]), sorted(["*"] + sorted({"c-1", "c-2", "c-3"} - {kid})),
               "[4] the two other children keep their forms, and the one for all")
        tap.eq(kd["axe390"] + kd["axe1280"], [], "[4] after one child: axe-core clean")
        al = r["all"]
        tap.ok(al["tabsToRadio"] > 0 and al["checked"] == "2" and al["tabsToButton"] > 0
               and al["status"] == [200] and al["forms"] == 0,
               "[4] the form for all at once with the keyboard alone; no form left",
               json.dumps(al)[:400])
        tap.eq(sorted(x["answer"] for x in al["recorded"]),
               sorted([CHOICES[0], CHOICES[2], CHOICES[2]]),
               "[4] every child shown with its own answer")
        tap.eq(al["axe390"] + al["axe1280"], [], "[4] all confirmed: axe-core clean")
        tap.eq(al["overflow390"], 0, "[4] all confirmed: nothing scrolls sideways at 390 px")

        iv = r["invalid"]
        tap.ok(iv["status"] == 404 and "無効" in iv["h1"] and "not valid" in iv["text"],
               "[5] the invalid link: 404, said in Japanese and English", json.dumps(iv)[:300])
        tap.eq(iv["axe390"] + iv["axe1280"], [], "[5] the invalid link: axe-core clean")
        tap.eq(iv["overflow390"], 0, "[5] the invalid link: nothing scrolls sideways at 390 px")

        bad = {s: c for s, c in r["csps"].items() if not strict_csp(c)}
        tap.eq(bad, {}, "[6] every page under a strict CSP (no script-src, no unsafe-*)")
        # Chromium logs each 4xx document; those are expected, nothing else.
        errs = [e for e in r["consoleErrors"]
                if not re.search(r"status of (400|404)", e)]
        tap.eq(errs, [], "[6] no console error (no CSP violation, no exception)")
        tap.eq(r["dialogs"], 0, "[6] no dialog")

    with tap.check("[3][4] Redis: each child once, with its answer; comments sealed"):
        ack = {a.decode(): json.loads(b) for a, b in
               zip(*[iter(redis.call("HGETALL", P + "bc:%s:ack" % bid))] * 2)}
        assert sorted(ack) == ["c-1", "c-2", "c-3", "c-6"], ack
        assert ack["c-6"]["a"] == 1 and "c" in ack["c-6"], ack["c-6"]
        assert ack[kid]["a"] == 0 and "c" in ack[kid], ack[kid]
        assert all(ack[c]["a"] == 2 and "c" not in ack[c]
                   for c in ("c-1", "c-2", "c-3") if c != kid), ack
        dumped = json.dumps(ack)
        assert "足" not in dumped and "Kid comment" not in dumped, dumped
        assert k.bc(bid)["acked"] == "4", k.bc(bid)

    with tap.check("[7] screenshots at 390 and 1280 px are saved under the test output"):
        shots = sorted(glob.glob(os.path.join(SHOT_DIR, "ack_page-*.png")))
        assert len(shots) == 14, shots
        for s in shots:
            with open(s, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n", s
        tap.diag("screenshots: " + " ".join(os.path.basename(s) for s in shots))

    d.stop()

tap.diag("runtime %.1f s" % (time.monotonic() - T0))
tap.done()
