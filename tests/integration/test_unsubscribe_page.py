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
  [2] English (?lang=en): the same, lang en; the link of a mail in
      Vietnamese (a guardian reading vi, a broadcast with a vi
      translation) carries ?lang=vi and opens the Vietnamese page (its
      texts, lang vi, the form posting in Vietnamese); ?lang=zh: lang
      zh-Hans; ?lang=xx (a language of no page): English; ja-JP or a
      malformed one: Japanese; each page links the five others, each
      named in itself with its hreflang; Tab and Enter on Português
      open the Portuguese page;
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
STRINGS_DIR = os.path.join(ROOT, "web", "unsub")
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


def strings(code):
    with open(os.path.join(STRINGS_DIR, "strings-%s.json" % code),
              encoding="utf-8") as f:
        return json.load(f)


LANGS = ("ja", "en", "fil", "pt", "vi", "zh")  # Japanese first, then by code


def others(code):
    """The language links a page in code shows."""
    return [{"href": "?lang=" + c, "hreflang": strings(c)["lang"],
             "lang": strings(c)["lang"], "text": strings(c)["lang_name"]}
            for c in LANGS if c != code]


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
                "c-1,山田 一郎,A,2A,山田 花子,mama@example.jp\r\n"
                "c-2,グエン アン,A,2A,グエン ホア,me.vi@example.jp\r\n")
    cp = k.ctl("recipients", "import", "--tenant", T, path)
    tap.ok(cp.returncode == 0, "the class list imports", cp.stderr)
    # c-2's guardian reads Vietnamese (what the my page or the
    # registration page write)
    c2 = json.loads(redis.call("HGET", P + "rcpt:%s:c-2" % T, "c"))
    c2["pf"] = {"lg": "vi", "at": int(time.time() * 1000)}
    redis.call("HSET", P + "rcpt:%s:c-2" % T, "c", json.dumps(c2, separators=(",", ":")))
    d = k.start()
    d.wait_output('"listening"', 15)
    bid = k.submit({"tenant": T, "category": "行事", "subject": "運動会のお知らせ",
                    "body": "運動会は10月です。", "channels": ["email"],
                    "audience": {"groups": ["2A"]},
                    "translations": {"vi": {"subject": "Thông báo hội thao",
                                            "body": "Hội thao vào tháng 10."}}})
    k.wait_done(bid, 60)
    emls = wait_for(lambda: len(glob.glob(os.path.join(k.outbox, bid, "*.eml"))) == 2
                    and glob.glob(os.path.join(k.outbox, bid, "*.eml")) or None,
                    30, 0.1, what="the two .eml files")
    by_to = {}
    for e in emls:
        with open(e, "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        by_to[str(msg["To"])] = msg
    msg, msg_vi = by_to["mama@example.jp"], by_to["me.vi@example.jp"]
    m = re.fullmatch(re.escape("<" + PUB) + r"(/u/[A-Za-z0-9_.-]+)>", str(msg["List-Unsubscribe"]))
    tap.ok(m is not None and msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click",
           "the mail carries the one-click headers", str(msg["List-Unsubscribe"]))
    m_vi = re.fullmatch(re.escape("<" + PUB) + r"(/u/[A-Za-z0-9_.-]+\?lang=vi)>",
                        str(msg_vi["List-Unsubscribe"]))
    tap.ok(m_vi is not None and str(msg_vi["Subject"]) == "Thông báo hội thao"
           and msg_vi["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click",
           "[2] the Vietnamese mail's link carries ?lang=vi",
           str(msg_vi["List-Unsubscribe"]))
    before = redis.call("HGET", P + "rcpt:%s:c-1" % T, "c")

    profile = os.path.join(out, "chromium-profile")
    os.makedirs(profile)
    cfg = {"url": base + m.group(1), "invalid": base + "/u/" + "x" * 40,
           "vi": base + (m_vi.group(1) if m_vi else m.group(1) + "?lang=vi"),
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
        vi, xx, zh = r["vi"], r["xx"], r["zh"]
        tap.ok(vi["lang"] == "vi" and vi["h1"] == strings("vi")["form.heading"]
               and vi["title"] == strings("vi")["title"]
               and vi["category"] == "行事" and vi["forms"] == 1
               and vi["action"].endswith("?lang=vi"),
               "[2] the Vietnamese mail's link: the Vietnamese page, lang vi, "
               "the form posting in Vietnamese",
               json.dumps({x: vi[x] for x in ("lang", "h1", "action")},
                          ensure_ascii=False))
        jj, bad = r["jajp"], r["bad"]
        tap.ok(xx["lang"] == "en" and xx["h1"] == strings("en")["form.heading"]
               and jj["lang"] == "ja" and bad["lang"] == "ja"
               and zh["lang"] == "zh-Hans" and zh["h1"] == strings("zh")["form.heading"],
               "[2] ?lang=xx (a language of no page, as a translation typed in "
               "by hand): English; ja-JP and a malformed one: Japanese; ?lang=zh: "
               "lang zh-Hans, the Chinese texts",
               json.dumps([xx["lang"], xx["h1"], jj["lang"], bad["lang"], zh["lang"],
                           zh["h1"]], ensure_ascii=False))
        tap.eq({n: r[n]["langs"] for n in ("form", "en", "vi", "zh")},
               {n: others(c) for n, c in (("form", "ja"), ("en", "en"),
                                          ("vi", "vi"), ("zh", "zh"))},
               "[2] each page links the five other languages, each named in "
               "itself, with hreflang and lang")
        tap.eq({n: r[n]["axe390"] + r[n]["axe1280"] + [r[n]["overflow390"]]
                for n in ("vi", "xx", "zh")}, {n: [0] for n in ("vi", "xx", "zh")},
               "[2] Vietnamese, Chinese, unknown: axe-core clean, nothing scrolls "
               "sideways at 390 px")
        pk = r["ptKeys"]
        tap.ok(pk["tabs"] > 0 and pk["url"].endswith("?lang=pt") and pk["lang"] == "pt"
               and pk["h1"] == strings("pt")["form.heading"],
               "[2] keyboard alone: Tab to Português, Enter: the Portuguese page",
               json.dumps(pk, ensure_ascii=False))
        kk = r["keys"]
        tap.ok(kk["tabsToButton"] > 0 and kk["focusOutline"],
               "[3] keyboard alone: Tab reaches the button, a focus outline shows", json.dumps(kk))
        dn = r["done"]
        tap.ok(r["statuses"].get("done") == [200] and dn["h1"] == "配信を停止しました"
               and dn["forms"] == 0 and PUB + "/m" in dn["links"] and dn["langs"] == [],
               "[3] Enter: the done page (200), no form, the my page linked, no "
               "language links (they led to the form again)",
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
        want = {"unsubscribe-%s-%d.png" % (n, w)
                for n in ("form", "form-en", "form-vi", "form-xx", "form-ja-jp",
                          "form-bad", "form-zh", "done", "invalid")
                for w in (390, 1280)}
        assert want <= {os.path.basename(s) for s in shots}, shots
        tap.diag("screenshots: " + " ".join(os.path.basename(s) for s in shots))

    d.stop()

tap.diag("runtime %.1f s" % (time.monotonic() - T0))
tap.done()
