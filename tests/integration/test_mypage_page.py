#!/usr/bin/python3
"""test_mypage_page.py - the guardian's my page (/m) in a real browser at a
390 px phone viewport: Debian's /usr/bin/chromium, headless, driven by
playwright-core (tests/browser/mypage.js; node_modules is made with `npm
ci` when missing), with axe-core (tests/browser/a11y.js).

One redis-server, the fake SMTP server, one kairand; a child whose mother
has an e-mail address and a LINE account, and a classmate whose guardian
reads Portuguese ("pf"."lg" = "pt"); a broadcast to the class sends each
the mail with the link.

  [1] the link from the received mail opens the page in Japanese; the
      token leaves the address bar; the child named; her channels in
      order with the address masked; 言語 and 保存する; categories with
      the emergency one locked on; the note that urgent messages still
      arrive; the message of the class, opened with the keyboard.
  [2] with the keyboard alone: LINE moved up (focus stays on it), 言語 to
      English, Tab to 保存する, Enter: saved (the page turns English), and
      the guardian's "pf" holds the order and the language.
  [3] stopping e-mail asks for the code (an alert, the code box); the
      code is sent to her address, read from the fake SMTP server, typed:
      saved; "pf"."xc" is ["email"].
  [4] the page again (same tab): English, LINE first, e-mail stopped.
  [5] a link that is not valid shows the "send me my link" form; ID and
      address sent: the same answer, and a mail with a new link arrives.
  [6] axe-core finds no serious or critical violation at 390 and 1280 px;
      nothing scrolls sideways at 390 px; no console error; every
      document under the strict CSP with Trusted Types; screenshots in
      $BUILD/test-out/mypage-*.png.
  [7] the Portuguese guardian's link opens the page in Portuguese (html
      lang "pt", the texts of strings-pt.json, 言語 on "pt"); the list
      表示言語 / Display language names each of the six languages in
      itself, with its lang (中文: "zh-Hans"): one per strings file.
  [8] with the keyboard alone (Shift+Tab from the heading to the list,
      arrows) to 中文: Chinese, html lang "zh-Hans", the focus stays on
      the list; then Tiếng Việt and Filipino.  Only the page changes: 言語
      and the guardian's "pf"."lg" stay "pt".
  [9] a language whose strings file is missing (the answer stubbed to a
      404): the English page, the list on English.
  [10] axe-core: no violation at all at 390 px in pt, zh, vi, fil, and
      none serious or critical at 1280 px; nothing scrolls sideways;
      the "send me my link" form switched to Vietnamese, its message
      too; screenshots mypage-{pt,zh,vi,fil,link-vi}-390.png.
  Every strings file has exactly the keys of strings-ja.json, and each
  text's {placeholders} are Japanese's (no browser needed).

Skipped (TAP "ok # SKIP") only when /usr/bin/chromium is not installed.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_mypage_page.py
"""

import csv
import glob
import io
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
CHROMIUM = "/usr/bin/chromium"
SHOT_DIR = os.path.abspath(os.environ.get("KAIRAN_TEST_OUT")
                           or os.path.join(BUILD, "test-out"))
T = "sakura-es"
MOM = "tanaka.mama@docomo.ne.jp"
PT = "silva.mae@example.jp"
WEB = os.path.join(ROOT, "web", "mypage")
NEW = ("pt", "zh", "vi", "fil")


def strings(code):
    with open(os.path.join(WEB, "strings-%s.json" % code),
              encoding="utf-8") as f:
        return json.load(f)


# No browser needed: every language's strings file has the keys of the
# Japanese one, no more and no fewer, and the same placeholders.
with tap.check("every web/mypage/strings-*.json has exactly the keys and "
               "the {placeholders} of strings-ja.json"):
    ja = strings("ja")
    codes = sorted(os.path.basename(x)[8:-5] for x in
                   glob.glob(os.path.join(WEB, "strings-*.json")))
    assert codes == sorted(["ja", "en"] + list(NEW)), codes
    bad = {}
    for code in codes:
        s = strings(code)
        if set(s) != set(ja):
            bad[code] = {"missing": sorted(set(ja) - set(s)),
                         "extra": sorted(set(s) - set(ja))}
        for key in set(s) & set(ja):
            want = sorted(re.findall(r"\{\w+\}", ja[key]))
            if not isinstance(s[key], str) or not s[key].strip() or \
                    sorted(re.findall(r"\{\w+\}", s[key])) != want:
                bad["%s.%s" % (code, key)] = s[key]
    assert not bad, json.dumps(bad, ensure_ascii=False)
    # each language is named in itself, the same in every file
    assert all(strings(c)["lang_" + x] == ja["lang_" + x]
               for c in codes for x in codes), "lang_* differ"
LINE_ID = "U" + "0123456789abcdef" * 2

if not os.access(CHROMIUM, os.X_OK):
    tap.skip("my page in headless Chromium",
             "chromium is not installed (apt-get install chromium; scripts/deps.sh)")
    tap.done()

with tap.check("playwright-core and axe-core are installed in tests/browser "
               "(npm ci from the lock file)"):
    if not all(os.path.exists(os.path.join(BROWSER_DIR, "node_modules", m,
                                           "package.json"))
               for m in ("playwright-core", "axe-core")):
        cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"],
                            cwd=BROWSER_DIR, capture_output=True, text=True,
                            timeout=120)
        assert cp.returncode == 0, cp.stderr[-2000:]

out = tmpdir("mypage-page")
os.makedirs(SHOT_DIR, exist_ok=True)
for old in glob.glob(os.path.join(SHOT_DIR, "mypage-*.png")):
    os.unlink(old)

with Redis(out) as redis, FakeSMTP(out) as smtp:
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    k = Kairan(out, redis, smtp=smtp,
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "public_url": base, "rate": "1000"}})
    path = os.path.join(out, "1A.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,name,class,groups,email,line\r\n"
                "s-2,田中 二郎,A,1年A組,%s,%s\r\n"
                "s-3,シルバ アナ,A,1年A組,%s,\r\n" % (MOM, LINE_ID, PT))
    cp = k.ctl("recipients", "import", "--tenant", T, path)
    assert cp.returncode == 0, cp.stderr
    cp = k.ctl("category", "add", "--tenant", T, "行事")
    assert cp.returncode == 0, cp.stderr
    cp = k.ctl("recipients", "sheets", "--tenant", T, "--format", "csv")
    assert cp.returncode == 0, cp.stderr
    row = [x for x in csv.DictReader(io.StringIO(cp.stdout))
           if x["student"] == "s-2"][0]
    # s-3's guardian reads Portuguese (what my page or /r would write)
    key = k.prefix + "rcpt:%s:s-3" % T
    c = json.loads(redis.call("HGET", key, "c"))
    c["pf"] = {"lg": "pt", "at": int(time.time() * 1000)}
    redis.call("HSET", key, "c", json.dumps(c, separators=(",", ":")))
    d = k.start()
    d.wait_output('"listening"', 15)
    bid = k.submit({"tenant": T, "subject": "遠足のお知らせ",
                    "body": "来週は遠足です。\n<b>お弁当</b>を持ってきてください。",
                    "category": "行事", "channels": ["email"],
                    "audience": {"groups": ["1年A組"]}})
    k.wait_done(bid, 60)

    def pf(child="s-2"):
        return json.loads(redis.call("HGET", k.prefix + "rcpt:%s:%s" %
                                     (T, child), "c")).get("pf", {})

    profile = os.path.join(out, "chromium-profile")
    os.makedirs(profile)
    cfg = {"base": base, "mom": MOM, "sheet": row["id"], "pt": PT,
           "messages": smtp.messages_path, "shots": SHOT_DIR,
           "profile": profile}
    r = None
    with tap.check("the browser driver runs every step"):
        cp = subprocess.run(["node", os.path.join(BROWSER_DIR, "mypage.js"),
                             json.dumps(cfg)], cwd=BROWSER_DIR,
                            capture_output=True, text=True, timeout=300)
        lines = [json.loads(x) for x in cp.stdout.splitlines()
                 if x.startswith("{")]
        assert lines, (cp.returncode, cp.stdout[-1000:], cp.stderr[-3000:])
        r = lines[-1]
        assert r["event"] == "done", (r.get("message"),
                                      json.dumps(r.get("partial"),
                                                 ensure_ascii=False)[:1500])
        assert cp.returncode == 0, cp.stderr[-2000:]

    if r and r.get("event") == "done":
        m = r["main"]
        tap.ok(m["lang"] == "ja" and m["url"] == base + "/m" and
               "田中 二郎" in m["who"] and m["order"] == ["1. メール",
                                                          "2. LINE"]
               and m["address"].endswith("@docomo.ne.jp") and
               MOM not in m["address"],
               "[1] the mail's link: Japanese, the token out of the address "
               "bar, the child, the channels in order, masked",
               json.dumps(m, ensure_ascii=False)[:800])
        cats = {c["name"]: c for c in m["cats"]}
        tap.ok(m["save"] == "保存する" and m["langLabel"] == "言語" and
               cats["emergency"]["disabled"] and cats["emergency"]["checked"]
               and not cats["行事"]["disabled"] and cats["行事"]["checked"]
               and "緊急" in m["urgentNote"],
               "[1] 言語, 保存する, categories (emergency locked on), the "
               "urgent note", json.dumps(m["cats"], ensure_ascii=False))
        tap.ok(len(m["msgs"]) == 1 and "遠足のお知らせ" in m["msgs"][0] and
               m["body"] == "来週は遠足です。\n<b>お弁当</b>を持ってきてください。",
               "[1] the class's message, opened with the keyboard (markup "
               "shown as text)", json.dumps([m["msgs"], m["body"]],
                                            ensure_ascii=False))
        tap.ok(r["moved"]["order"] == ["1. LINE", "2. メール"] and
               r["moved"]["focus"] == "LINE を下へ" and r["moved"]["msg"],
               "[2] LINE moved up with the keyboard; the focus stays on it",
               json.dumps(r["moved"], ensure_ascii=False))
        tap.ok(r["langValue"] == "en" and 0 < r["tabsToSave"] <= 30 and
               r["saveStatus"] == 200 and r["saved"]["msg"] == "Saved." and
               r["saved"]["title"] == "My page",
               "[2] 言語 -> English, Tab to 保存する, Enter: saved, the page "
               "in English", json.dumps([r["langValue"], r["tabsToSave"],
                                         r["saved"]], ensure_ascii=False))
        p = pf()
        tap.ok(p.get("lg") == "en" and p.get("ch") == ["line", "email"],
               "[2] saved in the guardian's pf", json.dumps(p))
        s = r["stop"]
        tap.ok(s["status"] == 403 and s["role"] == "alert" and
               s["focus"] == "h-code" and s["via"] and
               s["via"][0].startswith("E-mail: ") and
               MOM not in json.dumps(s["via"]),
               "[3] stopping e-mail asks for the code: an alert, the code "
               "box, the contact masked", json.dumps(s, ensure_ascii=False))
        tap.ok(s["wrongStatus"] == 403 and
               s["wrongMsg"] == strings("en")["e_wrong_code"],
               "[3] a mistyped code: 403, and the page's English words for "
               "it (not the server's Japanese)", s["wrongMsg"])
        tap.ok(s["codeStatus"] == 202 and s["gotCode"] and
               s["withCode"] == 200 and s["after"]["stopped"] and
               not s["after"]["codebox"] and pf().get("xc") == ["email"],
               "[3] the code from the fake SMTP server, typed: saved, "
               "xc = [email]", json.dumps([s, pf()], ensure_ascii=False))
        tap.ok(r["again"] == {"order": ["1. LINE", "2. E-mail"],
                              "stopped": True, "lg": "en"},
               "[4] the page again: English, LINE first, e-mail stopped",
               json.dumps(r["again"], ensure_ascii=False))
        lk = r["link"]
        en = strings("en")
        tap.ok(lk["role"] == "alert" and lk["msg"] == en["badLink"] and
               not lk["main"] and lk["lang"] == "en" and
               lk["head"] == en["linkHead"] and
               lk["status"] == 202 and lk["sent"] == en["linkSent"] and
               lk["newLink"],
               "[5] a link that is not valid: the form, in the language this "
               "browser last showed (the guardian's English, not Japanese); "
               "ID and address: a mail with a new link",
               json.dumps(lk, ensure_ascii=False))
        pt, zh, vi, fil = (strings(x) for x in NEW)

        def shows(got, want, lang, ui):
            # the page's own texts in that language (the category 行事
            # is the school's own name, shown as written)
            return (got["lang"] == lang and got["ui"] == ui and
                    got["title"] == want["title"] and
                    got["mainHead"] == want["mainHead"] and
                    got["save"] == want["save"] and
                    got["langLabel"] == want["language"] and
                    got["urgentNote"] == want["urgentNote"] and
                    got["stop"] == want["stop"] and
                    got["order"] == ["1. " + want["ch_email"]] and
                    sorted(got["cats"]) == sorted(
                        [want["cat_" + x] for x in
                         ("notice", "event", "drill", "emergency")] +
                        ["行事"]))
        p7 = r["pt"]
        tap.ok(shows(p7, pt, "pt", "pt") and p7["lg"] == "pt" and
               p7["focus"] == "h-main" and p7["title"] == "Minha página",
               "[7] a guardian with pf.lg pt: the page in Portuguese, "
               "html lang pt", json.dumps(p7, ensure_ascii=False))
        want = [[c, "zh-Hans" if c == "zh" else c, ja["lang_" + c]]
                for c in ("ja", "en") + NEW]
        tap.ok(p7["uiOptions"] == want and
               p7["uiLabel"] == "表示言語 / Display language" and
               sorted(o[0] for o in want) == codes and
               p7["lgOptions"] == [[c, "zh-Hans" if c == "zh" else c,
                                    ja["lang_" + c]]
                                   for c in ("ja", "en") + NEW],
               "[7] 表示言語 / Display language: one option per strings "
               "file, each named in itself with its lang",
               json.dumps([p7["uiLabel"], p7["uiOptions"]],
                          ensure_ascii=False))
        zk = r["zhKeys"]
        tap.ok(0 < zk["tabs"] <= 10 and zk["arrows"] == 1 and
               zk["byLabel"] == "uilang" and
               shows(r["zh"], zh, "zh-Hans", "zh") and
               r["zh"]["focus"] == "uilang" and r["zh"]["title"] == "我的页面",
               "[8] with the keyboard alone to 中文: Chinese, html lang "
               "zh-Hans, the focus stays on the list",
               json.dumps([zk, r["zh"]], ensure_ascii=False))
        tap.ok(shows(r["vi"], vi, "vi", "vi") and
               shows(r["fil"], fil, "fil", "fil"),
               "[8] then Tiếng Việt and Filipino",
               json.dumps([r["vi"], r["fil"]], ensure_ascii=False))
        tap.ok(all(x["lg"] == "pt" for x in (r["zh"], r["vi"], r["fil"]))
               and pf("s-3").get("lg") == "pt",
               "[8] switching the page changes no setting: 言語 and pf.lg "
               "stay pt", json.dumps(pf("s-3")))
        kp = r["keep"]
        tap.ok(kp["afterSwitches"] is False and kp["afterSaves"] is False and
               kp["first"] == {"status": 200, "body": [kp["name"]]} and
               kp["second"] == {"status": 200, "body": [kp["name"]]} and
               kp["name"] in (pf("s-3").get("ox") or []),
               "[8] a category unticked stays unticked while the page "
               "changes language, and through two saves (it was drawn "
               "again from the first answer: a second save re-subscribed)",
               json.dumps([kp, pf("s-3")], ensure_ascii=False))
        nf = r["noFile"]
        tap.ok(nf["lang"] == "en" and nf["ui"] == "en" and
               nf["title"] == "My page" and nf["save"] == "Save (保存する)",
               "[9] a language without a strings file: the English page",
               json.dumps(nf, ensure_ascii=False))
        news = {"pt": r["ptLook"], "zh": r["zhLook"], "vi": r["viLook"],
                "fil": r["filLook"], "link-vi": r["linkViLook"]}
        tap.eq({n: x["axeAll390"] for n, x in news.items()
                if x["axeAll390"]}, {},
               "[10] axe-core: no violation at all at 390 px in pt, zh, "
               "vi, fil")
        tap.ok(r["link"]["vi"] == vi["linkHead"] and
               r["link"]["sent"] == strings("en")["linkSent"] and
               r["link"]["viMsg"] == vi["linkSent"],
               "[10] the link form in Vietnamese, its message too",
               json.dumps(r["link"], ensure_ascii=False))
        pages = {"main": r["main"], "saved-en": r["savedLook"],
                 "code": r["codeLook"], "link": r["linkLook"]}
        pages.update(news)
        tap.eq({n: x["axe390"] + x["axe1280"] for n, x in pages.items()
                if x["axe390"] or x["axe1280"]}, {},
               "[6] axe-core: no serious or critical violation at 390 and "
               "1280 px")
        tap.eq({n: x["overflow390"] for n, x in pages.items()
                if x["overflow390"]}, {},
               "[6] nothing scrolls sideways at 390 px")
        tap.eq(r["errors"], [], "[6] no console error")
        tap.ok(r["csps"] and all("require-trusted-types-for 'script'" in x
                                 and "script-src 'self'" in x
                                 for x in r["csps"]),
               "[6] every document under the strict CSP with Trusted Types",
               json.dumps(r["csps"][:1]))
        shots = sorted(os.path.basename(x) for x in
                       glob.glob(os.path.join(SHOT_DIR, "mypage-*-390.png")))
        tap.ok(len(shots) >= 4 and
               all("mypage-%s-390.png" % x in shots for x in news),
               "[6] [10] screenshots at 390 px", " ".join(shots))

    d.stop()
tap.done()
