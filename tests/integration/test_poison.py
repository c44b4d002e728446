#!/usr/bin/python3
"""test_poison.py - no entry holds a stream (issue 11, item 1).

Every key a broadcast touches is made the wrong type in turn (a hostile
tenant's colliding id did that to bc:X:aud; an operator's slip can do it
to any key).  For each one a broadcast of tenant "evil" that touches the
key is submitted, and right behind it an urgent broadcast of another
tenant.  Asserted:
  - the bad broadcast ends parked within bounded time: `rejected` with a
    reason naming the key, or a DLQ entry naming it (with the tenant), or,
    for the keys the submit itself writes, the submit is refused naming the
    key, before anything is stored;
  - the other tenant's broadcast is delivered meanwhile (outbox adapter):
    nothing holds the broadcasts stream or the queue streams;
  - the failures were counted (5) and the count is dropped once parked;
  - kairand kept running, and delivers again once the stray key is gone.

Broadcast names come from what kairanctl submit prints, and every key
name is built by key() / rcpt_key() / grp_key() below (the key scheme is
changing: ids become kairan's own, outside parts get encoded).
"""
import contextlib
import datetime
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa

tap = TAP()
out = tmpdir("poison")
JST = datetime.timezone(datetime.timedelta(hours=9))
PREFIX = "kairan:"
# Parking takes 5 attempts with 0.25+0.5+1+2 s between them; the rest is
# headroom for a busy 2-core machine and the sanitizer build.
PARK_S = 60
DELIVER_S = 60


def key(*parts):
    """A kairan key from its parts (the prefix added)."""
    return PREFIX + ":".join(parts)


def enc(part):
    """A recipient id, group or broadcast name as it appears in key names
    (queue/keys.c: every byte but letters, digits, '.', '_', '-' as %XX)."""
    return urllib.parse.quote(part, safe="._-")


def rcpt_key(tenant, rid):
    # (A tenant is checked, not encoded.)
    return key("rcpt", tenant, enc(rid))


def grp_key(tenant, group):
    return key("grp", tenant, enc(group))


def bc_key(name, suffix=""):
    return key("bc", enc(name)) + (":" + suffix if suffix else "")


def at(seconds):
    t = datetime.datetime.now(JST) + datetime.timedelta(seconds=seconds)
    return t.isoformat(timespec="seconds")


spoiled = []


def cleanup(r):
    """Delete every key spoiled so far (also after a failed check: one
    failure must not spill into the next cases)."""
    while spoiled:
        r.call("DEL", spoiled.pop())


_redis = []


@contextlib.contextmanager
def case(name):
    """tap.check(name), and the keys it spoiled deleted whatever happens."""
    try:
        with tap.check(name):
            yield
    finally:
        cleanup(_redis[0])


def corrupt(r, k, kind):
    """Make key k hold a value of Redis type `kind` (whatever was there)."""
    spoiled.append(k)
    r.call("DEL", k)
    if kind == "string":
        r.call("SET", k, "stray")
    elif kind == "hash":
        r.call("HSET", k, "stray", "1")
    elif kind == "list":
        r.call("RPUSH", k, "stray")
    elif kind == "set":
        r.call("SADD", k, "stray")
    elif kind == "zset":
        r.call("ZADD", k, "1", "stray")
    else:
        raise ValueError(kind)


def dlq_entries(r):
    out_ = []
    for e in r.call("XRANGE", PREFIX + "dlq", "-", "+") or []:
        kv = e[1]
        out_.append({kv[i].decode(): kv[i + 1].decode("utf-8", "replace")
                     for i in range(0, len(kv), 2)})
    return out_


n_good = [0]


def good(k, channel="email", urgent=True):
    """Another tenant's broadcast: 3 recipients, urgent by default."""
    n_good[0] += 1
    t = "good%d" % n_good[0]
    rc = [{"id": "%s-%d" % (t, i)} for i in range(3)]
    for i, x in enumerate(rc):
        x[channel] = ("%s-%d@example.jp" % (t, i) if channel == "email"
                      else "U%032x" % (n_good[0] * 10 + i))
    return k.submit({"tenant": t, "subject": "他校 " + t, "body": "本文",
                     "priority": "urgent" if urgent else "normal",
                     "channels": [channel], "recipients": rc})


def bad(extra=None, channel="email", urgent=False):
    b = {"tenant": "evil", "subject": "件名", "body": "本文",
         "priority": "urgent" if urgent else "normal",
         "channels": [channel],
         "recipients": [{"id": "e1", channel: ("e1@example.jp"
                                              if channel == "email"
                                              else "Ueeeeeeeeeeeeeeee")}]}
    b.update(extra or {})
    return b


def delivered(k, bid, channel="email", n=3):
    return (k.counts(bid).get(channel, {}).get("delivered", 0) >= n
            and k.bc(bid).get("status") == "done")


def parked(k, r, bid, name):
    """The broadcast's parking record naming key `name`, or None."""
    try:
        h = k.bc(bid)
    except RedisError:
        h = {}  # its own hash is the key of the wrong type
    if h.get("status") == "rejected" and name in h.get("reason", ""):
        return ("rejected", h["reason"])
    for e in dlq_entries(r):
        if e.get("bc") == bid and name in e.get("reason", ""):
            return ("dlq", e["reason"])
    return None


def check_reason(reason, what):
    tap.ok("@" not in reason, "%s: the reason echoes no address" % what,
           reason)
    tap.ok("delete the stray key" in reason or "cancel" in reason,
           "%s: the reason says what to do" % what, reason)


with Redis(out) as r:
    _redis.append(r)
    k = Kairan(out, r, email="outbox")
    d = k.start()
    wait_for(lambda: "ready" in d.stderr_text(), 30, what="kairand ready")

    # ---- keys of one broadcast, made wrong after it was accepted ----
    # A scheduled broadcast is stored and announced, then waits in sched:
    # its key is spoiled meanwhile; when due, the expander meets it.
    per_bc = [
        # (suffix, kind, the key's name in the reason, how it ends)
        ("", "string", None, "dlq"),       # bc:X itself
        ("aud", "hash", None, "rejected"),  # the attack of issue 11
        ("r", "string", None, "rejected"),
    ]
    for suffix, kind, _, how in per_bc:
        name = "bc:<id>" + (":" + suffix if suffix else "")
        with case("%s of the wrong type (%s): parked, others go on"
                       % (name, kind)):
            bid = k.submit(bad({"send_at": at(3)}))
            wait_for(lambda: k.bc(bid).get("status") == "scheduled", 30,
                     what="scheduled")
            kname = bc_key(bid, suffix)
            corrupt(r, kname, kind)
            g = good(k)
            wait_for(lambda: delivered(k, g), DELIVER_S,
                     what="the other tenant's broadcast delivered")
            p = wait_for(lambda: parked(k, r, bid, kname), PARK_S,
                         what="%s parked naming %s" % (bid, kname))
            tap.eq(p[0], how, "%s: ends %s" % (name, how))
            check_reason(p[1], name)
            if how == "dlq":
                e = [x for x in dlq_entries(r) if x.get("bc") == bid][0]
                tap.ok("tenant" in e, "the DLQ entry has a tenant field")
            tap.ok("5 times" in p[1], "%s: after 5 attempts" % name, p[1])
            tap.eq(r.call("KEYS", key("fail", "*")), [],
                   "no failure counter left behind")
            cleanup(r)

    # ---- directory keys ----
    with case("grp:<tenant>:<group> of the wrong type: rejected"):
        gk = grp_key("evil", "2-A")
        corrupt(r, gk, "string")
        bid = k.submit(bad({"audience": {"groups": ["2-A"]}}))
        g = good(k)
        wait_for(lambda: delivered(k, g), DELIVER_S, what="other delivered")
        p = wait_for(lambda: parked(k, r, bid, gk), PARK_S,
                     what="parked naming %s" % gk)
        tap.eq(p[0], "rejected", "rejected")
        check_reason(p[1], "grp")
        cleanup(r)

    with case("rcpt:<tenant>:<id> of the wrong type: that recipient "
                   "in the DLQ, the rest delivered"):
        rk = rcpt_key("evil", "r-bad")
        corrupt(r, rk, "list")
        bid = k.submit(bad({"audience": {"recipients": ["r-bad"]}}))
        g = good(k)
        wait_for(lambda: delivered(k, g), DELIVER_S, what="other delivered")
        p = wait_for(lambda: parked(k, r, bid, rk), PARK_S,
                     what="DLQ entry naming %s" % rk)
        tap.eq(p[0], "dlq", "in the DLQ")
        e = [x for x in dlq_entries(r) if x.get("bc") == bid][0]
        tap.eq(e.get("tenant"), "evil", "with its tenant")
        h = k.wait_done(bid, PARK_S)
        tap.eq(k.counts(bid)["email"].get("delivered"), 1,
               "the inline recipient still got it")
        tap.eq(h.get("unreachable"), "1", "the unreadable one counted")
        cleanup(r)

    # ---- shared keys: the broadcast that needs it is parked; the
    # others (another channel or priority) go on ----
    shared = [
        # (key, kind, bad broadcast, good broadcast's channel, urgent)
        (key("q", "email", "normal"), "string", bad(), "email", True),
        (key("q", "email", "urgent"), "string", bad(urgent=True), "email",
         False),
        (key("dead", "email"), "hash", bad(), "line", True),
        (key("sched"), "string", bad({"send_at": at(30)}), "email", True),
    ]
    for kname, kind, b, gch, gurg in shared:
        with case("%s of the wrong type: parked, others go on" % kname):
            corrupt(r, kname, kind)
            bid = k.submit(b)
            g = good(k, gch, gurg)
            wait_for(lambda: delivered(k, g, gch), DELIVER_S,
                     what="other delivered")
            p = wait_for(lambda: parked(k, r, bid, kname), PARK_S,
                         what="parked naming %s" % kname)
            tap.eq(p[0], "rejected", "rejected")
            check_reason(p[1], kname)
            cleanup(r)
            g2 = good(k, "email", False)
            wait_for(lambda: delivered(k, g2), DELIVER_S,
                     what="delivered again once the key is gone")

    with case("rejected zset of the wrong type: still rejected"):
        kname = key("rejected")
        corrupt(r, kname, "string")
        bid = k.submit(bad({"audience": {"groups": ["nope"]}}))
        g = good(k)
        wait_for(lambda: delivered(k, g), DELIVER_S, what="other delivered")
        wait_for(lambda: k.bc(bid).get("status") == "rejected", PARK_S,
                 what="rejected")
        tap.ok("unknown group" in k.bc(bid).get("reason", ""), "its reason")
        cleanup(r)

    # ---- keys the submit writes: refused before anything is stored ----
    for kname, kind in ((key("bcs"), "string"), (key("active"), "hash"),
                        (key("categories"), "string"),
                        (key("broadcasts"), "hash")):
        with case("%s of the wrong type: submit refused naming it"
                       % kname):
            corrupt(r, kname, kind)
            cp = k.ctl("submit", "-", input=json.dumps(bad()))
            tap.ok(cp.returncode != 0, "submit refused")
            tap.ok(kname in cp.stderr, "the error names the key", cp.stderr)
            cleanup(r)
            g = good(k)
            wait_for(lambda: delivered(k, g), DELIVER_S,
                     what="delivered once the key is gone")

    # ---- a producer's raw entry that cannot be stored ----
    with case("raw XADD whose keys are of the wrong type: DLQ, masked"):
        # The name is kairan's own; the tenant's idempotency hash is the
        # key of this entry that a producer's data decides.
        kname = key("idem", "evil")
        corrupt(r, kname, "string")
        raw = bad({"id": "raw-poison"})
        r.call("XADD", PREFIX + "broadcasts", "*", "job",
               json.dumps(raw, ensure_ascii=False))
        g = good(k)
        wait_for(lambda: delivered(k, g), DELIVER_S, what="other delivered")
        e = wait_for(lambda: [x for x in dlq_entries(r)
                              if x.get("tenant") == "evil"
                              and kname in x.get("reason", "")],
                     PARK_S, what="raw entry in the DLQ naming %s" % kname)[0]
        tap.ok("e1@example.jp" not in json.dumps(e), "address masked",
               json.dumps(e, ensure_ascii=False))
        cleanup(r)

    tap.ok(d.alive(), "kairand kept running")
    d.stop()
    tap.eq(d.returncode, 0, "clean stop")
tap.done()
