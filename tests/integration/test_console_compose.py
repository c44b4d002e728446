#!/usr/bin/python3
"""test_console_compose.py - the console's 新規連絡 page in a real browser
(issue 14): tests/browser/console_compose.js in Debian's headless Chromium
(playwright-core, axe-core; node_modules from the lock file).

One redis-server, one kairand (outbox adapter), a class list with Japanese
group names, a sender allowed two of them.

  [1] the sender logs in with its initial password, changes it, opens
      新規連絡; labels 件名, 本文, 宛先 (checkboxes labelled with the group
      names), 予約; buttons 確認画面へ and 送信する.
  [2] composes to two groups with script-like text in the subject and
      body, previews (the e-mail as a mail client shows it, LINE bubbles,
      push), schedules with 予約, confirms and sends: the broadcast stored
      is the one composed (both groups, send_at 09:00 JST, subject and
      body as typed) and the page goes to #b/<name>.
  [3] script-like text stays text (no element made, no script run); no
      console error; axe-core finds no serious or critical violation on
      the form, the preview or the confirmation; nothing scrolls sideways
      at 390 px; screenshots at 390 and 1280 px in build/test-out.
  [4] the shipped 地震 安否確認 template loads (ack, choices, urgent);
      緊急 is refused until its confirmation is ticked, and the
      confirmation step says it is an emergency; 自分に送る sends one
      e-mail to the sender's own stored address.
  [5] 未回答の家庭へ再通知 offers whom (issue 16): 再通知の送り先 with
      次のチャネル / 次の保護者, shown once a time is chosen, picked with
      the keyboard; what is sent carries "escalate_to": "next_guardian";
      axe-core clean and nothing sideways at 390 px with it open.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_console_compose.py
"""

import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
CHROMIUM = "/usr/bin/chromium"
SHOT_DIR = os.path.abspath(os.environ.get("KAIRAN_TEST_OUT") or os.path.join(BUILD, "test-out"))

if not os.access(CHROMIUM, os.X_OK):
    tap.skip("console compose in headless Chromium",
             "chromium is not installed (apt-get install chromium; scripts/deps.sh)")
    tap.done()

with tap.check("playwright-core and axe-core are installed in tests/browser (npm ci from the lock file)"):
    if not all(os.path.exists(os.path.join(BROWSER_DIR, "node_modules", m, "package.json"))
               for m in ("playwright-core", "axe-core")):
        cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr[-2000:]

out = tmpdir("console-compose")
os.makedirs(SHOT_DIR, exist_ok=True)

CSV = """ID,氏名,クラス,グループ,メール,LINE
s-1,山田 太郎,2年A組,2年A組,taro@example.jp,U0123456789abcdef0123456789abcdef
s-2,佐藤 花子,2年A組,2年A組,hanako@example.jp,
s-3,<b>鈴木</b> 一郎,2年B組,2年B組,ichiro@example.jp,
s-4,高橋 七海,3年C組,3年C組,nanami@example.jp,
"""

with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port},
                     "retention": {"audit_dir": os.path.join(out, "audit")}})
    P = k.prefix
    path = os.path.join(out, "list.csv")
    with open(path, "w") as f:
        f.write(CSV)
    cp = k.ctl("recipients", "import", "--tenant", "sakura", path)
    assert cp.returncode == 0, cp.stderr
    cp = k.ctl("staff", "add", "--tenant", "sakura", "--login", "tannin", "--name", "担任 先生",
               "--role", "sender", "--groups", "2年A組,2年B組",
               "--email", "tannin@school.example.jp")
    assert cp.returncode == 0, cp.stderr
    initial = cp.stdout.rstrip("\n").split("\n")[-1]
    d = k.start()
    d.wait_output('"listening"', 15)

    profile = os.path.join(out, "chromium-profile")
    os.makedirs(profile)
    cp = subprocess.run(["node", os.path.join(BROWSER_DIR, "console_compose.js"),
                         "http://127.0.0.1:%d/c/sakura/" % port, "tannin", initial,
                         "tannin sensei no pasuwado", SHOT_DIR, profile],
                        cwd=BROWSER_DIR, capture_output=True, text=True, timeout=180)
    res = None
    for line in cp.stdout.splitlines():
        try:
            res = json.loads(line)
        except ValueError:
            pass
    with tap.check("[1] the driver ran to the end"):
        assert res is not None and res["event"] == "done", (cp.returncode, cp.stdout[-3000:], cp.stderr[-2000:])

    if res is None or res["event"] != "done":
        d.stop()
        tap.done()

    with tap.check("[1] 新規連絡 with the labels of the school's manual"):
        assert res["h1"] == "新規連絡", res["h1"]
        assert res["labels"] == ["件名", "本文", "予約日時"], res["labels"]
        assert res["legend_to"] == "宛先", res["legend_to"]
        assert res["group_labels"] == ["2年A組", "2年B組"], res["group_labels"]
        assert res["confirm_button"] == "確認画面へ" and res["send_label"] == "送信する", res
        assert 0 < res["tabs_to_login"] and 0 < res["tabs_to_subject"], res
        tap.diag("Tab presses: %d to ログインID, %d to 件名" % (res["tabs_to_login"], res["tabs_to_subject"]))

    with tap.check("[2] the preview shows the e-mail, the LINE bubbles and the push as sent"):
        pv = res["preview"]
        assert pv["subject"] == '<img src=x onerror="window.__kn_xss=1">運動会の延期', pv
        assert "<script>window.__kn_xss=1</script>" in pv["body"], pv
        assert pv["line"][0] == pv["subject"] and "運動会は雨のため延期します。" in pv["line"][1], pv
        assert pv["push"] and pv["push"][0] == pv["subject"], pv
        assert "3" in pv["per"], pv  # 3 e-mails, 1 LINE

    with tap.check("[2] the broadcast stored is the one composed, scheduled 09:00 JST"):
        bid = res["hash"][len("#b/"):]
        h = k.bc(bid)
        assert h.get("status"), (bid, h)
        assert h["subject"] == '<img src=x onerror="window.__kn_xss=1">運動会の延期', h
        assert "<script>" in h["body"], h
        import calendar
        want = calendar.timegm((2099, 1, 1, 0, 0, 0)) * 1000  # 09:00 JST
        assert int(h["send_at_ms"]) == want, (h["send_at_ms"], want)
        assert sorted(json.loads(h["groups"])) == ["2年A組", "2年B組"], h.get("groups")
        assert any("2年A組" in s for s in res["summary"]) and any("メール" in s for s in res["summary"]), res["summary"]

    with tap.check("[4] a shipped template loads (地震 安否確認: ack, choices, urgent)"):
        t = res["tpl"]
        assert t["subject"].startswith("【安否確認】") and t["ack"] and t["ackBoxShown"], t
        assert t["choice0"] == "無事です" and t["urgent"] and t["urgentOkShown"], t

    with tap.check("[4] 緊急 needs its confirmation before 確認画面へ; then the step says so"):
        assert "緊急連絡として送る場合" in res["urgent_refused"], res["urgent_refused"]
        assert res["urgent_focus"] == "c-urgent-ok", res["urgent_focus"]
        assert "緊急連絡です" in res["urgent_summary"], res["urgent_summary"]
        assert res["back_to_form"] is True

    with tap.check("[4] 自分に送る: one e-mail to the sender's own address only"):
        assert "テスト送信" in res["test_notice"], res["test_notice"]

        def test_eml():
            for f_ in glob.glob(os.path.join(k.outbox, "*", "*.eml")):
                raw = open(f_, "rb").read().decode("utf-8", "replace")
                if "tannin@school.example.jp" in raw:
                    return f_
            return None
        eml = wait_for(test_eml, 30, 0.1, what="the test e-mail")
        bid = os.path.basename(os.path.dirname(eml))
        assert len(glob.glob(os.path.join(k.outbox, bid, "*.eml"))) == 1
        assert k.bc(bid)["subject"].startswith("【テスト送信】【安否確認】"), k.bc(bid)["subject"]

    with tap.check("[5] 再通知の送り先: 次のチャネル / 次の保護者, by keyboard, sent as escalate_to"):
        assert res["escalate_to_shown_tpl"] is True, res
        assert res["escalate_to_hidden_before"] is True, res
        assert res["escalate_to_label"] == "再通知の送り先", res["escalate_to_label"]
        assert res["escalate_to_options"] == ["次のチャネル", "次の保護者"], res
        assert res["escalate_to_value"] == "next_guardian", res
        sent = [json.loads(b) for b in res["test_posted"] if b]
        assert sent and sent[-1].get("escalate_to") == "next_guardian", sent
        assert sent[-1].get("escalate_after") == "10m", sent
        assert not res["axe"]["escalate"], res["axe"]["escalate"]
        assert res["overflow"]["escalate@390"] == 0, res["overflow"]

    with tap.check("[3] script-like text stays text; no console error"):
        assert res["xss"] is False and res["injected"] == 0, res
        # (The first GET /v1/session, before the login, is a 401 by design.)
        errs = [e for e in res["errors"] if "status of 401" not in e]
        assert not errs, errs

    with tap.check("[3] axe-core: no serious or critical violation (form, preview, confirmation)"):
        for name, v in res["axe"].items():
            assert not v, (name, v)

    with tap.check("[3] nothing scrolls sideways at 390 px"):
        for name, px in res["overflow"].items():
            assert px == 0, (name, px)
        tap.diag("screenshots: " + ", ".join(os.path.basename(s) for s in res["shots"]))

    d.stop()

tap.done()
