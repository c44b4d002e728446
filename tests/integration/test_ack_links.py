#!/usr/bin/python3
"""test_ack_links.py - the membership check behind a personal link
/a/<token> is right and costs O(1) in Redis (issue 11, item 5).

  [1] a member's link (from its .eml): GET shows the page and records
      nothing; POST confirms once.
  [2] correctly signed tokens that must still be refused (404, nothing
      recorded, GET or POST): a recipient of the same tenant that is not
      in the broadcast, another broadcast's recipient, a member of this
      broadcast named with another broadcast (swapped), and a token whose
      halves come from two links.
  [3] the check reads the member set bc:<id>:m (written at expansion, one
      member per recipient) and never scans the broadcast: no HVALS,
      HGETALL or HSCAN runs while links are opened (INFO commandstats).
  [4] a broadcast without "ack" gets no member set.
  [5] a broadcast expanded before the set existed (no bc:<id>:m, no
      "ack_m") gets its set built once from bc:<id>:r; then O(1) again.
  [6] kairand runs at log_level = debug (every request's path is logged):
      after links opened as given, with a trailing slash, a query, a
      percent-encoded path and a mistyped prefix, no token (nor either of
      its halves) is in the log or the audit logs; "/a/<redacted>" is
      (issue 11, item 8).
  [7] (before [6]) tenant close: the closed school's links answer 404 to
      GET and POST at once (SECURITY-PROMISES.md row 9), nothing recorded;
      another school's links still work.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_ack_links.py
"""

import email
import email.policy
import glob
import os
import re
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("acklinks")


def http(port, method, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=b"" if method == "POST" else None,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def links_of(outbox, bid):
    """{recipient address: token} from the .eml files of a broadcast."""
    res = {}
    for path in glob.glob(os.path.join(outbox, bid, "*.eml")):
        with open(path, "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        m = re.search(r"/a/([A-Za-z0-9_.-]+)",
                      msg.get_body(("plain",)).get_content())
        res[str(msg["To"])] = m.group(1) if m else None
    return res


def commandstats(redis):
    """{command: calls} from INFO commandstats."""
    text = redis.call("INFO", "commandstats").decode()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"cmdstat_(\w+):calls=(\d+)", text)}


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port},
                     "dispatcher": {"log_level": "debug"}})
    P = k.prefix
    d = k.start()
    d.wait_output('"listening"', 15)

    def bc_of(tenant, ids, ack=True):
        b = {"tenant": tenant, "category": "notice", "subject": "確認 %s" % tenant,
             "body": "本文", "channels": ["email"],
             "recipients": [{"id": i, "email": "%s@example.jp" % i} for i in ids]}
        if ack:
            b["ack"] = True
        return b

    bid_a = k.submit(bc_of("sakura", ["a-1", "a-2", "a-3"]))
    bid_b = k.submit(bc_of("ume", ["b-1", "b-2"]))
    bid_c = k.submit(bc_of("sakura", ["c-1"], ack=False))
    for b in (bid_a, bid_b, bid_c):
        k.wait_done(b, 60)
    la = wait_for(lambda: (lambda L: L if len(L) == 3 else None)(
        links_of(k.outbox, bid_a)), 30, what="3 .eml of broadcast A")
    lb = wait_for(lambda: (lambda L: L if len(L) == 2 else None)(
        links_of(k.outbox, bid_b)), 30, what="2 .eml of broadcast B")
    ta = la["a-1@example.jp"]
    tb = lb["b-1@example.jp"]

    def acked(bid):
        return (redis.call("HLEN", P + "bc:%s:ack" % bid),
                redis.call("HGET", P + "bc:%s" % bid, "acked"))

    with tap.check("[1] a member's link: GET shows it and records nothing; "
                   "POST confirms once"):
        assert ta and tb, (la, lb)
        st, body = http(port, "GET", "/a/" + ta)
        assert st == 200 and "確認 sakura" in body, (st, body[:200])
        assert acked(bid_a) == (0, None), acked(bid_a)
        st, body = http(port, "POST", "/a/" + ta)
        assert st == 200, st
        assert acked(bid_a) == (1, b"1"), acked(bid_a)
        st, _ = http(port, "POST", "/a/" + ta)
        assert st == 200 and acked(bid_a) == (1, b"1"), acked(bid_a)

    kf = k.key_file
    refused = {
        "a signed token for a recipient not in the broadcast":
            ack_token(kf, bid_a, "a-9"),
        "another broadcast's recipient on this broadcast":
            ack_token(kf, bid_a, "b-1"),
        "this broadcast's member on another broadcast (swapped)":
            ack_token(kf, bid_b, "a-2"),
        "a member of a broadcast without ack": ack_token(kf, bid_c, "c-1"),
        "halves of two links": ta.split(".")[0] + "." + tb.split(".")[1],
        "an unknown broadcast": ack_token(kf, "no-such-bc", "a-2"),
    }
    with tap.check("[2] signed but wrong tokens: 404 to GET and POST, "
                   "nothing recorded"):
        before = (acked(bid_a), acked(bid_b), acked(bid_c))
        for what, tok in refused.items():
            for m in ("GET", "POST"):
                st, body = http(port, m, "/a/" + tok)
                assert st == 404, (what, m, st)
                assert "確認" not in body.split("<h1>")[-1][:20], (what, body)
        assert (acked(bid_a), acked(bid_b), acked(bid_c)) == before
        assert redis.call("HEXISTS", P + "bc:%s:ack" % bid_a, "b-1") == 0
        assert redis.call("HEXISTS", P + "bc:%s:ack" % bid_b, "a-2") == 0
        # The member token of B still works: only the wrong pairs fail.
        assert http(port, "GET", "/a/" + tb)[0] == 200

    with tap.check("[3] the check is a set lookup: no scan of the broadcast"):
        assert sorted(redis.call("SMEMBERS", P + "bc:%s:m" % bid_a)) == \
            [b"a-1", b"a-2", b"a-3"]
        assert redis.call("HGET", P + "bc:" + bid_a, "ack_m") == b"1"
        redis.call("CONFIG", "RESETSTAT")
        for _ in range(5):
            for tok in [la["a-2@example.jp"]] + list(refused.values()):
                http(port, "GET", "/a/" + tok)
        http(port, "POST", "/a/" + la["a-3@example.jp"])
        cs = commandstats(redis)
        assert cs.get("sismember", 0) > 0, cs
        scans = {c: cs[c] for c in ("hvals", "hgetall", "hscan", "hkeys",
                                    "smembers", "lrange") if c in cs}
        assert scans == {}, scans

    with tap.check("[4] a broadcast without ack gets no member set"):
        assert redis.call("EXISTS", P + "bc:%s:m" % bid_c) == 0
        assert redis.call("HGET", P + "bc:" + bid_c, "ack_m") is None

    with tap.check("[5] a broadcast without a member set: built once from "
                   "its records, then O(1)"):
        redis.call("DEL", P + "bc:%s:m" % bid_b)
        redis.call("HDEL", P + "bc:" + bid_b, "ack_m")
        assert http(port, "GET", "/a/" + ack_token(kf, bid_b, "a-1"))[0] == 404
        assert sorted(redis.call("SMEMBERS", P + "bc:%s:m" % bid_b)) == \
            [b"b-1", b"b-2"]
        assert redis.call("HGET", P + "bc:" + bid_b, "ack_m") == b"1"
        redis.call("CONFIG", "RESETSTAT")
        assert http(port, "GET", "/a/" + lb["b-2@example.jp"])[0] == 200
        assert http(port, "GET", "/a/" + ack_token(kf, bid_b, "a-1"))[0] == 404
        assert "hvals" not in commandstats(redis)

    with tap.check("[7] a closed school's links stop at once: 404 to GET "
                   "and POST (as an unknown link), nothing recorded; another "
                   "school's still work"):
        tok = lb["b-2@example.jp"]
        assert http(port, "GET", "/a/" + tok)[0] == 200
        before = acked(bid_b)
        cp = k.ctl("tenant", "close", "ume")
        assert cp.returncode == 0, cp.stderr
        for m in ("GET", "POST"):
            st, body = http(port, m, "/a/" + tok)
            assert st == 404, (m, st)
            assert "確認 ume" not in body, (m, body[:300])
        assert acked(bid_b) == before, (acked(bid_b), before)
        assert http(port, "GET", "/a/" + la["a-2@example.jp"])[0] == 200

    with tap.check("[6] at log_level = debug no link token reaches a log"):
        tok = la["a-2@example.jp"]
        for path in ("/a/" + tok, "/a/" + tok + "/", "/a/" + tok + "?x=1",
                     "/%61/" + tok, "/x/a/" + tok, "/a/" + tok[:-1] + "0"):
            http(port, "GET", path)
        http(port, "POST", "/a/" + tok)
        d.stop()
        log = open(d.stderr_path, "rb").read()
        assert b'"/a/<redacted>"' in log, log[-500:]
        audit = b"".join(open(p, "rb").read() for p in glob.glob(
            os.path.join(k.sections["retention"]["audit_dir"], "*")))
        secrets = set()
        for t in list(la.values()) + list(lb.values()) + list(refused.values()):
            secrets |= {t, t.split(".")[0], t.split(".")[1]}
        for s in sorted(secrets):
            assert s.encode() not in log, ("log", s)
            assert s.encode() not in audit, ("audit", s)

    d.stop()
    tap.ok(d.returncode == 0, "kairand stops cleanly", d.stderr_text()[-2000:])

tap.done()
