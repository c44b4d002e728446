#!/usr/bin/python3
"""test_hostile_text.py - what kairanctl and kairand do with hostile text
and hostile files (issue 11, item 8, the "low" items):

  [1] recipients export writes formula cells ("=cmd|...", "+81", "-1",
      "@SUM") as text for Excel: "'=..." inside quotes (OWASP); importing
      the export is a no-op and the stored values are unchanged.
  [2] report: escape sequences, C1 controls and bidi overrides in the
      subject, a name and a provider's reason are shown escaped in text
      and HTML, never raw; the JSON is valid JSON with the same values.
  [3] report at 30,000 recipients (states seeded in Redis): every count
      right (the loading was O(n^2); its time is printed, not asserted).
  [4] kairand --check refuses listen = 127.0.0.1:99999, public_url =
      javascript:alert(1)// ... and accepts what the start accepts.
  [5] token create --expires 90 is refused with what to write; 90d works.
  [6] a CSV of UTF-8 lines with CP932 lines pasted in is refused naming
      the first CP932 line; nothing is written.
  [7] a header of 2,000,000 unknown columns prints at most 21 lines; 100
      bad rows print 20 and "... and 80 more".
  [8] a request path that is not UTF-8 (/v1/broadcasts/%FF): the error
      and the login-log line keep the path, as \\xff; an import of a file
      whose name is not UTF-8 names it in its messages and the operation
      log.
  [9] a request path with C1 controls and bidi overrides
      (/v1/broadcasts/b-%C2%9B31m%E2%80%AEx): kairand's log (debug) and the
      login log carry them as \\u escapes, never raw (a terminal that
      shows the log obeys a raw CSI U+009B; U+202E turns the line around),
      with the same JSON value; so does the operation log for a file name.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_hostile_text.py
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("hostile")
TENANT = "ume"
ESC_SUBJECT = "\x1b]0;pwned\x07【緊急】\x1b[2J休校\u009b31m\u202eabc"
ESC_NAME = "\x1b[31m山田\u2066太郎"
N_BIG = 30000


def ctl_bytes(k, *args, input=None):
    """kairanctl with bytes arguments and output."""
    cp = subprocess.run([os.path.join(BUILD, "kairanctl").encode(), b"-c",
                         k.conf.encode()] + [a if isinstance(a, bytes) else
                                             str(a).encode() for a in args],
                        input=input, capture_output=True, timeout=300)
    return cp.returncode, cp.stdout, cp.stderr


def raw_controls(b):
    """The raw terminal-control bytes in b (ESC, BEL, C1 and bidi in UTF-8)."""
    bad = []
    for needle in (b"\x1b", b"\x07", b"\xc2\x9b", b"\xe2\x80\xae",
                   b"\xe2\x81\xa6"):
        if needle in b:
            bad.append(needle)
    return bad


def http(port, method, path, token=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


with Redis(out) as redis:
    port = free_port()
    audit = os.path.join(out, "audit")
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "rate": "100000"},
                     "retention": {"audit_dir": audit}})
    P = k.prefix

    # ------------------------------------------------------------ [1]
    with tap.check("[1] export guards formula cells; re-import is a no-op"):
        rows = [("r-1", "=cmd|' /C calc'!A0", "=1+1@ex.jp"),
                ("r-2", "+81-3-1234", "p2@example.jp"),
                ("r-3", "-", "-x@example.jp"),
                ("r-4", "@SUM(A1:A9)", "p4@example.jp"),
                ("r-5", "''=twice", "p5@example.jp"),
                ("r-6", "山田 太郎", "p6@example.jp")]
        src = os.path.join(out, "roster.csv")
        with open(src, "w", encoding="utf-8", newline="") as f:
            f.write("id,name,email\r\n")
            for rid, name, mail in rows:
                f.write('%s,"%s",%s\r\n' % (rid, name.replace('"', '""'),
                                            mail))
        cp = k.ctl("recipients", "import", "--tenant", TENANT, src)
        assert cp.returncode == 0, cp.stderr
        cp = k.ctl("recipients", "export", "--tenant", TENANT)
        assert cp.returncode == 0, cp.stderr
        text = cp.stdout
        for line in text.splitlines()[1:]:
            for cell in line.split(","):
                c = cell.strip('"')
                assert not c or c[0] not in "=+-@\t\r", \
                    "a cell starts a formula: %r in %r" % (c, line)
        assert "\"'=cmd|' /C calc'!A0\"" in text, text
        assert "\"'+81-3-1234\"" in text and "\"'@SUM(A1:A9)\"" in text
        # a file's "'=x" is Excel's text marker, taken off on import;
        # "''=x" keeps one quote, which the export guards again
        assert "\"''=twice\"" in text, text
        assert "\"'=1+1@ex.jp\"" in text, text
        assert "山田 太郎" in text and "\"'山田" not in text
        exp = os.path.join(out, "export.csv")
        with open(exp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        cp = k.ctl("recipients", "import", "--tenant", TENANT, exp)
        assert cp.returncode == 0, cp.stderr
        assert "added 0, updated 0, unchanged 6" in cp.stdout, cp.stdout
        cp2 = k.ctl("recipients", "export", "--tenant", TENANT)
        assert cp2.stdout == text, "the second export differs"

    # ------------------------------------------------------------ [2]
    bid = None
    with tap.check("[2] report shows outside escape sequences, never raw"):
        bid = k.submit({"tenant": TENANT, "subject": ESC_SUBJECT,
                        "body": "x", "channels": ["email"],
                        "recipients": [{"id": "x-1", "name": ESC_NAME,
                                        "email": "x1@example.jp"}]})
        now = int(time.time() * 1000)
        redis.call("HSET", P + "bc:%s:r" % bid, "email:zz",
                   b"f|x-1|%d|550 \x1b]8;;http://evil\x07click\xff" % now)
        for fmt in ("text", "html"):
            rc, so, se = ctl_bytes(k, "report", bid, "--format", fmt)
            assert rc == 0, se
            assert not raw_controls(so), (fmt, raw_controls(so), so[:400])
            st = so.decode("utf-8")     # still valid UTF-8
            assert "\\x1b]0;pwned\\x07【緊急】\\x1b[2J休校\\u009b31m" \
                   "\\u202eabc" in st, (fmt, st[:500])
            assert "\\x1b[31m山田\\u2066太郎" in st, (fmt, st)
            assert "\\x1b]8;;http://evil\\x07click\\xff" in st, (fmt, st)
        rc, so, se = ctl_bytes(k, "report", bid, "--format", "json")
        assert rc == 0, se
        assert not raw_controls(so), raw_controls(so)
        j = json.loads(so.decode("utf-8"))
        assert j["subject"] == ESC_SUBJECT, j["subject"]
        assert j["unconfirmed"][0]["name"] == ESC_NAME
        assert list(j["failures"]) == [
            "550 \x1b]8;;http://evil\x07click\\xff"], j["failures"]

    # ------------------------------------------------------------ [3]
    with tap.check("[3] report at %d recipients: every count right" % N_BIG):
        big = "b-hostile-big"
        t0 = 1795300000000
        redis.call("HSET", P + "bc:" + big, "status", "done", "tenant",
                   TENANT, "subject", "big", "created_ms", str(t0))
        fields = []
        for i in range(N_BIG):
            rid = "r-%05d" % i
            if i % 10 == 9:
                fields += ["email:a%d" % i, "f|%s|%d|550 no such user"
                           % (rid, t0 + 1000)]
            else:
                fields += ["email:a%d" % i, "d|%s|%d|250" % (rid, t0 + i)]
            if i % 3 == 0:      # a second channel for a third of them
                fields += ["line:l%d" % i, "d|%s|%d|200"
                           % (rid, t0 + 500 + i)]
        for off in range(0, len(fields), 20000):
            redis.call("HSET", P + "bc:%s:r" % big, *fields[off:off + 20000])
        acks = []
        for i in range(0, N_BIG, 2):
            acks += ["r-%05d" % i, str(t0 + 60000 + i)]
        for off in range(0, len(acks), 20000):
            redis.call("HSET", P + "bc:%s:ack" % big, *acks[off:off + 20000])
        t = time.monotonic()
        rc, so, se = ctl_bytes(k, "report", big, "--format", "json")
        took = time.monotonic() - t
        assert rc == 0, se
        j = json.loads(so)
        tap.diag("report of %d recipients took %.2f s" % (N_BIG, took))
        reached = sum(1 for i in range(N_BIG) if i % 10 != 9 or i % 3 == 0)
        assert j["recipients"] == N_BIG, j["recipients"]
        assert j["reached"] == reached, (j["reached"], reached)
        assert j["confirmed"] == N_BIG // 2, j["confirmed"]
        assert len(j["unconfirmed"]) == N_BIG // 2
        assert j["failures"] == {"550 no such user": N_BIG // 10}, \
            j["failures"]
        assert j["channels"]["line"]["recipients"] == (N_BIG + 2) // 3
        assert j["channels"]["email"]["reached"] == N_BIG - N_BIG // 10
        # not reached first, then by id
        un = j["unconfirmed"]
        assert [u["reached"] for u in un[:2]] == [False, False], un[:2]
        ids = [u["id"] for u in un if u["reached"]]
        assert ids == sorted(ids)

    # ------------------------------------------------------------ [4]
    def check_conf(listen=None, public_url=None):
        kc = Kairan(out, redis, email="outbox", name="check-%d" % free_port(),
                    conf={"http": {k_: v for k_, v in
                                   (("listen", listen),
                                    ("public_url", public_url)) if v}})
        cp = subprocess.run([os.path.join(BUILD, "kairand"), "-c", kc.conf,
                             "--check"], capture_output=True, text=True,
                            timeout=60)
        return cp.returncode, cp.stderr

    with tap.check("[4] kairand --check refuses listen and public_url the "
                   "start cannot use"):
        for bad in ("127.0.0.1:99999", "127.0.0.1:0", "example.jp:8025",
                    "::1:8025"):
            rc, err = check_conf(listen=bad)
            assert rc == 1 and "http.listen" in err, (bad, rc, err)
        for bad in ("javascript:alert(1)//", "https://u:p@x.example",
                    "https://x.example/#a", "https://x.example/ a"):
            rc, err = check_conf(public_url=bad)
            assert rc == 1 and "http.public_url" in err, (bad, rc, err)
        for good in ("localhost:%d" % free_port(), "[::1]:%d" % free_port()):
            rc, err = check_conf(listen=good)
            assert rc == 0, (good, err)
        rc, err = check_conf(public_url="https://kairan.example.jp/base")
        assert rc == 0, err

    # ------------------------------------------------------------ [5]
    with tap.check("[5] token create --expires 90 is refused; 90d works"):
        cp = k.ctl("token", "create", "--role", "admin", "--name", "x",
                   "--expires", "90")
        assert cp.returncode == 2, (cp.returncode, cp.stderr)
        assert "90d" in cp.stderr and "unit" in cp.stderr, cp.stderr
        assert cp.stdout == ""
        cp = k.ctl("token", "create", "--role", "admin", "--name", "x",
                   "--expires", "90d")
        assert cp.returncode == 0, cp.stderr
        tok = cp.stdout.strip()
        lst = json.loads(k.ctl("token", "list", "--json").stdout)
        e = [t for t in lst if tok.startswith("kn_" + t["id"] + "_")][0]
        assert e["expires"] and e["expires"][:4] >= time.strftime("%Y"), e

    # ------------------------------------------------------------ [6]
    with tap.check("[6] a CSV of UTF-8 and CP932 lines is refused"):
        before = redis.call("DBSIZE")
        data = ("id,name,email\r\n1,山田,a1@example.jp\r\n"
                "2,佐藤,a2@example.jp\r\n").encode("utf-8") + \
            "3,髙橋,a3@example.jp\r\n".encode("cp932")
        mixed = os.path.join(out, "mixed.csv")
        with open(mixed, "wb") as f:
            f.write(data)
        cp = k.ctl("recipients", "import", "--tenant", "mix", mixed)
        assert cp.returncode == 1, (cp.returncode, cp.stderr)
        assert cp.stderr.startswith(mixed + ":4: the file mixes two "
                                    "encodings"), cp.stderr
        assert "one encoding" in cp.stderr
        assert redis.call("DBSIZE") == before

    # ------------------------------------------------------------ [7]
    with tap.check("[7] 2,000,000 unknown columns: at most 21 lines"):
        wide = os.path.join(out, "wide.csv")
        with open(wide, "w") as f:
            f.write("id," + ",".join(["x"] * 2000000) + "\n1\n")
        rc, so, se = ctl_bytes(k, "recipients", "import", "--tenant", "w",
                               wide)
        lines = se.decode().splitlines()
        assert rc == 1, rc
        assert len(lines) == 21, (len(lines), lines[:3], lines[-2:])
        assert "unknown column \"x\" (column 2, letter B)" in lines[0], lines[0]
        assert lines[-1].endswith("... and 1999980 more problems in the "
                                  "header"), lines[-1]
    with tap.check("[7] 100 bad rows: 20 listed, then '... and 80 more'"):
        bad = os.path.join(out, "bad.csv")
        with open(bad, "w") as f:
            f.write("id,email\n")
            for i in range(100):
                f.write("b-%d,not-an-address\n" % i)
        cp = k.ctl("recipients", "import", "--tenant", "w", bad)
        lines = cp.stderr.splitlines()
        assert cp.returncode == 1
        assert sum(1 for x in lines if ": email: " in x) == 20, lines
        assert any(x.endswith("... and 80 more bad rows (the first 20 are "
                              "listed above)") for x in lines), lines
        assert "100 bad row(s) of 100" in cp.stderr, cp.stderr

    # ------------------------------------------------------------ [8]
    with tap.check("[8] a path that is not UTF-8 is kept, as \\xNN, in the "
                   "HTTP error and the login log"):
        d = k.start()
        d.wait_output('"listening"', 15)
        cp = k.ctl("token", "create", "--role", "admin", "--name", "ops")
        tok = cp.stdout.strip()
        st, body = http(port, "GET", "/v1/%FF%FEx", tok)
        assert st == 404, (st, body)
        err = json.loads(body)["error"]
        assert err == "no such resource: /v1/\\xff\\xfex", err
        st, body = http(port, "GET", "/v1/broadcasts/b-%FF%FEx", tok)
        assert st == 404, (st, body)
        log = os.path.join(audit, "login.jsonl")
        entries = wait_for(lambda: [json.loads(x) for x in open(log)
                                    if "b-" in x] or None, 10,
                           what="the login log line")
        assert entries[-1]["path"] == "/v1/broadcasts/b-\\xff\\xfex", \
            entries[-1]
        d.stop()
    with tap.check("[8] an import file name that is not UTF-8 is named, "
                   "escaped, in messages and the operation log"):
        name = os.path.join(out.encode(), b"\x8e\x52\x93\x63\x1b[2J.csv")
        with open(name, "wb") as f:
            f.write(b"id,email\nn-1,n1@example.jp\nn-2,bad\n")
        rc, so, se = ctl_bytes(k, "recipients", "import", "--tenant", "n",
                               name)
        assert rc == 1
        shown = out + "/\\x8eR\\x93c\\x1b[2J.csv"
        assert se.decode("utf-8").startswith(shown + ":3: email:"), se
        assert b"\x1b" not in se
        rc, so, se = ctl_bytes(k, "recipients", "import", "--tenant", "n",
                               "--skip-bad", name)
        assert rc == 0, se
        ops = [json.loads(x) for x in
               open(os.path.join(audit, "operations.jsonl"))]
        imp = [o for o in ops if o.get("tenant") == "n"][-1]
        assert imp["file"] == out + "/\\x8eR\\x93c\x1b[2J.csv", imp

    # ------------------------------------------------------------ [9]
    with tap.check("[9] C1 controls and bidi overrides from a request path "
                   "or a file name: escaped in kairand's log, the login log "
                   "and the operation log"):
        k.sections["dispatcher"]["log_level"] = "debug"
        k.write_conf()
        d = k.start()
        d.wait_output('"listening"', 15)
        cp = k.ctl("token", "create", "--role", "admin", "--name", "ops9")
        tok = cp.stdout.strip()
        st, body = http(port, "GET", "/v1/broadcasts/b9-%C2%9B31m%E2%80%AEx",
                        tok)
        assert st == 404, (st, body)
        log = os.path.join(audit, "login.jsonl")
        wait_for(lambda: "b9-" in open(log, encoding="utf-8").read() or None,
                 10, what="the login log line")
        raw = open(log, "rb").read()
        assert raw_controls(raw) == [], raw_controls(raw)
        line = [json.loads(x) for x in raw.decode().splitlines()
                if "b9-" in x][-1]
        assert line["path"] == "/v1/broadcasts/b9-\u009b31m\u202ex", line
        d.wait_output('b9-', 10)
        d.stop()
        err = open(d.stderr_path, "rb").read()
        assert raw_controls(err) == [], raw_controls(err)
        reqs = [json.loads(x) for x in err.decode().splitlines()
                if x.startswith("{") and "b9-" in x]
        assert reqs and reqs[-1]["path"] == \
            "/v1/broadcasts/b9-\u009b31m\u202ex", reqs
        name = os.path.join(out.encode(), "b9\u009b31m\u202e.csv".encode())
        with open(name, "wb") as f:
            f.write(b"id,email\nb9-1,b91@example.jp\n")
        rc, so, se = ctl_bytes(k, "recipients", "import", "--tenant", "b9",
                               name)
        assert rc == 0, se
        raw = open(os.path.join(audit, "operations.jsonl"), "rb").read()
        assert raw_controls(raw) == [], raw_controls(raw)
        imp = [json.loads(x) for x in raw.decode().splitlines()
               if '"b9"' in x][-1]
        assert imp["file"] == out + "/b9\u009b31m\u202e.csv", imp
        k.sections["dispatcher"]["log_level"] = "info"
        k.write_conf()

tap.done()
