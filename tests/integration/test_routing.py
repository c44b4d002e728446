#!/usr/bin/python3
"""test_routing.py - the dispatcher's routing across providers:
 1. LINE recipients go out as multicast requests of at most 500 user ids,
    each recipient exactly once, beside e-mail for the same recipients.
 2. LINE's monthly quota used up (429 "You have reached your monthly
    limit."): LINE is paused for every process, recipients with policy
    "preferred" fall back to their next channel, and there is no retry
    storm against LINE.
 3. A dead push token (FCM 404 UNREGISTERED) is marked and the next
    broadcast makes no job for it.
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa

PYTHON = "/usr/bin/python3"
TOKEN = "line-static-token-for-tests"
tap = TAP()
out = tmpdir("routing")


def uid(i):
    return "U%032x" % (0xabc000 + i)


def eml_rcpts(outbox):
    got = []
    for dp, _, fs in os.walk(outbox):
        got += [f for f in fs if f.endswith(".eml")]
    return got


with Redis(out) as r:
    # ------------------------------------------------------------ [1]
    line = FakeLine(out, "line1", ["--token", TOKEN])
    k = Kairan(out, r, name="k1", email="outbox", conf={
        "routes": {"line": "line"},
        "line": {"api_base": line.url, "token": TOKEN},
        "queue": {"retry_base_ms": "100", "retry_cap_ms": "500"}})
    d = k.start()
    N = scale(1200, minimum=600)
    rc = [{"id": "r%04d" % i, "line": uid(i), "email": "g%04d@example.jp" % i}
          for i in range(N)]
    with tap.check("LINE multicast of at most 500, each recipient once"):
        bid = k.submit({"tenant": "t1", "subject": "件名", "body": "本文",
                        "channels": ["line", "email"], "recipients": rc})
        h = k.wait_done(bid, 90)
        reqs = line.requests()
        ids = [u for q in reqs for u in q["to"]]
        tap.eq(sorted(ids), sorted(uid(i) for i in range(N)),
               "every LINE user id exactly once")
        tap.ok(all(len(q["to"]) <= 500 for q in reqs), "no request > 500 ids")
        tap.ok(any(q["endpoint"] == "multicast" for q in reqs),
               "multicast used")
        tap.diag("%d LINE requests for %d recipients" % (len(reqs), N))
        tap.ok(len(reqs) <= (N + 499) // 500 + 2, "few requests (grouped)")
        keys = [q["retry_key"] for q in reqs]
        tap.ok(all(keys) and len(set(keys)) == len(keys),
               "every request has its own retry key")
        tap.eq(len(eml_rcpts(k.outbox)), N, "e-mail to every recipient too")
        tap.eq(k.counts(bid)["line"].get("delivered"), N,
               "counts per recipient, not per request")
    d.stop()
    line.stop()

    # ------------------------------------------------------------ [2]
    line = FakeLine(out, "line2", ["--token", TOKEN, "--quota", "50"])
    k = Kairan(out, r, name="k2", email="outbox", conf={
        "redis": {"prefix": "q2:"},
        "routes": {"line": "line"},
        "line": {"api_base": line.url, "token": TOKEN},
        "http": {"metrics_open": "yes",
                 "public_url": "https://kairan.example.jp"},
        "queue": {"retry_base_ms": "100", "retry_cap_ms": "500",
                  "max_attempts": "10"}})
    k.prefix = "q2:"
    d = k.start()
    M = 200
    rc = [{"id": "p%03d" % i, "line": uid(5000 + i),
           "email": "p%03d@example.jp" % i} for i in range(M)]
    with tap.check("LINE quota used up: paused, fallback to e-mail"):
        bid = k.submit({"tenant": "t1", "subject": "件名", "body": "本文",
                        "channels": ["line", "email"], "policy": "preferred",
                        "recipients": rc})
        h = k.wait_done(bid, 90)
        c = k.counts(bid)
        got_line = set(u for q in line.requests() for u in q["to"])
        got_mail = len(eml_rcpts(k.outbox))
        tap.diag("line delivered %d, email %d, counts %r"
                 % (len(got_line), got_mail, c))
        tap.eq(len(got_line) + got_mail, M,
               "every recipient reached exactly once (LINE or e-mail)")
        tap.ok(len(got_line) <= 50, "LINE stopped at the quota")
        tap.ok(c.get("email", {}).get("fallback", 0) >= M - 50,
               "the rest fell back to e-mail")
        # Inline recipients have no guardian record: their fallback mail
        # carries neither a my-page link nor List-Unsubscribe (the job
        # stays marked inline, "il", on its next channel).
        emls = [open(p, encoding="utf-8", errors="replace").read()
                for p in glob.glob(os.path.join(k.outbox, bid, "*.eml"))]
        tap.ok(emls and not any("List-Unsubscribe" in e or "/m#t=" in e
                                for e in emls),
               "fallback mail of inline recipients: no my page, no "
               "unsubscribe (%d mails)" % len(emls))
        q429 = [e for e in line.events() if e.get("status") == 429]
        tap.ok(len(q429) <= 20, "no retry storm: %d quota answers" % len(q429))
        tap.ok("quota used up" in d.stderr_text(), "the pause is logged")
        tap.eq(r.call("GET", "q2:paused:line"), b"quota",
               "paused for every process (shared flag)")
        import urllib.request
        listen = k.sections["http"]["listen"]
        m = urllib.request.urlopen("http://%s/metrics" % listen,
                                   timeout=10).read().decode()
        tap.ok('kairan_route_paused{channel="line"} 2' in m,
               "the pause is a metric (kairan_route_paused)")
    d.stop()
    line.stop()

    # ------------------------------------------------------------ [3]
    fcm = FakeFCM(out, name="fcm3")
    k = Kairan(out, r, name="k3", conf={
        "redis": {"prefix": "q3:"},
        "routes": {"push": "push"}, "fcm": fcm.conf(connections=1),
        "queue": {"retry_base_ms": "100", "retry_cap_ms": "500"}})
    k.prefix = "q3:"
    d = k.start()
    dead = "dead" + "x" * 140
    good = "good" + "y" * 140
    with tap.check("dead push token marked and skipped next time"):
        fcm.set_control({"rules": [{"match": "dead", "action": "404"}]})
        b = {"tenant": "t1", "subject": "件名", "body": "本文",
             "channels": ["push"], "recipients": [
                 {"id": "a", "push": [{"platform": "fcm", "token": dead}]},
                 {"id": "b", "push": [{"platform": "fcm", "token": good}]}]}
        b1 = k.submit(b)
        k.wait_done(b1, 60)
        c1 = k.counts(b1)["push"]
        tap.eq((c1.get("delivered"), c1.get("failed")), (1, 1),
               "first broadcast: one delivered, one failed (dead)")
        tap.eq(r.call("SCARD", "q3:dead:push"), 1, "the token is marked dead")
        b2 = k.submit(b)
        k.wait_done(b2, 60)
        c2 = k.counts(b2)["push"]
        tap.eq((c2.get("total"), c2.get("dead")), (1, 1),
               "second broadcast: no job for the dead token")
    d.stop()
    fcm.stop()
tap.done()
