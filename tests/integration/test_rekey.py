#!/usr/bin/python3
"""test_rekey.py - key rotation (issue 4, "Leaks of data: key rotation"):
kairanctl key add / key list and kairanctl rekey (cli/rekey.c).

  [1] a small directory imported with key id 1: every sealed value starts
      with "k1.".
  [1b] a guardian's own registration (reg:<T>:<child>, issue 15) with
      sealed e-mail, name and relation under k1: rekey must take it too.
  [2] a broadcast with an inline recipient submitted before the rotation
      (its audience list bc:<id>:aud holds sealed values under k1).
  [3] `key add` -> key id 2 is current; the old values still decrypt
      (export gives every address back) and a new import writes k2.
  [4] `rekey --dry-run` counts without writing (DUMP of every key equal).
  [5] `rekey` -> counts reported; every sealed value in the directory and
      in the audience list now starts with "k2."; export still gives the
      same data; a second rekey re-encrypts nothing.
  [6] a broadcast to the group still delivers (outbox) to every member,
      and the pre-rotation broadcast (rekeyed audience) too.
  [7] no plaintext address, LINE id or name anywhere in Redis.
  [8] a key file without the old key cannot open the rekeyed data (the
      rotation really changed the key) - and with only the old key, the
      new values are refused too.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_rekey.py
"""

import collections
import email
import email.policy
import email.utils
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("rekey")
TENANT = "rekey-hs"

ROWS = [
    ("s-1", "髙橋 一郎", "2-A", "taro..yamada.@docomo.ne.jp",
     "U4af4980629a1b2c3d4e5f60718293a4b"),
    ("s-2", "佐藤 花子", "2-A", "hanako.sato@ezweb.ne.jp", ""),
    ("s-3", "鈴木 次郎", "2-A;soccer", "jiro.suzuki@example.jp",
     "U0123456789abcdef0123456789abcdef"),
    ("s-4", "田中 三郎", "soccer", "saburo@example.jp", ""),
]
INLINE_EMAIL = "inline.parent@example.jp"
NEW_EMAIL = "newcomer.rekey@example.jp"
PLAIN = ([x[3] for x in ROWS] + [x[4] for x in ROWS if x[4]]
         + [x[1] for x in ROWS] + [INLINE_EMAIL, NEW_EMAIL, "山田 花子"])

SEALED_RE = re.compile(rb"^k(\d+)\.[A-Za-z0-9_-]+$")


def write_csv(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,name,groups,email,line\n")
        for rid, name, groups, mail, line in rows:
            f.write("%s,%s,%s,%s,%s\n" % (rid, name, groups, mail, line))


def scan_keys(pattern="*"):
    keys, cursor = [], b"0"
    while True:
        cursor, ks = r.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        keys.extend(ks)
        if cursor in (b"0", 0, "0"):
            return sorted(keys)


def all_blobs():
    """Every key name and value of every type, as bytes."""
    blobs = []
    for key in scan_keys():
        blobs.append(key)
        t = r.call("TYPE", key)
        t = t.decode() if isinstance(t, bytes) else t
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
            for _eid, kv in r.call("XRANGE", key, "-", "+"):
                blobs.extend(kv)
    return [b for b in blobs if isinstance(b, bytes)]


def dump_all():
    return {key: r.call("DUMP", key) for key in scan_keys()}


def sealed_values():
    """[(where, sealed bytes)] of every sealed value of the directory and
    of the audience lists' inline entries."""
    vals = []

    def from_contacts(where, c):
        for f in ("e", "l", "nm"):
            if f in c:
                vals.append((where + "." + f, c[f].encode()))
        for i, p in enumerate(c.get("p", [])):
            vals.append((where + ".p%d" % i, p["t"].encode()))

    for key in scan_keys("kairan:rcpt:*"):
        h = r.call("HGETALL", key)
        h = {h[i]: h[i + 1] for i in range(0, len(h), 2)}
        if b"name" in h and h[b"name"]:
            vals.append((key.decode() + ".name", h[b"name"]))
        if b"c" in h:
            from_contacts(key.decode() + ".c", json.loads(h[b"c"]))
    # the guardians' own registrations (issue 15: reg:<T>:<child> "g")
    for key in scan_keys("kairan:reg:*"):
        for i, g in enumerate(json.loads(r.call("HGET", key, "g") or b"[]")):
            where = "%s.g[%d]" % (key.decode(), i)
            from_contacts(where, g)
            for f in ("rl", "ph"):
                if f in g:
                    vals.append((where + "." + f, g[f].encode()))
    for key in scan_keys("kairan:bc:*:aud"):
        for i, e in enumerate(r.call("LRANGE", key, 0, -1)):
            if e.startswith(b"i:"):
                from_contacts("%s[%d]" % (key.decode(), i), json.loads(e[2:]))
    return vals


def kids():
    return collections.Counter(
        (SEALED_RE.match(v).group(1).decode() if SEALED_RE.match(v) else "?")
        for _, v in sealed_values())


def unquote(addr):
    local, _, dom = addr.rpartition("@")
    if local.startswith('"') and local.endswith('"'):
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    return local + "@" + dom


def delivered(bid):
    """Counter of lowercased To addresses of a broadcast's .eml files."""
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


def line_files(bid):
    d = os.path.join(k.outbox, bid)
    return [n for n in (os.listdir(d) if os.path.isdir(d) else [])
            if n.endswith(".json")]


def exported():
    cp = k.ctl("recipients", "export", "--tenant", TENANT)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


with Redis(out) as r:
    k = Kairan(out, r, email="outbox")
    csv1 = os.path.join(out, "dir.csv")
    write_csv(csv1, ROWS)

    # [1] import under key id 1
    cp = k.ctl("recipients", "import", "--tenant", TENANT, csv1)
    tap.ok(cp.returncode == 0, "import with key id 1", cp.stderr)
    c1 = kids()
    # 4 addresses + 2 LINE ids + 4 names
    tap.ok(sum(c1.values()) == 10 and set(c1) == {"1"},
           "every sealed value is k1 before the rotation", str(c1))

    # [1b] a guardian's own registration (what POST /r/verify writes:
    # reg:<T>:<child> "g", sealed e-mail, name and relation), under k1:
    # values sealed by the import for the same purposes.
    h1 = r.call("HGETALL", "kairan:rcpt:%s:s-1" % TENANT)
    h1 = {h1[i]: h1[i + 1] for i in range(0, len(h1), 2)}
    r.call("HSET", "kairan:reg:%s:s-1" % TENANT, "sheet", "SHEET001",
           "g", json.dumps([{"tk": "t-1", "at": 1, "e": json.loads(h1[b"c"])["e"],
                             "ei": json.loads(h1[b"c"])["ei"],
                             "nm": h1[b"name"].decode(),
                             "rl": h1[b"name"].decode()}]))

    # [2] a broadcast with an inline recipient, submitted but not yet sent
    pre = k.submit({"tenant": TENANT, "subject": "回転前", "body": "before",
                    "channels": ["email"],
                    "recipients": [{"id": "x-1", "name": "山田 花子",
                                    "email": INLINE_EMAIL}]})
    aud_before = [e for e in r.call("LRANGE", "kairan:bc:%s:aud" % pre, 0, -1)
                  if e.startswith(b"i:")]
    tap.ok(len(aud_before) == 1 and b'"k1.' in aud_before[0],
           "the inline audience entry is sealed with k1")
    export_before = exported()

    # [3] add a key
    cp = subprocess.run([os.path.join(BUILD, "kairanctl"), "key", "add",
                         k.key_file], capture_output=True, text=True)
    tap.ok(cp.returncode == 0 and "added key id 2" in cp.stdout,
           "key add -> key id 2", cp.stdout + cp.stderr)
    cp = subprocess.run([os.path.join(BUILD, "kairanctl"), "key", "list",
                         k.key_file], capture_output=True, text=True)
    tap.ok(cp.returncode == 0 and "current key id: 2" in cp.stdout,
           "key list shows key id 2 current", cp.stdout + cp.stderr)
    with open(k.key_file) as f:
        tap.ok(re.search(r"^1:", f.read(), re.M) is not None,
               "the old key stays in the file")
    tap.ok(oct(os.stat(k.key_file).st_mode & 0o777) == "0o600",
           "key file still mode 0600")
    cp = subprocess.run([os.path.join(BUILD, "kairanctl"), "key", "add",
                         os.path.join(out, "nosuch")], capture_output=True,
                        text=True)
    tap.ok(cp.returncode != 0 and "nosuch" in cp.stderr,
           "key add to a missing file fails naming it", cp.stderr)
    tap.eq(exported(), export_before, "old k1 values still decrypt (export)")

    csv2 = os.path.join(out, "new.csv")
    write_csv(csv2, [("s-9", "新入 生徒", "2-A", NEW_EMAIL, "")])
    cp = k.ctl("recipients", "import", "--tenant", TENANT, csv2)
    tap.ok(cp.returncode == 0, "import after key add", cp.stderr)
    h = r.call("HGETALL", "kairan:rcpt:%s:s-9" % TENANT)
    h = {h[i]: h[i + 1] for i in range(0, len(h), 2)}
    c = json.loads(h[b"c"])
    tap.ok(c["e"].startswith("k2.") and h[b"name"].startswith(b"k2."),
           "new writes use k2", "%s %s" % (c["e"][:4], h[b"name"][:4]))

    # [4] dry run writes nothing
    before = dump_all()
    cp = k.ctl("rekey", "--dry-run", "--json")
    tap.ok(cp.returncode == 0, "rekey --dry-run exit 0", cp.stderr)
    try:
        dry = json.loads(cp.stdout)
    except ValueError:
        dry = {}
    tap.ok(dry.get("dry_run") is True and dry.get("records_rekeyed") == 4
           and dry.get("audience_entries_rekeyed", 0) >= 1,
           "dry run counts 4 records and the inline entry", cp.stdout)
    tap.ok(dump_all() == before, "dry run changed nothing in Redis")

    # [5] rekey
    t = time.monotonic()
    cp = k.ctl("rekey", "--json")
    tap.ok(cp.returncode == 0, "rekey exit 0", cp.stderr)
    try:
        rep = json.loads(cp.stdout)
    except ValueError:
        rep = {}
    tap.diag("rekey took %.2f s: %s" % (time.monotonic() - t, cp.stdout.strip()))
    tap.ok(rep.get("kid") == 2 and rep.get("records") == 5
           and rep.get("records_rekeyed") == 4
           and rep.get("audience_entries_rekeyed", 0) >= 1
           and rep.get("failed") == 0,
           "report: 5 records read, 4 rekeyed, the inline entry rekeyed",
           cp.stdout)
    n1 = sum(c1.values())
    tap.ok(rep.get("values_rekeyed", 0) >= n1,
           "every k1 value counted (%d)" % n1, cp.stdout)
    c2 = kids()
    tap.ok(set(c2) == {"2"} and sum(c2.values()) > n1,
           "every sealed value now starts with k2.", str(c2))
    exp = exported()
    tap.ok(all(x[3] in exp for x in ROWS) and NEW_EMAIL in exp
           and all(x[1] in exp for x in ROWS),
           "export after rekey gives every address and name back")
    tap.ok(all(ln in exp.splitlines() for ln in export_before.splitlines()),
           "every exported row unchanged by rekey")
    cp = k.ctl("rekey", "--json")
    try:
        again = json.loads(cp.stdout)
    except ValueError:
        again = {}
    tap.ok(cp.returncode == 0 and again.get("values_rekeyed") == 0
           and again.get("records_rekeyed") == 0,
           "a second rekey re-encrypts nothing", cp.stdout)

    # [6] broadcasts deliver with the rekeyed data
    d = k.start()
    try:
        k.wait_done(pre, 60)
        tap.eq(dict(delivered(pre)), {INLINE_EMAIL: 1},
               "pre-rotation broadcast (rekeyed audience) delivered")
        bid = k.submit({"tenant": TENANT, "subject": "鍵更新後のお知らせ",
                        "body": "after the rotation",
                        "channels": ["email", "line"],
                        "audience": {"groups": ["2-A", "soccer"]}})
        k.wait_done(bid, 60)
        counts = k.counts(bid)
        want = {x[3].lower(): 1 for x in ROWS}
        want[NEW_EMAIL] = 1
        tap.eq(dict(delivered(bid)), want,
               "group broadcast after rekey reaches every member once")
        tap.ok(counts.get("line", {}).get("delivered") == 2,
               "2 LINE messages counted delivered", "%s %s"
               % (counts, line_files(bid)))
        tap.ok(counts.get("email", {}).get("delivered") == 5,
               "5 e-mails counted delivered", str(counts))
        log = d.stderr_text()
        tap.ok("ECRYPTO" not in log and "unseal" not in log.lower(),
               "kairand logged no decryption failure")
    finally:
        d.stop()

    # [7] no plaintext anywhere in Redis
    blobs = all_blobs()
    leaks = [p for p in PLAIN
             if any(p.encode() in b or p.lower().encode() in b.lower()
                    for b in blobs)]
    tap.ok(len(blobs) > 20 and not leaks, "no plaintext in Redis (%d values)"
           % len(blobs), str(leaks))

    # [8] the rotation really changed the key
    only_new = os.path.join(out, "key-new")
    only_old = os.path.join(out, "key-old")
    with open(k.key_file) as f:
        lines = f.read().splitlines()
    idx = [ln for ln in lines if ln.startswith("index:")]
    with open(only_new, "w") as f:
        f.write("\n".join([ln for ln in lines if ln.startswith("2:")] + idx)
                + "\n")
    with open(only_old, "w") as f:
        f.write("\n".join([ln for ln in lines if ln.startswith("1:")] + idx)
                + "\n")
    os.chmod(only_new, 0o600)
    os.chmod(only_old, 0o600)
    k.sections["security"]["key_file"] = only_new
    k.write_conf()
    cp = k.ctl("recipients", "export", "--tenant", TENANT)
    tap.ok(cp.returncode == 0 and ROWS[0][3] in cp.stdout,
           "the new key alone opens the rekeyed directory", cp.stderr)
    k.sections["security"]["key_file"] = only_old
    k.write_conf()
    cp = k.ctl("recipients", "export", "--tenant", TENANT)
    tap.ok(cp.returncode != 0 and ROWS[0][3] not in cp.stdout,
           "the old key alone no longer opens it", cp.stderr[:200])
    k.sections["security"]["key_file"] = k.key_file
    k.write_conf()

tap.diag("runtime %.1f s" % (time.monotonic() - T0))
tap.done()
