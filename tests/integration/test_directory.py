#!/usr/bin/python3
"""test_directory.py - the recipient directory from Excel CSV (issue 6,
"Directory"): kairanctl recipients import / export / deactivate / activate /
delete, groups list, and broadcasts to directory groups through kairand.

  [1] a CP932 file (Japanese header, names with 髙, ①, half-width kana, a
      comma and quotes; carrier addresses; LINE ids; FCM / APNs tokens;
      two siblings sharing one guardian address in different case) ->
      every record, group, group name, tenant and blind-index entry present.
  [2] no plaintext address, LINE id, token or name in any Redis key or
      value (SCAN of everything, every type).
  [3] export writes the data back (UTF-8, English header), and importing
      the export is a no-op.
  [4] a broken file: every bad row listed as FILE:LINE: reason with the
      physical line (a quoted line break shifts the lines after it), good
      rows not listed, exit 1, nothing written (DUMP of every key equal).
  [5] --skip-bad writes only the good rows and counts the skipped ones; a
      student without any contact is a good row (issue 15: the family
      registers with its sheet), counted as 連絡先なし in the summary.
  [6] re-importing the same CP932 file -> "unchanged 24", no Redis write
      (DUMP of every key before and after).
  [7] --replace: recipients not in the file deleted with their group and
      index entries; an emptied group disappears; changed rows updated.
  [8] deactivate -> a broadcast to the group reaches every active member
      with an address exactly once (the shared guardian address once),
      the deactivated one not at all; activate restores it.  (E-mail via
      the outbox adapter: the .eml files' To headers are counted.)
  [9] a broadcast to an unknown group is rejected with the reason (its
      place, not its name).
  [10] a UTF-8 file with BOM imports; its export is the same data.
  [11] delete, groups list, exit codes (unknown id 3, usage 2).
  [12] the operation log: JSON lines, JST times, no address; an export
       (the one command that prints the directory in clear) writes its
       line too.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_directory.py
"""

import collections
import csv
import email
import email.policy
import email.utils
import io
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
out = tmpdir("directory")
AUDIT = os.path.join(out, "audit")
TENANT = "sakura-hs"

JA_HEADER = ["ID", "氏名", "学年", "組", "グループ", "メールアドレス", "LINE",
             "FCMトークン", "APNsトークン", "配信順"]
EN_HEADER = ["id", "name", "grade", "class", "groups", "email", "line", "fcm",
             "apns", "channels"]

SHARED = "kyodai..hogo.@docomo.ne.jp"   # guardian of s-03 and s-04


def line_id(i):
    return "U%032x" % (0xabc000 + i)


def fcm_token(i):
    return "fcmTok%02d:APA91b-%s_x" % (i, "q" * 40)


def apns_token(i):
    return "%064x" % (0xfeed0000 + i)


def roster():
    """24 recipients: s-01..s-12 in 2-A, s-13..s-24 in 2-B, a few in
    soccer / chorus; every kind of contact somewhere."""
    names = ["髙橋 ①郎", "渡邉 花子", "佐藤 一", "佐藤 二", "ﾔﾏﾀﾞ ﾀﾛｳ",
             '山田 "やまちゃん", 太郎', "斎藤 ②美", "髙﨑 三郎", "伊藤 四郎",
             "加藤 五郎", "吉田 六子", "山口 七海"]
    rows = []
    for i in range(1, 25):
        rid = "s-%02d" % i
        r = {"id": rid, "name": names[(i - 1) % 12] + ("" if i <= 12 else " 弟"),
             "grade": "2", "class": "A" if i <= 12 else "B",
             "groups": ["2-A" if i <= 12 else "2-B"], "email": "",
             "line": "", "fcm": "", "apns": "", "channels": ""}
        r["email"] = "hogo%02d@example.jp" % i
        if i == 1:
            r["email"] = "taro..yamada.@docomo.ne.jp"
        if i == 5:
            r["email"] = "hanako.@ezweb.ne.jp"
        if i == 7:
            r["email"] = "a..b..c.@softbank.ne.jp"
        if i == 3:
            r["email"] = SHARED
        if i == 4:
            r["email"] = SHARED.upper().replace("@DOCOMO.NE.JP", "@docomo.ne.jp")
        if i == 6:
            r["email"] = ""          # LINE only
            r["line"] = line_id(i)
        if i in (2, 14):
            r["groups"].append("soccer")
        if i == 24:
            r["groups"].append("chorus")
        if i == 8:
            r["fcm"] = fcm_token(i)
            r["channels"] = "push;email"
        if i == 9:
            r["apns"] = apns_token(i)
        if i == 11:
            r["line"] = line_id(i)
            r["channels"] = "line;email"
        rows.append(r)
    return rows


def csv_text(rows, header, extra=()):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for r in rows:
        w.writerow([r["id"], r["name"], r["grade"], r["class"],
                    ";".join(r["groups"]), r["email"], r["line"], r["fcm"],
                    r["apns"], r["channels"]])
    for line in extra:
        buf.write(line + "\r\n")
    return buf.getvalue()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def ctl(*args):
    """kairanctl with bytes in and out; returns (rc, stdout str, stderr str)."""
    cp = subprocess.run([os.path.join(BUILD, "kairanctl"), "-c", k.conf]
                        + [str(a) for a in args], capture_output=True,
                        timeout=60)
    return (cp.returncode, cp.stdout.decode("utf-8"),
            cp.stderr.decode("utf-8"))


def scan_keys(pattern="*"):
    keys, cursor = [], b"0"
    while True:
        cursor, ks = r.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        keys.extend(ks)
        if cursor in (b"0", 0, "0"):
            return sorted(keys)


def dump_all():
    """{key: DUMP bytes} for every key: equal dicts mean nothing changed."""
    return {key: r.call("DUMP", key) for key in scan_keys()}


def all_blobs():
    """Every key name and value of every type, as bytes."""
    blobs = []
    for key in scan_keys():
        blobs.append(key)
        t = r.call("TYPE", key)
        if t == "string":
            blobs.append(r.call("GET", key))
        elif t == "hash":
            blobs.extend(r.call("HGETALL", key))
        elif t == "list":
            blobs.extend(r.call("LRANGE", key, 0, -1))
        elif t == "set":
            blobs.extend(r.call("SMEMBERS", key))
        elif t == "zset":
            blobs.extend(r.call("ZRANGE", key, 0, -1))
        elif t == "stream":
            for eid, kv in r.call("XRANGE", key, "-", "+"):
                blobs.extend(kv)
    return [b for b in blobs if isinstance(b, bytes)]


def smembers(key):
    return sorted(x.decode() for x in (r.call("SMEMBERS", "kairan:" + key) or []))


def rcpt(tenant, rid):
    v = r.call("HGETALL", "kairan:rcpt:%s:%s" % (tenant, rid)) or []
    return {v[i].decode(): v[i + 1].decode() for i in range(0, len(v), 2)}


def summary(text):
    m = re.search(r"added (\d+), updated (\d+), unchanged (\d+), deleted (\d+), "
                  r"skipped (\d+)", text)
    assert m, "no summary in %r" % text
    return tuple(int(x) for x in m.groups())


def exported(text):
    """{id: row dict} from export output (groups as sorted lists)."""
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == EN_HEADER + ["active", "number", "kana", "guardian",
                                   "phone"], rows[0]
    res = {}
    for row in rows[1:]:
        d = dict(zip(rows[0], row))
        d["groups"] = sorted(g for g in d["groups"].split(";") if g)
        res[d["id"]] = d
    return res


def unquote(addr):
    """"a..b."@x.jp -> a..b.@x.jp (the To header quotes carrier addresses)."""
    local, _, dom = addr.rpartition("@")
    if local.startswith('"') and local.endswith('"'):
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    return local + "@" + dom


def delivered(bid):
    """Counter of lowercased To addresses of the .eml files of a broadcast
    in the outbox (the adapter writes each to a temp name, then renames)."""
    d = os.path.join(k.outbox, bid)
    got = collections.Counter()
    for name in (os.listdir(d) if os.path.isdir(d) else []):
        if not name.endswith(".eml"):
            continue
        with open(os.path.join(d, name), "rb") as f:
            msg = email.message_from_bytes(f.read(), policy=email.policy.default)
        for _, a in email.utils.getaddresses([str(msg["To"])]):
            got[unquote(a).lower()] += 1
    return got


def expect_rows(rows):
    res = {}
    for x in rows:
        d = dict(x)
        d["groups"] = sorted(d["groups"])
        res[d["id"]] = d
    return res


ROWS = roster()
CP932_FILE = write(os.path.join(out, "名簿.csv"),
                   csv_text(ROWS, JA_HEADER).encode("cp932"))

with Redis(out) as r:
    # E-mail goes to the outbox adapter (.eml files): this test is about the
    # directory and the expander, not about a relay.
    k = Kairan(out, r, email="outbox",
               conf={"retention": {"audit_dir": AUDIT},
                     "http": {"listen": "127.0.0.1:%d" % free_port()}})

    # ---------------------------------------------------------------- [1]
    rc, so, se = ctl("recipients", "import", "--tenant", TENANT, CP932_FILE)
    with tap.check("[1] CP932 import: exit 0, 'CP932', added 24"):
        assert rc == 0, (rc, se)
        assert "CP932" in so, so
        assert summary(so) == (24, 0, 0, 0, 0), so

    with tap.check("[1] records, groups, group names, tenant, blind indexes"):
        ids = ["s-%02d" % i for i in range(1, 25)]
        assert smembers("rcpts:" + TENANT) == ids
        assert smembers("grp:%s:2-A" % TENANT) == ids[:12]
        assert smembers("grp:%s:2-B" % TENANT) == ids[12:]
        assert smembers("grp:%s:soccer" % TENANT) == ["s-02", "s-14"]
        assert smembers("grp:%s:chorus" % TENANT) == ["s-24"]
        assert smembers("groups:" + TENANT) == ["2-A", "2-B", "chorus", "soccer"]
        assert TENANT in smembers("tenants")
        for x in ROWS:
            h = rcpt(TENANT, x["id"])
            c = json.loads(h["c"])
            assert c["id"] == x["id"], c
            assert h["active"] == "1", h
            assert h["grade"] == x["grade"] and h["class"] == x["class"], h
            assert h["groups"] == ";".join(sorted(x["groups"])), h
            assert h["name"].startswith("k1."), h["name"]
            assert re.fullmatch(r"[0-9a-f]{32}", h["hash"]), h["hash"]
            assert int(h["updated_ms"]) > 0
            if x["email"]:
                assert c["e"].startswith("k1.") and len(c["ei"]) == 32, c
                assert x["id"] in smembers("bidx:%s:email:%s" % (TENANT, c["ei"]))
            else:
                assert "e" not in c
            if x["line"]:
                assert c["l"].startswith("k1."), c
                assert smembers("bidx:%s:line:%s" % (TENANT, c["li"])) == [x["id"]]
            push = [(p["k"], p["ti"]) for p in c.get("p", [])]
            want = (["fcm"] if x["fcm"] else []) + (["apns"] if x["apns"] else [])
            assert [p[0] for p in push] == want, (push, want)
            for _, ti in push:
                assert smembers("bidx:%s:push:%s" % (TENANT, ti)) == [x["id"]]
            if x["channels"]:
                assert c["ch"] == x["channels"].split(";"), c
            else:
                assert "ch" not in c, c
        c3 = json.loads(rcpt(TENANT, "s-03")["c"])
        c4 = json.loads(rcpt(TENANT, "s-04")["c"])
        assert c3["ei"] == c4["ei"], "siblings' shared address: one blind index"
        assert c3["e"] != c4["e"], "each sealed on its own (fresh nonce)"
        assert smembers("bidx:%s:email:%s" % (TENANT, c3["ei"])) == ["s-03", "s-04"]

    # ---------------------------------------------------------------- [2]
    with tap.check("[2] no plaintext address, LINE id, token or name in Redis"):
        hay = b"\x00".join(all_blobs())
        needles = set()
        for x in ROWS:
            for f in ("email", "line", "fcm", "apns"):
                if x[f]:
                    needles.update({x[f], x[f].lower()})
            needles.add(x["name"])
            needles.update(p for p in x["name"].split() if len(p) >= 2)
            local = x["email"].rpartition("@")[0]
            if ".." in local or local.endswith("."):
                needles.update({local, local.lower()})
        found = sorted(n for n in needles if n.encode("utf-8") in hay)
        assert not found, "plaintext in Redis: %r" % found[:5]

    # ---------------------------------------------------------------- [3]
    rc, so, se = ctl("recipients", "export", "--tenant", TENANT)
    EXPORT = so
    with tap.check("[3] export: English header, every row as imported"):
        assert rc == 0, (rc, se)
        got = exported(so)
        want = expect_rows(ROWS)
        assert sorted(got) == sorted(want), sorted(got)
        for rid, w in want.items():
            g = got[rid]
            for f in EN_HEADER:
                assert g[f] == w[f], (rid, f, g[f], w[f])
            assert g["active"] == "1"
        assert '"山田 ""やまちゃん"", 太郎"' in so, "quoted cell"
        assert so.endswith("\r\n")

    with tap.check("[3] re-importing the export changes nothing"):
        before = dump_all()
        p = write(os.path.join(out, "export.csv"), EXPORT.encode())
        rc, so, se = ctl("recipients", "import", "--tenant", TENANT, p)
        assert rc == 0, (rc, se)
        assert summary(so) == (0, 0, 24, 0, 0), so
        assert dump_all() == before

    with tap.check("[3] export --bom starts with a BOM"):
        rc, so, se = ctl("recipients", "export", "--tenant", TENANT, "--bom",
                         "--format", "csv")
        assert rc == 0 and so.startswith("\ufeffid,name,"), so[:20]

    # ---------------------------------------------------------------- [4]
    BROKEN = "\n".join([
        "id,name,email,groups",                        # 1
        "b-01,良い,good1@example.jp,2-A",              # 2
        'b-02,"改行',                                  # 3
        'あり",x2@example.jp,2-A',                     # 4
        "b-03,悪いメール,not-an-address,2-A",          # 5
        "b-01,重複,dup@example.jp,2-A",                # 6
        "b-05,連絡先なし,,2-A",                        # 7: kept (issue 15)
        "b-06,良い2,good2@example.jp,2-A",             # 8
        ",IDなし,noid@example.jp,2-A",                 # 9
        "b-08,グループ,g8@example.jp,2年A組" + "組" * 62,  # 10: 65 chars
        "b-09,良い3,good3@example.jp,2-B",             # 11
    ]) + "\n"
    broken = write(os.path.join(out, "broken.csv"), BROKEN.encode("cp932"))
    with tap.check("[4] broken file: every bad row with its line, nothing written"):
        n0 = r.call("DBSIZE")
        before = dump_all()
        rc, so, se = ctl("recipients", "import", "--tenant", TENANT, broken)
        assert rc == 1, (rc, so, se)
        listed = sorted(int(m) for m in re.findall(
            r"^" + re.escape(broken) + r":(\d+): ", se, re.M))
        assert listed == [3, 5, 6, 9, 10], (listed, se)
        assert "line break" in se and "missing @" in se and "already used at line 2" in se, se
        assert "no contact" not in se, se  # a row without contacts is kept
        assert "id: missing" in se and "66 characters" in se, se
        assert "not-***" in se and "not-an-address" not in se, "address masked"
        assert "nothing written: 5 bad row(s) of 9" in se, se
        assert "added" not in so, so
        assert r.call("DBSIZE") == n0
        assert dump_all() == before

    # ---------------------------------------------------------------- [5]
    with tap.check("[5] --skip-bad writes only the good rows"):
        rc, so, se = ctl("recipients", "import", "--tenant", "t-skip",
                         "--skip-bad", broken)
        assert rc == 0, (rc, se)
        assert summary(so) == (4, 0, 0, 0, 5), so
        assert smembers("rcpts:t-skip") == ["b-01", "b-05", "b-06", "b-09"]
        assert smembers("groups:t-skip") == ["2-A", "2-B"]
        assert smembers("grp:t-skip:2-A") == ["b-01", "b-05", "b-06"]
        assert "5 bad row(s) skipped" in se, se
        assert "連絡先なし 1 名: 登録用紙を配ってください" in se, se
        rc, so, se = ctl("recipients", "export", "--tenant", "t-skip")
        got = exported(so)
        assert got["b-01"]["name"] == "良い" and got["b-01"]["email"] == "good1@example.jp"

    # ---------------------------------------------------------------- [6]
    with tap.check("[6] re-import of the same CP932 file: unchanged 24, no write"):
        before = dump_all()
        rc, so, se = ctl("recipients", "import", "--tenant", TENANT, CP932_FILE)
        assert rc == 0, (rc, se)
        assert summary(so) == (0, 0, 24, 0, 0), so
        assert dump_all() == before

    # ---------------------------------------------------------------- [7]
    with tap.check("[7] --replace deletes who is not in the file, keeps the rest"):
        gone_ei = json.loads(rcpt(TENANT, "s-23")["c"])["ei"]
        rows7 = [dict(x, groups=list(x["groups"])) for x in ROWS
                 if x["id"] not in ("s-23", "s-24")]
        for x in rows7:
            if x["id"] == "s-14":
                x["groups"] = ["2-B"]                  # leaves soccer
            if x["id"] == "s-22":
                x["groups"] = ["2-B", "art"]           # joins art
        p = write(os.path.join(out, "replace.csv"),
                  csv_text(rows7, EN_HEADER).encode("cp932"))
        rc, so, se = ctl("recipients", "import", "--tenant", TENANT, "--replace", p)
        assert rc == 0, (rc, se)
        assert summary(so) == (0, 2, 20, 2, 0), so
        assert "s-23" not in smembers("rcpts:" + TENANT)
        assert r.call("EXISTS", "kairan:rcpt:%s:s-24" % TENANT) == 0
        assert "s-24" not in smembers("grp:%s:2-B" % TENANT)
        assert smembers("grp:%s:soccer" % TENANT) == ["s-02"]
        assert smembers("grp:%s:art" % TENANT) == ["s-22"]
        assert r.call("EXISTS", "kairan:grp:%s:chorus" % TENANT) == 0
        assert smembers("groups:" + TENANT) == ["2-A", "2-B", "art", "soccer"]
        assert r.call("EXISTS", "kairan:bidx:%s:email:%s" % (TENANT, gone_ei)) == 0
        rc, so, se = ctl("recipients", "export", "--tenant", TENANT)
        got = exported(so)
        assert sorted(got) == sorted(expect_rows(rows7))
        assert got["s-22"]["groups"] == ["2-B", "art"]

    # ---------------------------------------------------------------- [8]
    with tap.check("[8] deactivate: exit 0, active 0, history kept"):
        rc, so, se = ctl("recipients", "deactivate", "--tenant", TENANT, "s-10")
        assert rc == 0, (rc, se)
        h = rcpt(TENANT, "s-10")
        assert h["active"] == "0" and h["c"], h
        assert "s-10" in smembers("grp:%s:2-A" % TENANT)
        # a later import of the roster does not bring it back
        rc, so, se = ctl("recipients", "import", "--tenant", TENANT, p)
        assert summary(so) == (0, 0, 22, 0, 0), so
        assert rcpt(TENANT, "s-10")["active"] == "0"

    d = k.start()
    with tap.check("[8] broadcast to 2-A: each active member once, shared address "
                   "once, the deactivated one never"):
        bid = k.submit({"tenant": TENANT, "category": "notice",
                        "subject": "【連絡】学級閉鎖のお知らせ", "body": "保護者各位\n明日は休校です。",
                        "channels": ["email"], "audience": {"groups": ["2-A"]}})
        h = k.wait_done(bid, 60)
        by_id = {x["id"]: x for x in ROWS}
        want = collections.Counter()
        for i in range(1, 13):
            x = by_id["s-%02d" % i]
            if x["email"] and x["id"] != "s-10":
                want[x["email"].lower()] = 1
        assert len(want) == 9, want     # 12 - LINE only - inactive - sibling
        got = delivered(bid)
        assert got == want, (sorted(got.items()), sorted(want.items()))
        assert SHARED in got and got[SHARED] == 1
        assert by_id["s-10"]["email"] not in got
        assert k.counts(bid)["email"]["delivered"] == len(want), k.counts(bid)
        assert h["status"] != "rejected", h

    with tap.check("[8] activate: the next broadcast reaches it again"):
        rc, so, se = ctl("recipients", "activate", "--tenant", TENANT, "s-10")
        assert rc == 0 and rcpt(TENANT, "s-10")["active"] == "1", (rc, se)
        bid = k.submit({"tenant": TENANT, "category": "notice", "subject": "再開",
                        "body": "再開します。", "channels": ["email"],
                        "audience": {"groups": ["soccer"], "recipients": ["s-10"]}})
        k.wait_done(bid, 60)
        new = delivered(bid)
        assert new == collections.Counter(["hogo02@example.jp", "hogo10@example.jp"]), new

    # ---------------------------------------------------------------- [9]
    with tap.check("[9] broadcast to an unknown group: rejected with the reason"):
        bid = k.submit({"tenant": TENANT, "category": "notice", "subject": "x",
                        "body": "y", "channels": ["email"],
                        "audience": {"groups": ["9-Z"]}})
        h = k.wait_done(bid, 30)
        assert h["status"] == "rejected", h
        assert "unknown group" in h.get("reason", "") and \
            "audience.groups[0]" in h["reason"] and "9-Z" not in h["reason"], h
    d.stop()

    # ---------------------------------------------------------------- [10]
    with tap.check("[10] UTF-8 with BOM: imported, exported back the same"):
        rows10 = [{"id": "u-1", "name": "𠮷野 ①", "grade": "1", "class": "C",
                   "groups": ["1-C"], "email": "yoshino..x.@docomo.ne.jp",
                   "line": "", "fcm": "", "apns": "", "channels": ""},
                  {"id": "u-2", "name": "ＡＢＣ", "grade": "1", "class": "C",
                   "groups": ["1-C", "band"], "email": "", "line": line_id(99),
                   "fcm": "", "apns": apns_token(99), "channels": "line;push"}]
        p = write(os.path.join(out, "bom.csv"),
                  b"\xef\xbb\xbf" + csv_text(rows10, EN_HEADER).encode())
        rc, so, se = ctl("recipients", "import", "--tenant", "t-bom", p)
        assert rc == 0, (rc, se)
        assert "UTF-8 with BOM" in so and summary(so) == (2, 0, 0, 0, 0), so
        rc, so, se = ctl("recipients", "export", "--tenant", "t-bom")
        got = exported(so)
        want = expect_rows(rows10)
        for rid in want:
            for f in EN_HEADER:
                assert got[rid][f] == want[rid][f], (rid, f, got[rid][f])

    # ---------------------------------------------------------------- [11]
    with tap.check("[11] delete: record, memberships and index entries gone"):
        ei = json.loads(rcpt(TENANT, "s-02")["c"])["ei"]
        rc, so, se = ctl("recipients", "delete", "--tenant", TENANT, "s-02")
        assert rc == 0, (rc, se)
        assert r.call("EXISTS", "kairan:rcpt:%s:s-02" % TENANT) == 0
        assert "s-02" not in smembers("grp:%s:2-A" % TENANT)
        assert "s-02" not in smembers("rcpts:" + TENANT)
        assert r.call("EXISTS", "kairan:bidx:%s:email:%s" % (TENANT, ei)) == 0
        assert r.call("EXISTS", "kairan:grp:%s:soccer" % TENANT) == 0
        assert "soccer" not in smembers("groups:" + TENANT)

    with tap.check("[11] groups list: sorted names with member counts"):
        rc, so, se = ctl("groups", "list", "--tenant", TENANT)
        assert rc == 0, (rc, se)
        assert so == "2-A\t11\n2-B\t10\nart\t1\n", repr(so)

    with tap.check("[11] exit codes: unknown id 3, unknown tenant 3, usage 2"):
        assert ctl("recipients", "delete", "--tenant", TENANT, "s-02")[0] == 3
        assert ctl("recipients", "deactivate", "--tenant", TENANT, "nobody")[0] == 3
        assert ctl("recipients", "activate", "--tenant", TENANT, "nobody")[0] == 3
        assert ctl("groups", "list", "--tenant", "no-such")[0] == 3
        assert ctl("recipients", "export", "--tenant", "no-such")[0] == 3
        assert ctl("recipients", "import", "--tenant", TENANT,
                   os.path.join(out, "missing.csv"))[0] == 2
        assert ctl("recipients", "import", CP932_FILE)[0] == 2
        assert ctl("recipients", "import", "--tenant", "bad tenant", CP932_FILE)[0] == 2
        assert ctl("recipients", "export", "--tenant", TENANT, "--format", "xml")[0] == 2
        assert ctl("recipients", "frobnicate", "--tenant", TENANT)[0] == 2

    with tap.check("[11] neither UTF-8 nor CP932: exit 1, the line named"):
        p = write(os.path.join(out, "garbage.csv"), b"id,email\r\nx-1,\x80\xff@a.jp\r\n")
        rc, so, se = ctl("recipients", "import", "--tenant", TENANT, p)
        assert rc == 1 and (p + ":2: ") in se and "neither UTF-8 nor CP932" in se, (rc, se)

    # ---------------------------------------------------------------- [12]
    with tap.check("[12] operation log: JSON lines, JST, ops and counts, no address"):
        with open(os.path.join(AUDIT, "operations.jsonl"), encoding="utf-8") as f:
            text = f.read()
        lines = [json.loads(x) for x in text.splitlines()]
        ops = collections.Counter(x["op"] for x in lines)
        assert ops["recipients.import"] == 7, ops
        assert ops["recipients.deactivate"] == 1 and ops["recipients.activate"] == 1, ops
        assert ops["recipients.delete"] == 1, ops
        for x in lines:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+09:00",
                                x["time"]), x
            assert x["actor"].startswith("kairanctl"), x
        first = lines[0]
        assert first["tenant"] == TENANT and first["added"] == 24, first
        assert "@" not in text, "no address in the operation log"
        assert oct(os.stat(AUDIT).st_mode & 0o777) == "0o750"

    with tap.check("[12] an export (every address, phone and name in clear) "
                   "is in the operation log: who, which school, how many"):
        rc, so, se = ctl("recipients", "export", "--tenant", TENANT)
        assert rc == 0, (rc, se)
        with open(os.path.join(AUDIT, "operations.jsonl"), encoding="utf-8") as f:
            last = json.loads(f.read().splitlines()[-1])
        assert last["op"] == "recipients.export", last
        assert last["tenant"] == TENANT, last
        assert last["actor"].startswith("kairanctl"), last
        assert last["recipients"] == len(exported(so)), (last, len(exported(so)))

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
