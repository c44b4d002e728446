#!/usr/bin/python3
"""test_register_page.py - the guardians' registration page (/r) in a real
browser at a 390 px phone viewport: Debian's /usr/bin/chromium, headless,
driven by playwright-core (tests/browser/register.js; node_modules is made
with `npm ci` when missing), with axe-core (tests/browser/a11y.js).

One redis-server, the fake SMTP server, one kairand; a child with no
address and its registration sheet (kairanctl recipients sheets).

  [1] the sheet's URL opens with the ID filled in and the passcode
      focused, in Japanese; fields labelled ID and パスコード, button 次へ;
  [2] a stranger's wrong passcodes: 401 five times, then 429 (even with
      the right passcode) and the page says so in an alert; the family at
      its own address gets in (lower case, spaces for dashes);
  [3] アプリで受け取る shows a code; the app registers its token with it
      (POST /v1/devices: 201 and a device credential);
      メールアドレス, name (holding markup: shown as text), relation, the
      consent checkbox labelled with 同意 (without it: a message, nothing
      sent); a name holding a gaiji (U+E000) is refused with the page's
      own words naming its place (4 文字目, 「田中 〓子」), focus on the
      name; 確認メールを送る -> the masked address shown;
  [4] the mail's link in a fresh tab: a button 登録する (a GET confirms
      nothing), pressed -> 登録しました, the token leaves the address bar;
      the same link again is refused with a message;
  [5] English from the language list (six languages: a list, each
      named in itself with its own lang); a second guardian by the
      6-digit code (a wrong code first: a message) -> Registered;
  [6] the first guardian is told by mail; a broadcast reaches every
      address;
  [7] axe-core finds no serious or critical violation on any of the
      pages, at 390 and 1280 px; nothing scrolls sideways at 390 px; no
      console error (a CSP or Trusted Types violation would show there);
      every document under the strict CSP with Trusted Types;
  [8] screenshots in $BUILD/test-out/register-*.png;
  [9] Português chosen with the keyboard alone (Tab to the list, type
      "p"): the Portuguese texts, html lang pt, the list named in
      Portuguese; a third guardian registers on that page, the mail's
      second paragraph is Portuguese, and the guardian's "pf"."lg" is
      "pt" (the first two: ja, en); ?lang=zh: the Chinese texts, html
      lang zh-Hans; ?lang=vi and ?lang=fil the same.

Skipped (TAP "ok # SKIP") only when /usr/bin/chromium is not installed.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_register_page.py
"""

import csv
import email
import email.policy
import glob
import io
import json
import os
import re
import subprocess
import urllib.error
import urllib.request
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
CHROMIUM = "/usr/bin/chromium"
SHOT_DIR = os.path.abspath(os.environ.get("KAIRAN_TEST_OUT")
                           or os.path.join(BUILD, "test-out"))
T = "sakura-es"
MOM = "tanaka.mama@docomo.ne.jp"
DAD = "tanaka.papa@example.jp"
PT = "tanaka.avo@example.com.br"
STRINGS_DIR = os.path.join(ROOT, "web", "register")


def strings(code):
    with open(os.path.join(STRINGS_DIR, "strings-%s.json" % code),
              encoding="utf-8") as f:
        return json.load(f)


if not os.access(CHROMIUM, os.X_OK):
    tap.skip("registration page in headless Chromium",
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


def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as f:
            return f.status, json.loads(f.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def subjects(addr):
    return [str(email.message_from_string(m["data"], policy=email.policy.default)
                ["Subject"]) for m in smtp.messages() if addr in m["rcpt"]]


out = tmpdir("register-page")
os.makedirs(SHOT_DIR, exist_ok=True)
for old in glob.glob(os.path.join(SHOT_DIR, "register-*.png")):
    os.unlink(old)

with Redis(out) as redis, FakeSMTP(out) as smtp:
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    k = Kairan(out, redis, smtp=smtp,
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "public_url": base, "rate": "1000"},
                     "line": {"add_friend_url": "https://lin.ee/AbCdEf1"},
                     "registration": {"max_guardians": "3"}})
    path = os.path.join(out, "1A.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("ID,氏名,クラス,グループ,電話番号\r\n"
                "s-2,田中 二郎,A,1年A組,090-0000-0002\r\n")
    cp = k.ctl("recipients", "import", "--tenant", T, path)
    assert cp.returncode == 0, cp.stderr
    cp = k.ctl("recipients", "sheets", "--tenant", T, "--format", "csv")
    assert cp.returncode == 0, cp.stderr
    row = list(csv.DictReader(io.StringIO(cp.stdout)))[0]
    d = k.start()
    d.wait_output('"listening"', 15)

    profile = os.path.join(out, "chromium-profile")
    os.makedirs(profile)
    cfg = {"base": base, "first": {"id": row["id"], "pass": row["passcode"]},
           "mom": MOM, "dad": DAD, "pt": PT,
           "strings": {c: strings(c) for c in ("pt", "zh")},
           "messages": smtp.messages_path,
           "shots": SHOT_DIR, "profile": profile}
    r = None
    with tap.check("the browser driver runs every step"):
        cp = subprocess.run(["node", os.path.join(BROWSER_DIR, "register.js"),
                             json.dumps(cfg)], cwd=BROWSER_DIR,
                            capture_output=True, text=True, timeout=300)
        lines = [json.loads(x) for x in cp.stdout.splitlines()
                 if x.startswith("{")]
        assert lines, (cp.returncode, cp.stdout[-1000:], cp.stderr[-3000:])
        r = lines[-1]
        assert r["event"] == "done", r.get("message", r)
        assert cp.returncode == 0, cp.stderr[-2000:]

    if r and r.get("event") == "done":
        s = r["start"]
        tap.ok(s["lang"] == "ja" and s["idValue"] == row["id"]
               and s["button"] == "次へ",
               "[1] the sheet's URL: Japanese, ID filled in, 次へ",
               json.dumps(s, ensure_ascii=False))
        tap.eq(r["wrong"], [401] * 5 + [429],
               "[2] a stranger's wrong passcodes: 401 x5, then 429")
        tap.ok(r["lockedRight"] == 429 and r["wrongRole"] == "alert"
               and r["wrongMsg"] == strings("ja")["e_locked"],
               "[2] locked for the stranger's address even with the right "
               "passcode; the page says so in an alert", r["wrongMsg"])
        tap.eq(r["family"], 200, "[2] the family at its own address gets in")
        c = r["contact"]
        tap.ok("田中 二郎" in c["who"] and c["focus"] == "h-contact"
               and "同意" in c["consentLabel"] and c["lineButton"] == 1,
               "[3] the contact step: the child named, focus moved, consent "
               "labelled with 同意, a button LINEで受け取る",
               json.dumps(c, ensure_ascii=False))
        tap.ok(r["noConsent"]["stillHere"] and r["noConsent"]["focus"] ==
               "consent" and r["noConsent"]["msg"],
               "[3] without consent: a message, focus on the checkbox",
               json.dumps(r["noConsent"], ensure_ascii=False))
        g = r["gaiji"]
        tap.ok(g["msg"] == strings("ja")["e_gaiji_name"].replace(
                   "{at}", "4").replace("{excerpt}", "田中 〓子")
               and g["focus"] == "name" and g["stillHere"]
               and g["role"] == r["wrongRole"],
               "[3] a name with a gaiji (U+E000): refused, the page names "
               "its place (4 文字目, 「田中 〓子」), focus on the name",
               json.dumps({x: g[x] for x in ("msg", "focus", "role")},
                          ensure_ascii=False))
        tap.ok(r["code"]["sentTo"].endswith("@docomo.ne.jp")
               and MOM not in r["code"]["sentTo"],
               "[3] 確認メールを送る: the masked address shown",
               r["code"]["sentTo"])
        tap.ok(r["verify"]["button"] == 1 and r["done"]["heading"] ==
               "登録しました" and "#v=" not in r["done"]["url"],
               "[4] the link's page: 登録する -> 登録しました; the token "
               "leaves the address bar", json.dumps(r["done"]["url"]))
        tap.ok(r["again"]["status"] == 404 and r["again"]["msg"],
               "[4] the same link again is refused with a message",
               json.dumps(r["again"], ensure_ascii=False))
        tap.ok(r["en"]["head"].startswith("Type the ID") and
               r["en"]["next"] == "Next" and
               r["badCode"] == strings("en")["e_bad_code"] and
               r["enDone"] == "Registered",
               "[5] English; a wrong code gets the page's own English words "
               "for it (no Japanese); the right code registers", json.dumps([r["en"]["head"], r["badCode"],
                                        r["enDone"]], ensure_ascii=False))
        tap.ok(re.fullmatch("[34679ACEFGHJKMNPQRTWXY]{8}", r["app"]["code"])
               and r["app"]["expanded"] == "true",
               "[3] アプリで受け取る shows a code for the school app",
               json.dumps(r["app"], ensure_ascii=False))
        st, dv = post("/v1/devices", {"code": r["app"]["code"],
                                      "platform": "fcm",
                                      "token": "fcmTok01:APA91b-" + "q" * 40})
        tap.ok(st == 201 and len(dv.get("device_credential", "")) == 43,
               "[3] the app registers its token with that code", repr(dv))
        tap.ok(re.fullmatch("[0-9]{8}", r["line"]["code"])
               and r["line"]["expanded"] == "true"
               and r["line"]["href"] == "https://lin.ee/AbCdEf1"
               and r["line"]["qrWidth"] > 0 and r["line"]["friendShown"],
               "[3] LINEで受け取る shows the friend-add link, its QR code and "
               "an 8-digit link code",
               json.dumps(r["line"], ensure_ascii=False)[:600])
        want = [{"value": c, "lang": strings(c)["htmlLang"],
                 "text": strings(c)["langName"]}
                for c in ("ja", "en", "fil", "pt", "vi", "zh")]
        tap.ok(r["start"]["list"]["tag"] == "SELECT"
               and r["start"]["list"]["options"] == want
               and r["start"]["list"]["value"] == "ja"
               and r["start"]["list"]["name"] == strings("ja")["langPick"],
               "[5] six languages: a list, Japanese first, each named in "
               "itself with its own lang (zh: zh-Hans)",
               json.dumps(r["start"]["list"], ensure_ascii=False))
        pt, zh = strings("pt"), strings("zh")
        p = r["pt"]
        tap.ok(p["tabs"] == 1 and p["focus"] == "lang" and p["lang"] == "pt"
               and p["list"]["value"] == "pt",
               "[9] keyboard alone: Tab reaches the list, \"p\" picks "
               "Português; html lang pt", json.dumps(
                   {x: p[x] for x in ("tabs", "focus", "lang")}))
        tap.ok(p["head"] == pt["startHead"] and p["next"] == pt["next"]
               and p["title"] == pt["title"]
               and p["list"]["name"] == pt["langPick"]
               and p["contactHead"] == pt["contactHead"]
               and p["done"] == pt["done"]
               and p["wrongMsg"] == pt["e_bad_sheet"],
               "[9] the Portuguese texts on every step, a wrong passcode's "
               "message too, the list named in Portuguese", json.dumps([p["head"], p["contactHead"],
                                         p["done"], p["wrongMsg"]],
                                        ensure_ascii=False))
        body = r["ptMail"]
        tap.ok(body.find("登録を受け付けました") >= 0
               and body.find("Para concluir o cadastro")
               > body.find("登録を受け付けました")
               and "To finish registering" not in body,
               "[9] the mail: Japanese, then Portuguese (not English)",
               body[-400:])
        tap.eq(subjects(PT)[:1],
               ["【連絡網】メールアドレスの確認 / Confirme seu endereço de e-mail"],
               "[9] its subject: Japanese, then Portuguese (the Japanese page's "
               "stays Japanese only)")
        z = r["zh"]
        tap.ok(z["lang"] == "zh-Hans" and z["head"] == zh["startHead"]
               and z["title"] == zh["title"] and z["list"]["value"] == "zh"
               and z["list"]["name"] == zh["langPick"],
               "[9] ?lang=zh: the Chinese texts, html lang zh-Hans",
               json.dumps({x: z[x] for x in ("lang", "head", "title")},
                          ensure_ascii=False))
        tap.eq({c: [r[c]["lang"], r[c]["head"], r[c]["title"]]
                for c in ("vi", "fil")},
               {c: [c, strings(c)["startHead"], strings(c)["title"]]
                for c in ("vi", "fil")},
               "[9] ?lang=vi, ?lang=fil: their texts, html lang vi, fil")
        pages = {n: r[n] for n in ("start", "contact", "gaiji", "app", "line",
                                   "code",
                                   "verify", "done", "en", "pt", "zh", "vi",
                                   "fil")}
        pages["en-done"] = r["enDoneLook"]
        pages["pt-contact"] = r["ptContactLook"]
        pages["pt-done"] = r["ptDoneLook"]
        tap.eq({n: p["axe390"] + p["axe1280"] for n, p in pages.items()
                if p["axe390"] or p["axe1280"]}, {},
               "[7] axe-core: no serious or critical violation on any page "
               "at 390 and 1280 px")
        tap.eq({n: p["overflow390"] for n, p in pages.items()
                if p["overflow390"]}, {},
               "[7] nothing scrolls sideways at 390 px")
        tap.eq(r["errors"], [], "[7] no console error")
        tap.ok(r["csps"] and all("require-trusted-types-for 'script'" in x
                                 and "script-src 'self'" in x
                                 for x in r["csps"]),
               "[7] every document under the strict CSP with Trusted Types",
               json.dumps(r["csps"][:1]))
        tap.eq(r["injected"], 0, "[3] a name with markup is shown as text")
        shots = sorted(os.path.basename(x) for x in
                       glob.glob(os.path.join(SHOT_DIR, "register-*-390.png")))
        tap.ok(len(shots) >= 7, "[8] screenshots at 390 px", " ".join(shots))

    with tap.check("[6] the first guardian is told of the second; a "
                   "broadcast reaches both addresses and the app"):
        wait_for(lambda: "【連絡網】保護者の登録がありました" in subjects(MOM),
                 30, 0.1, what="the notice to the first guardian")
        bid = k.submit({"tenant": T, "subject": "台風のため休校",
                        "body": "明日は休校です。",
                        "channels": ["email", "push"],
                        "audience": {"groups": ["1年A組"]}})
        k.wait_done(bid, 60)
        for a in (MOM, DAD, PT):
            wait_for(lambda: "台風のため休校" in subjects(a), 30, 0.1,
                     what="the broadcast at " + a)
        assert k.counts(bid)["push"]["delivered"] == 1, k.counts(bid)

    with tap.check("[9] each guardian's \"pf\".\"lg\" is its page's "
                   "language: ja, en, pt"):
        gs = json.loads(redis.call("HGET", k.prefix + "reg:%s:s-2" % T, "g"))
        assert [g.get("pf", {}).get("lg") for g in gs] == ["ja", "en", "pt"], gs

    d.stop()
tap.done()
