#!/usr/bin/python3
"""test_sheets.py - registration sheets (issue 15): kairanctl recipients
sheets, with an ID and a passcode per student.

  [1] HTML: one A4 <section class="sheet"> per active student (the
      inactive one has none), each with the school, the student's name,
      the URL <public_url>/r?id=<ID>, an inline SVG QR code, the ID, the
      passcode (12 characters of the alphabet without look-alikes, printed
      XXXX-XXXX-XXXX) and the sender's domain for the carrier filters;
      names from outside are HTML-escaped.
  [2] Redis holds the passcode only as its keyed hash (sheet:<ID> h = the
      blind index of "<ID>:<passcode>", which needs the key file), nowhere
      in clear; reg:<T>:<id> names the live sheet; sheets:<T> lists them.
  [3] run again: every student skipped (live), no page, nothing changed.
  [4] --reissue --format csv --bom: UTF-8 with a BOM, the columns id,
      name, url, passcode (then student, group), new IDs and passcodes; the
      old sheets are gone.
  [5] --group limits the sheets to the group; an unknown group or tenant
      exits 3; a bad option exits 2.
  [6] registration.max_guardians: stored on the sheet; a used-up sheet is
      not live and gets a new one without --reissue.
  [7] the operation log has a recipients.sheets line with the counts and
      no passcode.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_sheets.py
"""

import csv
import hashlib
import hmac
import io
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("sheets")
T = "sakura-es"
ALPHA = "34679ACEFGHJKMNPQRTWXY"


def ctl(*args):
    cp = subprocess.run([os.path.join(BUILD, "kairanctl"), "-c", k.conf]
                        + [str(a) for a in args], capture_output=True,
                        timeout=60)
    return cp.returncode, cp.stdout.decode(), cp.stderr.decode()


def scan(pattern="*"):
    keys, cursor = [], b"0"
    while True:
        cursor, ks = r.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        keys.extend(x.decode() for x in ks)
        if cursor in (b"0", 0, "0"):
            return sorted(keys)


def hgetall(key):
    v = r.call("HGETALL", key)
    return {v[i].decode(): v[i + 1].decode() for i in range(0, len(v), 2)}


def index_key():
    """The blind-index key of a fresh key file (common/seal.c): HKDF-SHA-256
    of kid 1's key, info "kairan blind index v1", no salt."""
    with open(k.key_file) as f:
        lines = [ln.strip() for ln in f
                 if re.match(r"^(\d+|index):", ln.strip())]
    for ln in lines:
        if ln.startswith("index:"):
            return bytes.fromhex(ln[6:])
    key = bytes.fromhex(min(lines, key=lambda ln: int(ln.split(":")[0]))
                        .split(":", 1)[1])
    prk = hmac.new(b"\0" * 32, key, hashlib.sha256).digest()
    return hmac.new(prk, b"kairan blind index v1\x01", hashlib.sha256).digest()


def pass_hash(sheet_id, passcode):
    m = hmac.new(index_key(), b"passcode\0" + ("%s:%s" % (sheet_id, passcode))
                 .encode(), hashlib.sha256)
    return m.hexdigest()[:32]


def sheets_of(html):
    return re.findall(r'<section class="sheet">.*?</section>', html, re.S)


with Redis(out) as r:
    k = Kairan(out, r, conf={"http": {"public_url": "https://kairan.example.jp/"}})
    rows = "id,name,class,groups,email,active\r\n" + "".join(
        "s-%02d,%s,%s,%s,%s,%s\r\n" % (
            i, "佐藤 <b>%d</b>" % i if i == 1 else "生徒%d" % i,
            "1-A" if i <= 3 else "1-B", "1-A" if i <= 3 else "1-B",
            "g%02d@example.jp" % i, "0" if i == 5 else "1")
        for i in range(1, 6))
    with open(os.path.join(out, "roster.csv"), "w") as f:
        f.write(rows)
    rc, o, e = ctl("recipients", "import", "--tenant", T,
                   os.path.join(out, "roster.csv"))
    assert rc == 0, e

    rc, html, err = ctl("recipients", "sheets", "--tenant", T)
    pages = sheets_of(html)
    first = {}
    with tap.check("[1] one A4 sheet per active student with URL, QR, ID, "
                   "passcode, carrier settings; names escaped"):
        assert rc == 0, err
        assert "issued 4, skipped 0" in err, err
        assert "@page{size:A4" in html
        assert len(pages) == 4, len(pages)
        assert "生徒5" not in html                      # inactive
        assert "佐藤 &lt;b&gt;1&lt;/b&gt;" in html and "<b>1</b>" not in html
        for p in pages:
            m = re.search(r"<dt>ID</dt><dd>([^<]+)</dd><dt>パスコード</dt>"
                          r"<dd>([^<]+)</dd>", p)
            assert m, p[:300]
            sid, pw = m.group(1), m.group(2)
            assert re.fullmatch("[%s]{8}" % ALPHA, sid), sid
            assert re.fullmatch("([%s]{4}-){2}[%s]{4}" % (ALPHA, ALPHA), pw), pw
            assert "https://kairan.example.jp/r?id=" + sid in p
            assert re.search(r'<svg [^>]*viewBox="0 0 (\d+) \1"', p)
            assert '<path fill="#000" d="M' in p
            assert "sakura.example.jp" in p            # the domain to allow
            assert "URL付きメール拒否" in p and "docomo" in p
            name = re.search(r"児童・生徒: ([^（<]+)", p).group(1)
            first[name] = (sid, pw.replace("-", ""))
        assert len(set(v[0] for v in first.values())) == 4

    with tap.check("[2] the passcode only as its keyed hash; reg and sheets "
                   "records"):
        dump = b"".join(r.call("DUMP", key) or b"" for key in scan())
        for sid, pw in first.values():
            assert pw.encode() not in dump
            s = hgetall("kairan:sheet:" + sid)
            assert s["t"] == T and s["used"] == "0" and s["max"] == "2", s
            assert s["h"] == pass_hash(sid, pw), (s["h"], pass_hash(sid, pw))
            assert r.call("HGET", "kairan:reg:%s:%s" % (T, s["r"]),
                          "sheet").decode() == sid
        assert sorted(x.decode() for x in r.call(
            "SMEMBERS", "kairan:sheets:" + T)) == sorted(
            v[0] for v in first.values())

    with tap.check("[3] again: every live sheet skipped, nothing changed"):
        before = {key: r.call("DUMP", key) for key in scan("kairan:sheet*")}
        rc, html2, err = ctl("recipients", "sheets", "--tenant", T)
        assert rc == 0 and "issued 0, skipped 4" in err, (rc, err)
        assert sheets_of(html2) == []
        assert {key: r.call("DUMP", key)
                for key in scan("kairan:sheet*")} == before

    with tap.check("[4] --reissue --format csv: columns id,name,url,passcode; "
                   "old sheets void"):
        rc, text, err = ctl("recipients", "sheets", "--tenant", T,
                            "--reissue", "--format", "csv", "--bom")
        assert rc == 0 and "issued 4" in err, err
        # --bom: Japanese Excel reads the names as UTF-8
        assert text.startswith("\ufeffid,name,"), text[:20]
        rows = list(csv.reader(io.StringIO(text[1:])))
        assert rows[0][:4] == ["id", "name", "url", "passcode"], rows[0]
        assert len(rows) == 5
        for row in rows[1:]:
            assert row[2] == "https://kairan.example.jp/r?id=" + row[0]
            assert row[0] not in [v[0] for v in first.values()]
        for sid, _ in first.values():
            assert r.call("EXISTS", "kairan:sheet:" + sid) == 0
        assert len(scan("kairan:sheet:*")) == 4

    with tap.check("[5] --group; unknown group or tenant exits 3; usage 2"):
        rc, text, err = ctl("recipients", "sheets", "--tenant", T, "--group",
                            "1-A", "--reissue", "--format", "csv")
        assert rc == 0 and "issued 3" in err, err
        assert sorted(row[4] for row in list(csv.reader(io.StringIO(text)))[1:]) \
            == ["s-01", "s-02", "s-03"]
        assert ctl("recipients", "sheets", "--tenant", T, "--group",
                   "9-Z")[0] == 3
        assert ctl("recipients", "sheets", "--tenant", "nobody")[0] == 3
        assert ctl("recipients", "sheets", "--tenant", T, "--format",
                   "pdf")[0] == 2
        assert ctl("recipients", "sheets", "--tenant", T, "--bom")[0] == 2
        assert ctl("recipients", "export", "--tenant", T, "--reissue")[0] == 2

    with tap.check("[6] registration.max_guardians on the sheet; a used-up "
                   "sheet is replaced without --reissue"):
        k.sections.setdefault("registration", {})["max_guardians"] = "3"
        k.write_conf()
        sid = r.call("HGET", "kairan:reg:%s:s-04" % T, "sheet").decode()
        r.call("HSET", "kairan:sheet:" + sid, "used", "1")     # 1 of 2: live
        rc, text, err = ctl("recipients", "sheets", "--tenant", T,
                            "--format", "csv")
        assert rc == 0 and "issued 0, skipped 4" in err, err
        r.call("HSET", "kairan:sheet:" + sid, "used", "2")     # used up
        rc, text, err = ctl("recipients", "sheets", "--tenant", T,
                            "--format", "csv")
        assert rc == 0 and "issued 1, skipped 3" in err, err
        new = r.call("HGET", "kairan:reg:%s:s-04" % T, "sheet").decode()
        assert new != sid and r.call("EXISTS", "kairan:sheet:" + sid) == 0
        assert r.call("HGET", "kairan:sheet:" + new, "max") == b"3"
        k.sections["registration"]["max_guardians"] = "11"
        k.write_conf()
        rc, _, err = ctl("recipients", "sheets", "--tenant", T)
        assert rc != 0 and "max_guardians" in err, err
        k.sections["registration"]["max_guardians"] = "2"
        k.write_conf()

    with tap.check("[7] the operation log: recipients.sheets with counts, no "
                   "passcode"):
        with open(os.path.join(k.dir, "audit", "operations.jsonl")) as f:
            ops = [json.loads(ln) for ln in f if ln.strip()]
        sh = [o for o in ops if o.get("op") == "recipients.sheets"]
        assert len(sh) >= 5, ops
        assert sh[0]["issued"] == 4 and sh[0]["tenant"] == T, sh[0]
        text = json.dumps(ops)
        for _, pw in first.values():
            assert pw not in text

tap.done()
