#!/usr/bin/python3
"""test_import_ja.py - the directory import speaks to the school's office:
POST /v1/directory/import's reasons in Japanese (reason_ja, error_ja,
decode_error_ja, as the suppressions' reason_ja) and CP932's user-defined
characters (gaiji) refused, over real HTTP against one redis-server and
one kairand (outbox adapter).

  [1] a CP932 file as Japanese Excel writes it, with the clerk's own
      headers (生徒ID, 名前, クラス, 保護者メール, 携帯電話) and a cell
      with a line break in it (so the file's lines and the sheet's rows
      differ): every bad row has its line (the file's), its row (the
      sheet's), the English reason as before and reason_ja naming the row
      and the column as the header writes it (「保護者メール」（D列）);
      the gaiji row names the place with 〓; no address unmasked, no
      private-use character in the answer;
  [2] the write without skip_bad: 422, error and error_ja, nothing
      written; with skip_bad=1 (what the console's 反映する sends) the good
      rows are written and only the refused ones are left out (the gaiji
      row too); the same file fixed adds that row;
  [3] quoted cells stay escaped or masked: a script-like value is JSON
      text, an escape sequence in a quoted cell shows as \\x1b;
  [4] the file-level reasons in Japanese: a column given twice, an
      unknown column 27 named with its letter AA ("letter"), an empty
      file, a UTF-16 file, a file neither UTF-8 nor CP932, rows over no
      good row;
  [5] kairanctl recipients import stays English (FILE:LINE: reason), the
      gaiji refused there too.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_import_ja.py
"""

import http.client
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("import-ja")
P = "kairan:"
PUA = re.compile("[\ue000-\uf8ff]")


def imp(port, tok, body, query=""):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    if isinstance(body, str):
        body = body.encode("utf-8")
    c.request("POST", "/v1/directory/import" + query, body=body,
              headers={"Authorization": "Bearer " + tok,
                       "Content-Type": "text/csv"})
    r = c.getresponse()
    raw = r.read().decode("utf-8")
    ctype = r.getheader("Content-Type")
    c.close()
    return r.status, json.loads(raw), raw, ctype


# The clerk's file.  Row 3's 住所 cell holds a line break (Alt+Enter), so
# from there on the file's line is one more than the sheet's row.  The
# gaiji is CP932 0xF040 (a user-defined character: iconv's U+E000).
HEAD = "生徒ID,名前,クラス,保護者メール,携帯電話,住所\r\n"
ROWS = [
    "k-1,山田 一郎,2年A組,ichiro.mother@example.jp,090-1111-2222,",
    "k-2,鈴木 花子,2年A組,hanako@example.jp,,\"東京都\r\n港区\"",
    "k-3,渡@@ 三郎,2年B組,saburo@example.jp,,",          # @@: the gaiji
    "k-4,佐藤 四郎,2年B組,shiro.secret@@docomo.ne.jp,,",  # bad address
    "k-5,高橋 五郎,2年B組,goro@example.jp,090-abcd,",     # bad phone
]


def cp932(rows):
    # "@@ " after 渡 stands for the gaiji (Python's cp932 has no
    # user-defined area); the address's "@@" is not followed by a space
    b = (HEAD + "\r\n".join(rows) + "\r\n").encode("cp932")
    return b.replace(b"@@ ", b"\xf0\x40 ", 1)


FILE = cp932(ROWS)
assert b"\xf0\x40" in FILE

with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port},
                     "retention": {"audit_dir": os.path.join(out, "audit")}})
    cp = k.ctl("token", "create", "--role", "admin", "--name", "事務室",
               "--tenant", "sakura")
    assert cp.returncode == 0, cp.stderr
    ADMIN = cp.stdout.strip()
    d = k.start()
    d.wait_output('"listening"', 15)
    IGN = "?ignore_column=%E4%BD%8F%E6%89%80"  # 住所: not a directory column

    # ---- [1] ----
    with tap.check("[1] the dry run: each bad row with line, row, reason and reason_ja"):
        st, j, raw, ctype = imp(port, ADMIN, FILE, IGN + "&dry_run=1")
        assert st == 200 and ctype.startswith("application/json"), (st, raw)
        assert j["encoding"] == "CP932" and j["rows"] == 5, j
        assert j["added"] == 2 and j["skipped"] == 3, j
        bad = {b["row"]: b for b in j["bad_rows"]}
        assert sorted(bad) == [4, 5, 6], j["bad_rows"]
        # the file's lines are one more (the line break in row 3's cell)
        assert [bad[r]["line"] for r in (4, 5, 6)] == [5, 6, 7], j["bad_rows"]
        for r in (4, 5, 6):
            assert bad[r]["reason_ja"].startswith("%d行目：" % r), bad[r]
        assert bad[5]["reason"] == ('email: "s***@docomo.ne.jp" is not an '
                                    'address: more than one @'), bad[5]
        assert ("「保護者メール」（D列）の「s***@docomo.ne.jp」はメールアドレスに"
                "なっていません（「@」が 2 つ以上あります）") in bad[5]["reason_ja"], bad[5]
        assert "「携帯電話」（E列）が電話番号になっていません" in bad[6]["reason_ja"], bad[6]
        assert "phone: not a phone number" in bad[6]["reason"], bad[6]

    with tap.check("[1] the gaiji: refused with row, column and place, in both languages"):
        g = bad[4]
        assert g["reason"].startswith(
            "name: contains a user-defined character (gaiji: U+E000, private use) "
            "at character 2 (\"渡〓 三郎\")"), g
        assert ("4行目：「名前」（B列）に外字（機種依存文字）が含まれています"
                "（「渡〓 三郎」の〓の所、2 文字目）") in g["reason_ja"], g
        assert "通常の漢字やかなに置き換えてください" in g["reason_ja"], g

    with tap.check("[1] nothing unmasked, no private-use character in the answer"):
        assert "shiro.secret" not in raw and "090-abcd" not in raw, raw
        assert not PUA.search(raw), raw
        assert "\\ue000" not in raw.lower(), raw

    # ---- [2] ----
    with tap.check("[2] the write without skip_bad: 422, error and error_ja, nothing written"):
        st, j, raw, _ = imp(port, ADMIN, FILE, IGN)
        assert st == 422 and j["written"] is False, (st, raw)
        assert "skip_bad" in j["error"], j
        assert j["error_ja"] == ("誤りのある行があるため、何も反映していません。"
                                 "誤りを直すか、正しい行だけを反映してください。"), j
        assert redis.call("EXISTS", P + "rcpt:sakura:k-1") == 0

    with tap.check("[2] skip_bad=1 (反映する): the good rows written, the refused ones left out"):
        st, j, raw, _ = imp(port, ADMIN, FILE, IGN + "&skip_bad=1")
        assert st == 200 and j["written"] is True, (st, raw)
        assert j["added"] == 2 and j["skipped"] == 3 and j["error_ja"] is None, j
        for rid, there in (("k-1", 1), ("k-2", 1), ("k-3", 0), ("k-4", 0), ("k-5", 0)):
            assert redis.call("EXISTS", P + "rcpt:sakura:" + rid) == there, rid
        for key in redis.call("KEYS", P + "*"):
            if redis.call("TYPE", key) == b"hash":
                blob = b"".join(redis.call("HGETALL", key))
                assert b"\xee\x80\x80" not in blob, key

    with tap.check("[2] the gaiji replaced by the clerk: that row is added"):
        fixed = cp932([r.replace("渡@@ 三郎", "渡辺 三郎") for r in ROWS])
        assert b"\xf0\x40" not in fixed
        st, j, raw, _ = imp(port, ADMIN, fixed, IGN + "&skip_bad=1")
        assert st == 200 and j["added"] == 1 and j["unchanged"] == 2, (st, raw)
        assert redis.call("EXISTS", P + "rcpt:sakura:k-3") == 1

    # ---- [3] ----
    with tap.check("[3] quoted cells stay escaped: script-like text, an escape sequence"):
        body = ("ID,氏名,配信順,グループ\n"
                "e-1,a,<script>alert(1)</script>,\n"
                "e-2,b,,2年A組;x\x1b[31m\n")
        st, j, raw, ctype = imp(port, ADMIN, body, "?dry_run=1")
        assert st == 200 and ctype.startswith("application/json"), (st, raw)
        bad = {b["row"]: b for b in j["bad_rows"]}
        assert "「配信順」（C列）の「<script>alert(1)</script>」は使えません" in bad[2]["reason_ja"], bad
        # the ESC is refused as a control character: never quoted raw
        assert "\x1b" not in raw and "\\u001b" not in raw, raw
        assert "「グループ」（D列）に目に見えない制御文字" in bad[3]["reason_ja"], bad

    # ---- [4] ----
    with tap.check("[4] the file's own problems in Japanese: header, empty, UTF-16, neither"):
        st, j, raw, _ = imp(port, ADMIN, "ID,メール,保護者メール\ns-1,a@x.jp,b@x.jp\n", "?dry_run=1")
        assert st == 422, (st, raw)
        assert j["header_problems"][0]["row"] == 1, j
        assert j["header_problems"][0]["reason_ja"] == (
            "1行目（見出し）：見出し「保護者メール」（C列）は「メール」（B列）と"
            "同じ項目（メールアドレス）です。どちらか 1 つの列にまとめてください。"), j
        assert j["error_ja"] == "1行目（見出し）に誤りがあります。何も反映していません。", j
        # an unknown column past Z: its letter as Excel shows it (AA)
        st, j, raw, _ = imp(port, ADMIN, "ID" + "," * 25 + ",備考\ns-1\n", "?dry_run=1")
        assert st == 422 and j["unknown_columns"] == [
            {"name": "備考", "column": 27, "letter": "AA"}], (st, raw)
        st, j, raw, _ = imp(port, ADMIN, "\n\n", "?dry_run=1")
        assert st == 422 and j["error_ja"].startswith("ファイルが空です。"), j
        st, j, raw, _ = imp(port, ADMIN, "ID,氏名\ns-1,a\n".encode("utf-16"), "?dry_run=1")
        assert st == 422 and "UTF-16" in j["decode_error_ja"], j
        assert j["error_ja"].startswith("ファイルの文字コードが読み取れません。"), j
        st, j, raw, _ = imp(port, ADMIN, b"id,name\n\xff\xfe\xfd,x\n", "?dry_run=1")
        assert st == 422 and "2行目：" in j["decode_error_ja"], j
        st, j, raw, _ = imp(port, ADMIN, "ID,氏名\n,a\n", "?skip_bad=1")
        assert st == 422 and j["error_ja"].startswith("正しい行が 1 行もありません。"), j
        assert j["bad_rows"][0]["reason_ja"] == (
            "2行目：「ID」（A列）が空です。児童・生徒ごとに学校で決めた番号を入れてください。"), j

    # ---- [5] ----
    with tap.check("[5] kairanctl stays English (FILE:LINE), the gaiji refused there too"):
        path = os.path.join(out, "名簿.csv")
        with open(path, "wb") as f:
            f.write(FILE)
        cp = k.ctl("recipients", "import", "--tenant", "cli", "--ignore-column", "住所", path)
        assert cp.returncode == 1, (cp.returncode, cp.stderr)
        assert (":5: name: contains a user-defined character (gaiji: U+E000, "
                "private use) at character 2") in cp.stderr, cp.stderr
        assert "行目" not in cp.stderr, cp.stderr
        assert redis.call("EXISTS", P + "rcpt:cli:k-1") == 0

tap.done()
