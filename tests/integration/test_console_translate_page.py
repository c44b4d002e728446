#!/usr/bin/python3
"""test_console_translate_page.py - a translation added on the console's
新規連絡 page reaches the guardian who reads it (issue 16, "Languages"):
tests/browser/console_translate.js in Debian's headless Chromium at 390 px
(playwright-core, axe-core; node_modules from the lock file).

One redis-server, one kairand (outbox adapter), a class of two children
whose records carry the guardians' languages ("pf"."lg": s-1 "en", s-2
none, that is Japanese).

  [1] 翻訳を追加 opens a translation with its language list (English,
      Português, 中文, Tiếng Việt, Filipino, another code) starting at
      English, labelled 言語; a code typed by hand shows its field; a
      translation is removed with its button; all by the keyboard.
  [2] the confirmation names the translation; its preview shows the texts
      in English and in Japanese again by the language buttons (the one
      shown pressed, focus kept); the broadcast stored holds
      {"en": {subject, body}} as typed.
  [3] the English reader's e-mail is in English (Content-Language: en),
      the other's in Japanese.
  [4] axe-core finds no serious or critical violation on the form with
      translations or on the confirmation; nothing scrolls sideways at
      390 px (the preview in English at 1280 px too); no console error;
      screenshots in build/test-out.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_console_translate_page.py
"""

import email
import email.policy
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
SHOT_DIR = os.path.abspath(os.environ.get("KAIRAN_TEST_OUT") or os.path.join(BUILD, "test-out"))

out = tmpdir("console-translate")
os.makedirs(SHOT_DIR, exist_ok=True)

CSV = """ID,氏名,クラス,グループ,メール
s-1,山田 太郎,2年A組,2年A組,taro.mama@example.jp
s-2,佐藤 花子,2年A組,2年A組,hanako.mama@example.jp
"""


def eml_of(k, bid):
    """{To: parsed message} of the broadcast's .eml files."""
    res = {}
    for f in glob.glob(os.path.join(k.outbox, bid, "*.eml")):
        with open(f, "rb") as fh:
            m = email.message_from_binary_file(fh, policy=email.policy.default)
        res[str(m["To"])] = m
    return res


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port},
                     "retention": {"audit_dir": os.path.join(out, "audit")}})
    path = os.path.join(out, "list.csv")
    with open(path, "w") as f:
        f.write(CSV)
    cp = k.ctl("recipients", "import", "--tenant", "sakura", path)
    assert cp.returncode == 0, cp.stderr
    key = k.prefix + "rcpt:sakura:s-1"
    c = json.loads(redis.call("HGET", key, "c"))
    c["pf"] = {"lg": "en"}
    redis.call("HSET", key, "c", json.dumps(c, separators=(",", ":")))
    cp = k.ctl("staff", "add", "--tenant", "sakura", "--login", "tannin", "--name", "担任 先生",
               "--role", "sender", "--groups", "2年A組",
               "--email", "tannin@school.example.jp")
    assert cp.returncode == 0, cp.stderr
    initial = cp.stdout.rstrip("\n").split("\n")[-1]
    d = k.start()
    d.wait_output('"listening"', 15)

    profile = os.path.join(out, "chromium-profile")
    os.makedirs(profile)
    res = browser_driver(tap, "console_translate.js", [
        "http://127.0.0.1:%d/c/sakura/" % port, "tannin", initial,
        "tannin sensei no pasuwado", SHOT_DIR, profile])
    if res is None:
        d.stop()
        tap.done()

    with tap.check("[1] 翻訳を追加: the languages, English first, labelled 言語; removable"):
        assert res["tr_add_label"] == "翻訳を追加", res["tr_add_label"]
        assert 0 < res["tabs_to_add"], res
        assert res["focus_after_add"] == "c-tr-lang-0", res["focus_after_add"]
        assert res["lang_options"] == ["English", "Português", "中文", "Tiếng Việt",
                                       "Filipino", "その他（言語コードを入力）"], res["lang_options"]
        assert res["lang_default"] == "en" and res["lang_label"] == "言語", res
        assert res["code_shown"] is True and res["removed"] is True, res
        assert res["focus_after_remove"] == "c-tr-add", res["focus_after_remove"]

    bid = res["hash"][len("#b/"):]
    with tap.check("[2] the confirmation names it; the broadcast holds the translation"):
        assert any("翻訳" in s and "English" in s for s in res["summary"]), res["summary"]
        # The preview in each language (POST /v1/broadcasts/preview?lang=).
        assert res["pv_langs"] == [["日本語", "true"], ["English", "false"]], res["pv_langs"]
        assert res["pv_en_subject"] == "Sports day postponed", res["pv_en_subject"]
        assert res["pv_en_focus"] == "c-pv-lang-en", res["pv_en_focus"]
        assert res["pv_ja_subject"] == "【お知らせ】運動会の延期", res["pv_ja_subject"]
        h = k.wait_done(bid, 60)
        assert h.get("langs") == "en", h
        assert json.loads(h["translations"]) == {"en": {
            "subject": "Sports day postponed",
            "body": "Dear parents,\nSports day is postponed because of the rain."}}, h["translations"]

    with tap.check("[3] the English reader got English, the other Japanese"):
        got = eml_of(k, bid)
        assert sorted(got) == ["hanako.mama@example.jp", "taro.mama@example.jp"], sorted(got)
        en, ja = got["taro.mama@example.jp"], got["hanako.mama@example.jp"]
        assert str(en["Subject"]) == "Sports day postponed", str(en["Subject"])
        assert "Sports day is postponed" in en.get_body(("plain",)).get_content()
        assert str(en["Content-Language"]) == "en"
        assert str(ja["Subject"]) == "【お知らせ】運動会の延期", str(ja["Subject"])
        assert str(ja["Content-Language"]) == "ja"

    with tap.check("[4] axe-core: no serious or critical violation; 390 px fits; no console error"):
        for name, v in res["axe"].items():
            assert not v, (name, v)
        for name, px in res["overflow"].items():
            assert px == 0, (name, px)
        errs = [e for e in res["errors"] if "status of 401" not in e]
        assert not errs, errs
        tap.diag("screenshots: " + ", ".join(os.path.basename(s) for s in res["shots"]))

    d.stop()

tap.done()
