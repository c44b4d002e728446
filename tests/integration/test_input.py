#!/usr/bin/python3
"""test_input.py - broken input, expiry, cancel and exit codes (issue 2:
"Dispatcher", "kairanctl", "Interface", "Tests").

  [1] kairanctl submit refuses bad broadcasts (bad JSON, missing subject,
      unknown channel, CRLF in the subject, header injection in an address):
      exit 1, one line naming the field, nothing written to Redis.
  [2] raw `XADD kairan:broadcasts * job <json>` of broken broadcasts with
      kairand running: each kept as bc:<id> status "rejected" with a reason
      naming the field, listed by `kairanctl status --json`, the raw entry
      deleted, addresses masked, no plaintext address anywhere in Redis;
      the daemon goes on (a valid broadcast afterwards is delivered).
      [2b] a raw broadcast that is not even JSON, with an address in it;
      [2c] an address under a misspelt key: both must leave no plaintext.
  [3] a valid raw-XADD broadcast (with "id"): stored sealed, delivered, the
      raw entry gone, no plaintext address anywhere in Redis.
  [4] an unknown group -> rejected with a reason naming the group's place
      (audience.groups[0]), not its name.
  [5] expiry: relay down, expires_at ~3 s ahead -> every job ends expired,
      nothing is sent when the relay is back; watch exits 1.
  [6] cancel: 3,000 recipients to a slow relay, cancelled mid-way -> the
      broadcast stops (cancelled > 0, the counts add up, nothing sent after
      it ended); watch exits 1; cancel again -> 1; unknown id -> 3.
  [7] exit codes: watch unknown id -> 3, unreachable Redis -> 3, no command
      -> 2, unknown command -> 2, delivered broadcast -> 0, missing files
      -> 2.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_input.py
"""

import datetime
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
out = tmpdir("input")
JST = datetime.timezone(datetime.timedelta(hours=9))
STREAM = "kairan:broadcasts"


def bcast(recipients, subject="お知らせ", body="本文です。", **kw):
    b = {"tenant": "sakura-hs", "category": "notice", "subject": subject,
         "body": body, "channels": ["email"], "recipients": recipients}
    b.update(kw)
    return b


def rcpts(addrs, prefix):
    return [{"id": "%s-%d" % (prefix, i), "email": a} for i, a in enumerate(addrs)]


def jst_in(seconds):
    t = datetime.datetime.now(JST) + datetime.timedelta(seconds=seconds)
    return t.isoformat(timespec="seconds")


def redis_dump(r):
    """Every key and every value (all types) as a list of bytes blobs."""
    blobs = []
    cursor = b"0"
    while True:
        cursor, keys = r.call("SCAN", cursor, "COUNT", 1000)
        for k in keys:
            blobs.append(k)
            t = r.call("TYPE", k)
            if t == "string":
                blobs.append(r.call("GET", k) or b"")
            elif t == "hash":
                blobs.extend(r.call("HGETALL", k))
            elif t == "list":
                blobs.extend(r.call("LRANGE", k, 0, -1))
            elif t == "set":
                blobs.extend(r.call("SMEMBERS", k))
            elif t == "zset":
                blobs.extend(r.call("ZRANGE", k, 0, -1))
            elif t == "stream":
                for _eid, kv in r.call("XRANGE", k, "-", "+"):
                    blobs.extend(kv)
        if cursor in (b"0", "0", 0):
            break
    return blobs


def leaks(blobs, needles):
    """The needles (str) found in any blob, with a bit of context."""
    found = []
    for b in blobs:
        for n in needles:
            i = b.find(n.encode())
            if i >= 0:
                found.append("%s in %r" % (n, b[max(0, i - 60):i + 60]))
    return found


def prefix_keys(r, pattern="kairan:*"):
    keys, cursor = [], b"0"
    while True:
        cursor, ks = r.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        keys.extend(ks)
        if cursor in (b"0", "0", 0):
            return keys


def status_json(k):
    cp = k.ctl("status", "--json")
    assert cp.returncode == 0, "status --json exit %d: %s" % (cp.returncode, cp.stderr)
    return json.loads(cp.stdout)


def msgs_to(smtp, domain):
    return [m for m in smtp.messages() if any(a.endswith("@" + domain) for a in m["rcpt"])]


class NoRedis:
    """Stands in for a Redis that is not there (a free port)."""

    def __init__(self):
        self.url = "redis://127.0.0.1:%d" % free_port()


# ======================================================================
# Scenario A: one Redis, one fake relay, one kairand: [1]-[4], [7]
# ======================================================================

with Redis(out) as r, FakeSMTP(out, tls="none", name="smtp-a") as smtp:
    k = Kairan(out, r, smtp=smtp, name="kairan-a")

    # ------------------------------------------------------------ [1]
    REFUSE_ADDR = "refused.hanako@docomo.ne.jp"
    good = bcast(rcpts([REFUSE_ADDR], "r1"))
    refusals = [
        ("bad JSON", '{"tenant": "sakura-hs", "subject": }', "json"),
        ("missing subject",
         json.dumps({x: v for x, v in good.items() if x != "subject"}), "subject"),
        ("unknown channel",
         json.dumps(dict(good, channels=["email", "fax"])), "channels[1]"),
        ("CRLF in the subject",
         json.dumps(dict(good, subject="休校\r\nBcc: x@evil.example")), "subject"),
        ("header injection in an address",
         json.dumps(bcast([{"id": "r1-0",
                            "email": REFUSE_ADDR + "\r\nBcc: spy@evil.example"}])),
         "recipients[0].email"),
    ]
    for name, text, field in refusals:
        with tap.check("[1] kairanctl submit refuses %s: exit 1, one line naming %s"
                       % (name, field)):
            cp = k.ctl("submit", "-", input=text)
            tap.diag("%s -> %d %s" % (name, cp.returncode, cp.stderr.strip()))
            assert cp.returncode == 1, "exit %d, stderr %r" % (cp.returncode, cp.stderr)
            assert cp.stdout == "", "stdout %r" % cp.stdout
            err = cp.stderr.rstrip("\n")
            assert err and "\n" not in err and "\r" not in err, "not one line: %r" % cp.stderr
            assert field in err, "%r does not name %s" % (err, field)
            assert REFUSE_ADDR not in err and "spy@evil" not in err, "address shown: %r" % err
    with tap.check("[1] refused broadcasts wrote nothing to Redis"):
        keys = prefix_keys(r)
        assert keys == [], "keys written: %r" % keys[:10]
        assert r.call("DBSIZE") == 0, "DBSIZE %d" % r.call("DBSIZE")

    d = k.start()
    d.wait_output('"ready"', 15)

    # ------------------------------------------------------------ [2]
    RAW_ADDRS = ["rawtest.taro@docomo.ne.jp", "rawtest.hanako@ezweb.ne.jp",
                 "rawtest.jiro@softbank.ne.jp", "rawtest.inject@docomo.ne.jp",
                 "spy.bcc@evil.example"]
    RAW_NEEDLES = RAW_ADDRS + ["rawtest.taro", "rawtest.hanako", "rawtest.jiro",
                               "rawtest.inject", "spy.bcc"]

    def raw(b, with_id):
        if with_id:
            b = dict(b, id=with_id)
        text = b if isinstance(b, str) else json.dumps(b, ensure_ascii=False)
        eid = r.call("XADD", STREAM, "*", "job", text).decode()
        # A rejected entry is kept under a name of kairan's made from its
        # entry id (the producer's id is only a key within its tenant).
        return "rejected-" + eid

    broken = []   # (name, id, field fragment in the reason)
    with tap.check("[2] broken raw XADD broadcasts are added"):
        b0 = bcast(rcpts([RAW_ADDRS[0]], "x0"))
        del b0["subject"]
        broken.append(("missing subject", raw(b0, "raw-nosubject"), "subject"))
        broken.append(("CRLF in the subject",
                       raw(bcast(rcpts([RAW_ADDRS[1]], "x1"),
                                 subject="休校\r\nX-Injected: yes"), None),
                       "subject"))
        broken.append(("unknown channel",
                       raw(bcast(rcpts([RAW_ADDRS[2]], "x2"), channels=["email", "fax"]),
                           "raw-fax"), "channels[1]"))
        broken.append(("address with CRLF Bcc",
                       raw(bcast([{"id": "x3-0", "email": RAW_ADDRS[3] + "\r\nBcc: "
                                   + RAW_ADDRS[4]}]), None),
                       "recipients[0].email"))
        tap.diag("raw ids: %s" % ", ".join(b[1] for b in broken))

    for name, bid, field in broken:
        with tap.check("[2] raw %s -> bc:%s rejected, reason names %s"
                       % (name, bid, field)):
            h = k.wait_done(bid, 20)
            tap.diag("%s: %s" % (bid, h.get("reason")))
            assert h.get("status") == "rejected", h
            assert field in h.get("reason", ""), "reason %r" % h.get("reason")
            assert len(h["reason"]) > len(field) + 10, "reason too short: %r" % h["reason"]
            cp = k.ctl("watch", bid, timeout=20)
            assert cp.returncode == 1, "watch exit %d: %s" % (cp.returncode, cp.stdout)

    with tap.check("[2] kairanctl status --json lists every rejected broadcast with its reason"):
        st = status_json(k)
        rej = {x["id"]: x for x in st["rejected"]}
        for name, bid, field in broken:
            assert bid in rej, "%s (%s) not in rejected: %r" % (bid, name, list(rej))
            assert field in rej[bid]["reason"], rej[bid]
            assert rej[bid]["rejected_ms"] > 0, rej[bid]
        cp = k.ctl("status")
        assert cp.returncode == 0, cp.stderr
        for name, bid, field in broken:
            assert "rejected: %s: " % bid in cp.stdout, cp.stdout

    with tap.check("[2] raw entries are deleted (XLEN %s reaches 0)" % STREAM):
        wait_for(lambda: r.call("XLEN", STREAM) == 0, 10, what="empty broadcasts stream")

    with tap.check("[2] rejected broadcasts keep masked addresses only"):
        h = k.bc(broken[3][1])
        masked = json.loads(h["masked"])
        em = masked["recipients"][0]["email"]
        tap.diag("masked email: %r" % em)
        assert "***" in em and RAW_ADDRS[3] not in em and RAW_ADDRS[4] not in em, em
        h = k.bc(broken[0][1])
        em = json.loads(h["masked"])["recipients"][0]["email"]
        assert em == "r***@docomo.ne.jp", em

    with tap.check("[2] no plaintext address of the raw JSON anywhere in Redis"):
        found = leaks(redis_dump(r), RAW_NEEDLES)
        assert not found, "\n".join(found[:10])

    with tap.check("[2] the daemon goes on: a valid broadcast afterwards is delivered"):
        addrs = ["after.%d@afterwards.example.jp" % i for i in range(5)]
        bid = k.submit(bcast(rcpts(addrs, "af")))
        h = k.wait_done(bid, 30)
        assert h.get("status") == "done", h
        assert k.counts(bid).get("email", {}).get("delivered") == 5, k.counts(bid)
        got = sorted(a for m in msgs_to(smtp, "afterwards.example.jp") for a in m["rcpt"])
        assert got == sorted(addrs), got
        assert d.alive(), "kairand exited"
        DELIVERED_ID = bid

    # [2b] not JSON at all, an address inside: the reason (jansson's "near
    # '...'" text, which it adds for tokens up to 20 characters) and the log
    # must not carry it.
    BADJSON_ADDR = "bjx1@docomo.ne.jp"
    with tap.check("[2b] raw XADD of invalid JSON (raw CR LF inside an address) "
                   "-> rejected, no plaintext address in Redis or the log"):
        text = ('{"id":"raw-badjson","tenant":"sakura-hs","subject":"s","body":"b",'
                '"channels":["email"],"recipients":[{"id":"r-1","email":"'
                + BADJSON_ADDR + '\r\nBcc: spy.bcc@evil.example"}]}')
        eid = r.call("XADD", STREAM, "*", "job", text).decode()
        # Kept under a name made from the entry id.
        h = wait_for(lambda: k.bc("rejected-" + eid) or None, 20,
                     what="rejection of the invalid JSON")
        h = k.wait_done(h["id"], 10)
        tap.diag("%s: %s" % (h["id"], h.get("reason")))
        assert h.get("status") == "rejected", h
        assert "json" in h.get("reason", ""), h
        wait_for(lambda: r.call("XLEN", STREAM) == 0, 10, what="empty broadcasts stream")
        found = leaks(redis_dump(r), [BADJSON_ADDR])
        found += ["log: " + x for x in leaks([d.stderr_text().encode()], [BADJSON_ADDR])]
        assert not found, "\n".join(found[:10])

    # [2c] an address under a misspelt key ("emial") is still an address.
    TYPO_ADDR = "typo.hanako@docomo.ne.jp"
    with tap.check("[2c] raw XADD with an address under a misspelt key -> rejected, "
                   "no plaintext address in Redis"):
        bid = raw(bcast([{"id": "r-1", "emial": TYPO_ADDR}]), "raw-typo")
        h = k.wait_done(bid, 20)
        tap.diag("%s: %s" % (bid, h.get("reason")))
        assert h.get("status") == "rejected", h
        assert "recipients[0].emial" in h.get("reason", ""), h
        wait_for(lambda: r.call("XLEN", STREAM) == 0, 10, what="empty broadcasts stream")
        found = leaks(redis_dump(r), [TYPO_ADDR, "typo.hanako"])
        assert not found, "\n".join(found[:10])

    # ------------------------------------------------------------ [3]
    OK_ADDRS = ["rawok.%d@rawok.example.jp" % i for i in range(3)] + \
               ["rawok..carrier.@docomo.ne.jp"]
    with tap.check("[3] valid raw XADD broadcast with an id: delivered, raw entry gone"):
        b = bcast(rcpts(OK_ADDRS, "ok"), subject="【連絡】XADD 経由", id="raw-ok-1")
        eid = r.call("XADD", STREAM, "*", "job", json.dumps(b, ensure_ascii=False)).decode()
        name = k.name_of("sakura-hs", "raw-ok-1")
        h = k.wait_done(name, 30)
        assert h.get("status") == "done", h
        assert h.get("sender") == "xadd", h.get("sender")
        c = k.counts(name).get("email", {})
        assert c.get("delivered") == len(OK_ADDRS), c
        got = sorted(a for m in smtp.messages() for a in m["rcpt"] if a in OK_ADDRS)
        assert got == sorted(OK_ADDRS), got
        wait_for(lambda: r.call("XLEN", STREAM) == 0, 10, what="empty broadcasts stream")
        assert r.call("XRANGE", STREAM, eid, eid) == [], "raw entry still there"

    with tap.check("[3] the raw broadcast is stored sealed (audience entries)"):
        aud = r.call("LRANGE", "kairan:bc:raw-ok-1:aud", 0, -1) or []
        tap.diag("bc:raw-ok-1:aud has %d entries" % len(aud))
        for e in aud:
            assert e.startswith(b"i:"), e[:40]
            j = json.loads(e[2:])
            assert re.fullmatch(r"k[0-9]+\.[A-Za-z0-9_-]{20,}", j["e"]), j["e"]
            assert re.fullmatch(r"[0-9a-f]{32}", j["ei"]), j["ei"]
            assert "email" not in j, j

    with tap.check("[3] no plaintext address in any Redis key or value afterwards"):
        needles = OK_ADDRS + [a.split("@")[0] for a in OK_ADDRS]
        found = leaks(redis_dump(r), needles)
        assert not found, "\n".join(found[:10])

    # ------------------------------------------------------------ [4]
    with tap.check("[4] unknown group -> rejected with a reason naming its place"):
        bid = k.submit({"tenant": "sakura-hs", "subject": "s", "body": "b",
                        "channels": ["email"], "audience": {"groups": ["nope"]}})
        h = k.wait_done(bid, 20)
        tap.diag("%s: %s" % (bid, h.get("reason")))
        assert h.get("status") == "rejected", h
        assert "audience.groups[0]" in h.get("reason", "") and \
            "group" in h["reason"] and "nope" not in h["reason"], h
        rej = {x["id"]: x for x in status_json(k)["rejected"]}
        assert bid in rej and "audience.groups[0]" in rej[bid]["reason"], \
            rej.get(bid)
        cp = k.ctl("watch", bid, timeout=20)
        assert cp.returncode == 1, "watch exit %d" % cp.returncode

    # ------------------------------------------------------------ [7]
    with tap.check("[7] watch of a fully delivered broadcast exits 0"):
        cp = k.ctl("watch", DELIVERED_ID, timeout=20)
        assert cp.returncode == 0, "exit %d: %s %s" % (cp.returncode, cp.stdout, cp.stderr)
        assert DELIVERED_ID in cp.stdout, cp.stdout
    with tap.check("[7] watch of an unknown id exits 3"):
        cp = k.ctl("watch", "b-nosuch-broadcast", timeout=20)
        assert cp.returncode == 3, "exit %d: %s" % (cp.returncode, cp.stderr)
    with tap.check("[7] watch with Redis unreachable exits 3"):
        k2 = Kairan(out, NoRedis(), smtp=smtp, name="kairan-noredis")
        cp = k2.ctl("watch", DELIVERED_ID, timeout=30)
        assert cp.returncode == 3, "exit %d: %s" % (cp.returncode, cp.stderr)
        assert cp.stderr.strip(), "no message"
    with tap.check("[7] kairanctl without a command exits 2"):
        cp = k.ctl()
        assert cp.returncode == 2, "exit %d" % cp.returncode
        assert "usage" in cp.stderr, cp.stderr
    with tap.check("[7] unknown command exits 2"):
        cp = k.ctl("frobnicate")
        assert cp.returncode == 2, "exit %d" % cp.returncode
        assert "frobnicate" in cp.stderr, cp.stderr
    with tap.check("[7] watch without an id exits 2"):
        cp = k.ctl("watch")
        assert cp.returncode == 2, "exit %d" % cp.returncode
    with tap.check("[7] -c with a config file that does not exist exits 2"):
        cp = subprocess.run([os.path.join(BUILD, "kairanctl"), "-c",
                             os.path.join(out, "no-such.conf"), "submit", "-"],
                            input="{}", capture_output=True, text=True, timeout=30)
        assert cp.returncode == 2, "exit %d: %s" % (cp.returncode, cp.stderr)
    with tap.check("[7] submit of a file that does not exist exits 2"):
        cp = k.ctl("submit", os.path.join(out, "no-such.json"))
        assert cp.returncode == 2, "exit %d: %s" % (cp.returncode, cp.stderr)
        assert "no-such.json" in cp.stderr, cp.stderr

    with tap.check("[A] kairand still running, stops cleanly (exit 0)"):
        assert d.alive(), "kairand exited (%s)" % d.returncode
        rc = d.stop(20)
        assert rc == 0, "exit %s" % rc

# ======================================================================
# [5] expiry: relay down until after expires_at
# ======================================================================

N_EXP = 5
with Redis(out) as r, FakeSMTP(out, tls="none", name="smtp-exp",
                               control={"down": True}) as smtp:
    k = Kairan(out, r, smtp=smtp, name="kairan-exp",
               conf={"queue": {"max_attempts": "100", "retry_base_ms": "50",
                               "retry_cap_ms": "300"}})
    d = k.start()
    d.wait_output('"ready"', 15)
    addrs = ["exp.%d@expired.example.jp" % i for i in range(N_EXP)]
    bid = None
    with tap.check("[5] broadcast with the relay down ends with n:email:expired == %d" % N_EXP):
        bid = k.submit(bcast(rcpts(addrs, "ex"), expires_at=jst_in(3)))
        h = k.wait_done(bid, 30)
        c = k.counts(bid).get("email", {})
        tap.diag("%s: status %s counts %r" % (bid, h.get("status"), c))
        assert c.get("expired") == N_EXP, c
        assert not c.get("delivered"), c
        assert int(h.get("jobs", 0)) == N_EXP, h
        assert len(smtp.messages()) == 0, "messages while down"
    with tap.check("[5] nothing is delivered when the relay comes back"):
        smtp.set_control({"down": False})
        # A second broadcast through the same relay and daemon is the
        # barrier: once it is delivered, anything left of the first would
        # have been sent too.
        later = ["later.%d@later.example.jp" % i for i in range(2)]
        b2 = k.submit(bcast(rcpts(later, "lt")))
        h2 = k.wait_done(b2, 30)
        assert h2.get("status") == "done", h2
        assert len(msgs_to(smtp, "later.example.jp")) == 2
        assert msgs_to(smtp, "expired.example.jp") == [], "expired broadcast was sent"
        assert r.call("ZCARD", "kairan:retry") == 0, "retries left"
    with tap.check("[5] kairanctl watch of the expired broadcast exits 1"):
        cp = k.ctl("watch", bid, timeout=20)
        assert cp.returncode == 1, "exit %d: %s" % (cp.returncode, cp.stdout)
        assert "expired %d" % N_EXP in cp.stdout, cp.stdout
    d.stop(20)

# ======================================================================
# [6] cancel a large broadcast to a slow relay
# ======================================================================

N_CAN = scale(3000, 300)
with Redis(out) as r, FakeSMTP(out, tls="none", name="smtp-can",
                               control={"rules": [{"match": "@", "action": "delay",
                                                   "seconds": 0.05}]}) as smtp:
    k = Kairan(out, r, smtp=smtp, name="kairan-can")
    d = k.start()
    d.wait_output('"ready"', 15)
    addrs = ["c%05d@cancel.example.jp" % i for i in range(N_CAN)]
    bid = None
    with tap.check("[6] kairanctl cancel mid-way exits 0"):
        bid = k.submit(bcast(rcpts(addrs, "cn"), subject="大量配信（中止予定）"))
        wait_for(lambda: len(msgs_to(smtp, "cancel.example.jp")) >= 50, 60,
                 what="50 messages before cancelling")
        cp = k.ctl("cancel", bid)
        tap.diag("cancel after %d messages: %s" % (len(msgs_to(smtp, "cancel.example.jp")),
                                                  cp.stdout.strip()))
        assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr)
    with tap.check("[6] the broadcast ends with cancelled > 0 and the counts add up"):
        h = k.wait_done(bid, 60)
        c = k.counts(bid).get("email", {})
        jobs = int(h.get("jobs", 0))
        tap.diag("%s: status %s jobs %d counts %r" % (bid, h.get("status"), jobs, c))
        assert h.get("status") == "cancelled", h.get("status")
        assert c.get("cancelled", 0) > 0, c
        assert c.get("delivered", 0) > 0, c
        total = sum(c.get(s, 0) for s in ("delivered", "cancelled", "failed", "expired"))
        assert total == jobs, "%d final of %d jobs: %r" % (total, jobs, c)
        assert c.get("delivered", 0) < N_CAN, c
        at_end = len(msgs_to(smtp, "cancel.example.jp"))
        assert at_end == c.get("delivered", 0), \
            "%d messages at the relay, %d counted delivered" % (at_end, c.get("delivered", 0))
    with tap.check("[6] no message of the cancelled broadcast arrives after it ended"):
        later = ["after.%d@aftercancel.example.jp" % i for i in range(3)]
        b2 = k.submit(bcast(rcpts(later, "ac")))
        k.wait_done(b2, 60)
        assert len(msgs_to(smtp, "aftercancel.example.jp")) == 3
        now = len(msgs_to(smtp, "cancel.example.jp"))
        assert now == at_end, "%d messages after the end, %d at the end" % (now, at_end)
        got = [a for m in msgs_to(smtp, "cancel.example.jp") for a in m["rcpt"]]
        assert len(got) == len(set(got)), "duplicates"
    with tap.check("[6] watch of the cancelled broadcast exits 1"):
        cp = k.ctl("watch", bid, timeout=20)
        assert cp.returncode == 1, "exit %d: %s" % (cp.returncode, cp.stdout)
    with tap.check("[6] cancelling again exits 1"):
        cp = k.ctl("cancel", bid)
        assert cp.returncode == 1, "exit %d: %s" % (cp.returncode, cp.stderr)
        assert "cancelled" in cp.stderr, cp.stderr
    with tap.check("[6] cancel of an unknown id exits 3"):
        cp = k.ctl("cancel", "b-nosuch-broadcast")
        assert cp.returncode == 3, "exit %d: %s" % (cp.returncode, cp.stderr)
    with tap.check("[6] kairand stops cleanly"):
        assert d.alive(), "kairand exited (%s)" % d.returncode
        assert d.stop(20) == 0

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
