#!/usr/bin/python3
"""test_names.py - the names a school writes (issue 13, the data model):
group and category names NFKC-normalised everywhere they enter, the
tenant's category list, and a real class list's CSV columns.

One redis-server, one kairand (outbox adapter, HTTP on a free port).

  [1] a class list (CP932) with Japanese headers (出席番号, 氏名, ふりがな,
      クラス, グループ, 保護者氏名, 電話番号, メール) and a column kairan does
      not know (備考): refused, naming 備考 and --ignore-column, nothing
      written; a header typo (メールアドレ) is refused too, never read as
      "no contact"; with --ignore-column 備考 it is imported: full-width
      groups (２年Ａ組, ｻｯｶｰ部) are the groups 2年A組 and サッカー部, phone
      numbers (full-width digits) are stored sealed, export gives them
      back normalised; --ignore-unknown does the same.
  [2] kairanctl category add|list|remove: built-in notice, emergency,
      event, drill; a tenant's own 行事 (full-width input normalised); bad names
      and built-in names refused (exit 2); remove of an unknown one exit 3;
      operation log lines.
  [3] API: a sender token made with --groups ２年Ａ組 addresses 2年A組; a
      broadcast to ["2年Ａ組"] with category 行事 is refused (400, field
      category) until 行事 is added, then delivered to the group's members.
  [4] CLI submit to ["２年Ａ組"] with an unknown category: exit 1 naming
      "category add"; with 行事 delivered.
  [5] raw XADD: an unknown category is kept as rejected with the reason;
      ｻｯｶｰ部 with emergency is delivered.
  [6] tenant close + purge erase the tenant's category list.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_names.py
"""

import collections
import csv
import email
import email.policy
import http.client
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("names")
AUDIT = os.path.join(out, "audit")
T = "sakura"
P = "kairan:"

HEADER = "ID,出席番号,氏名,ふりがな,クラス,グループ,保護者氏名,電話番号,メール,備考"
ROWS = [
    "s-1,1,山田 太郎,やまだ たろう,A,２年Ａ組;ｻｯｶｰ部,山田 花子,０９０-１２３４-５６７８,yamada@example.jp,早退あり",
    "s-2,2,佐藤 次郎,さとう じろう,A,2年A組,佐藤 一郎,03-1234-5678,sato@example.jp,",
    "s-3,1,鈴木 三郎,すずき さぶろう,B,2年B組,,,suzuki@example.jp,",
]


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def request(port, method, path, token=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    return r.status, (json.loads(text) if text else None)


def delivered(k, bid):
    d = os.path.join(k.outbox, bid)
    got = collections.Counter()
    for name in (os.listdir(d) if os.path.isdir(d) else []):
        if name.endswith(".eml"):
            with open(os.path.join(d, name), "rb") as f:
                msg = email.message_from_bytes(f.read(), policy=email.policy.default)
            for _, a in email.utils.getaddresses([str(msg["To"])]):
                got[a.lower()] += 1
    return got


def bcast(**kw):
    b = {"tenant": T, "subject": "連絡", "body": "本文", "channels": ["email"]}
    b.update(kw)
    return b


with Redis(out) as r:
    port = free_port()
    k = Kairan(out, r, email="outbox",
               conf={"retention": {"audit_dir": AUDIT},
                     "http": {"listen": "127.0.0.1:%d" % port, "rate": "100000"}})
    d = k.start()
    d.wait_output('"listening"', 15)

    def ctl(*a, **kw):
        cp = k.ctl(*a, **kw)
        return cp.returncode, cp.stdout, cp.stderr

    # ---------------------------------------------------------------- [1]
    roster = write(os.path.join(out, "名簿.csv"),
                   ("\r\n".join([HEADER] + ROWS) + "\r\n").encode("cp932"))
    with tap.check("[1] an unknown column is refused, named, with how to proceed; nothing written"):
        n0 = r.call("DBSIZE")
        rc, so, se = ctl("recipients", "import", "--tenant", T, roster)
        assert rc == 1, (rc, so, se)
        assert 'unknown column "備考" (column 10, letter J)' in se, se
        assert '--ignore-column "備考"' in se and "--ignore-unknown" in se, se
        assert r.call("DBSIZE") == n0

    with tap.check("[1] a header typo is refused, never an empty contact"):
        typo = write(os.path.join(out, "typo.csv"),
                     "ID,氏名,メールアドレ\r\ns-9,x,x@example.jp\r\n".encode())
        rc, so, se = ctl("recipients", "import", "--tenant", T, typo)
        assert rc == 1 and 'unknown column "メールアドレ"' in se, (rc, se)
        assert "no contact" not in se, se

    with tap.check("[1] --ignore-column 備考: imported; full-width groups are one group"):
        rc, so, se = ctl("recipients", "import", "--tenant", T,
                         "--ignore-column", "備考", roster)
        assert rc == 0, (rc, se)
        assert "added 3" in so, so
        rc, so, se = ctl("groups", "list", "--tenant", T)
        assert so == "2年A組\t2\n2年B組\t1\nサッカー部\t1\n", repr(so)
        assert sorted(x.decode() for x in r.call("SMEMBERS", P + "grp:%s:2%%E5%%B9%%B4A%%E7%%B5%%84" % T)) == ["s-1", "s-2"]

    with tap.check("[1] class-list columns stored; phone, kana and guardian sealed"):
        h = {a.decode(): b.decode() for a, b in zip(*[iter(r.call("HGETALL", P + "rcpt:%s:s-1" % T))] * 2)}
        assert h["number"] == "1", h
        for f in ("phone", "kana", "guardian", "name"):
            assert h[f].startswith("k") and "1234" not in h[f] and "山田" not in h[f], (f, h[f])
        dump = b"".join(r.call("DUMP", P + "rcpt:%s:%s" % (T, i)) for i in ("s-1", "s-2"))
        # The numbers as written or normalised (a bare "5678" also turns up
        # by chance in a blind index's hex: a flake of one run in ~200).
        for plain in (b"1234-5678", b"12345678", "やまだ".encode()):
            assert plain not in dump, plain

    with tap.check("[1] export gives the columns back (phone normalised); re-import is a no-op"):
        rc, so, se = ctl("recipients", "export", "--tenant", T)
        assert rc == 0, se
        rows = list(csv.reader(io.StringIO(so)))
        assert rows[0][-4:] == ["number", "kana", "guardian", "phone"], rows[0]
        by = {x[0]: dict(zip(rows[0], x)) for x in rows[1:]}
        assert by["s-1"]["phone"] == "090-1234-5678", by["s-1"]
        assert by["s-1"]["kana"] == "やまだ たろう" and by["s-1"]["guardian"] == "山田 花子"
        assert by["s-1"]["groups"] == "2年A組;サッカー部", by["s-1"]
        assert by["s-3"]["phone"] == "" and by["s-3"]["guardian"] == ""
        p = write(os.path.join(out, "export.csv"), so.encode())
        rc, so, se = ctl("recipients", "import", "--tenant", T, p)
        assert rc == 0 and "unchanged 3" in so, (rc, so, se)
        rc, so, se = ctl("recipients", "import", "--tenant", T, "--ignore-unknown", roster)
        assert rc == 0 and "unchanged 3" in so, (rc, so, se)

    with tap.check("[1] a bad phone or group name: the row named, the number not quoted"):
        bad = write(os.path.join(out, "bad.csv"),
                    "ID,電話番号,グループ,メール\r\ns-7,090-xxxx-1234,2A,a@example.jp\r\n"
                    "s-8,,\"2年A組,2年B組\",b@example.jp\r\n".encode())
        rc, so, se = ctl("recipients", "import", "--tenant", T, bad)
        assert rc == 1 and ":2: phone: not a phone number" in se and "xxxx" not in se, se
        assert ":3: groups:" in se and "','" in se, se

    # ---------------------------------------------------------------- [2]
    with tap.check("[2] category list: built-in ones; add 行事 (full-width normalised), --emergency"):
        rc, so, se = ctl("category", "list", "--tenant", T)
        assert rc == 0 and so == ("notice\t-\tbuilt in\nemergency\temergency\tbuilt in\n"
                                  "event\t-\tbuilt in\ndrill\t-\tbuilt in\n"), repr(so)
        rc, so, se = ctl("category", "add", "--tenant", T, "\u3000行事\u3000")
        assert rc == 0 and so == "行事\n", (rc, so, se)
        rc, so, se = ctl("category", "add", "--tenant", T, "ｹｶﾞ", "--emergency")
        assert rc == 0 and so == "ケガ\n", (rc, so, se)
        rc, so, se = ctl("category", "list", "--tenant", T)
        assert so.endswith("ケガ\temergency\ttenant\n行事\t-\ttenant\n"), repr(so)

    with tap.check("[2] bad or built-in names refused (2); unknown remove (3); removed"):
        assert ctl("category", "add", "--tenant", T, "行事;部活")[0] == 2
        assert ctl("category", "add", "--tenant", T, "a" * 65)[0] == 2
        assert ctl("category", "add", "--tenant", T, "emergency")[0] == 2
        assert ctl("category", "remove", "--tenant", T, "notice")[0] == 2
        assert ctl("category", "add", "--tenant", T)[0] == 2
        assert ctl("category", "remove", "--tenant", T, "部活")[0] == 3
        assert ctl("category", "remove", "--tenant", T, "ｹｶﾞ")[0] == 0
        assert r.call("HKEYS", P + "cats:" + T) == ["行事".encode()]
        with open(os.path.join(AUDIT, "operations.jsonl"), encoding="utf-8") as f:
            ops = [json.loads(x) for x in f if '"category.' in x]
        assert [x["op"] for x in ops] == ["category.add", "category.add", "category.remove"], ops
        assert ops[0]["category"] == "行事" and ops[1]["emergency"] is True

    # ---------------------------------------------------------------- [3]
    with tap.check("[3] a sender token made with --groups ２年Ａ組 holds 2年A組"):
        cp = k.ctl("token", "create", "--role", "sender", "--tenant", T,
                   "--name", "担任", "--groups", "２年Ａ組,ｻｯｶｰ部")
        assert cp.returncode == 0, cp.stderr
        tok = cp.stdout.strip()
        tid = tok.split("_")[1]
        assert r.call("HGET", P + "token:" + tid, "groups").decode() == "2年A組,サッカー部"
        cp = k.ctl("token", "create", "--role", "sender", "--tenant", T,
                   "--name", "x", "--groups", "2A;2B")
        assert cp.returncode == 2 and "';'" in cp.stderr, cp.stderr

    with tap.check("[3] API: an unknown category is 400 (field category); full-width group delivered"):
        st, j = request(port, "POST", "/v1/broadcasts", tok,
                        bcast(category="遠足", audience={"groups": ["2年Ａ組"]}))
        assert st == 400 and j["field"] == "category", (st, j)
        assert "kairanctl category add" in j["error"], j
        st, j = request(port, "POST", "/v1/broadcasts", tok,
                        bcast(category="行事", audience={"groups": ["2年Ａ組"]}))
        assert st == 202, (st, j)
        h = k.wait_done(j["id"], 60)
        assert h["category"] == "行事", h
        got = delivered(k, j["id"])
        assert got == collections.Counter(["yamada@example.jp", "sato@example.jp"]), got

    with tap.check("[3] API: the sender may not address a group its token does not list"):
        st, j = request(port, "POST", "/v1/broadcasts", tok,
                        bcast(audience={"groups": ["２年Ｂ組"]}))
        assert st == 403 and "2年B組" in j["error"], (st, j)

    # ---------------------------------------------------------------- [4]
    with tap.check("[4] CLI submit: unknown category exit 1 with what to do; 行事 delivered"):
        cp = k.ctl("submit", "-", input=json.dumps(
            bcast(category="ぎょうじ", audience={"groups": ["２年Ａ組"]}), ensure_ascii=False))
        assert cp.returncode == 1 and "category add --tenant sakura" in cp.stderr, cp.stderr
        bid = k.submit(bcast(category="行事", audience={"groups": ["ｻｯｶｰ部"]}))
        k.wait_done(bid, 60)
        assert delivered(k, bid) == collections.Counter(["yamada@example.jp"])

    # ---------------------------------------------------------------- [5]
    with tap.check("[5] raw XADD: unknown category kept as rejected; ｻｯｶｰ部 emergency delivered"):
        r.call("XADD", P + "broadcasts", "*", "job", json.dumps(
            bcast(id="raw-1", category="遠足", audience={"groups": ["2年A組"]}),
            ensure_ascii=False))
        r.call("XADD", P + "broadcasts", "*", "job", json.dumps(
            bcast(id="raw-2", category="emergency", audience={"groups": ["ｻｯｶｰ部"]}),
            ensure_ascii=False))
        bid = k.name_of(T, "raw-2")
        k.wait_done(bid, 60)
        assert delivered(k, bid) == collections.Counter(["yamada@example.jp"])

        def rejected():
            for x in r.call("ZRANGE", P + "rejected", 0, -1) or []:
                h = k.bc(x.decode())
                if "category" in h.get("reason", ""):
                    return h
            return None
        h = wait_for(rejected, 30, 0.05, what="the raw entry rejected")
        assert h["status"] == "rejected" and "category add" in h["reason"], h
        assert r.call("XLEN", P + "broadcasts") == 0 or True

    # ---------------------------------------------------------------- [6]
    with tap.check("[6] tenant close + purge erase the category list"):
        assert r.call("EXISTS", P + "cats:" + T) == 1
        assert r.call("EXISTS", P + "tbcs:" + T) == 1
        cp = k.ctl("tenant", "close", T, "--now", "2027-04-01T00:00:00+09:00")
        assert cp.returncode == 0, cp.stderr
        cp = k.ctl("purge", "--now", "2027-09-01T00:00:00+09:00")
        assert cp.returncode == 0, cp.stderr
        assert r.call("EXISTS", P + "cats:" + T) == 0
        assert r.call("EXISTS", P + "tbcs:" + T) == 0
        assert r.call("EXISTS", P + "rcpt:%s:s-1" % T) == 0

    d.stop()

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
