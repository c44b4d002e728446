#!/usr/bin/python3
"""test_provider_matrix.py - every provider under every kind of fault
(issue 4, "Faults", third item).

One kairand, three fakes (fake_smtp.py, fake_line.py, fake_fcm.js); one
broadcast per (provider, fault), each to M recipients whose addresses carry
a tag the fake's fault rule matches.  Temporary faults are limited with
"times", so the retry succeeds; the expected outcome of each case:

  provider fault                        expected
  smtp     451 at RCPT (x2)             retried, delivered
  smtp     451 at end of DATA (x1)      retried, delivered
  smtp     451 forever                  retried up to queue.max_attempts,
                                        then failed, DLQ reason "451"
  smtp     550 at RCPT                  permanent: failed, DLQ reason "550"
  smtp     stall past smtp.timeout_ms   timed out, retried, delivered
  smtp     reset (RST) at RCPT          retried, delivered
  smtp     drop (FIN, no reply) at MAIL retried, delivered
  line     400                          permanent: failed, DLQ reason "400"
  line     500 / 503 (x1)               retried, delivered
  line     500 after accepting (x1)     retried, LINE answers 409: delivered,
                                        stored once
  line     429 rate + Retry-After 2     retried no earlier than 2 s, delivered
  line     stall past line.timeout_ms   retried, delivered
  line     reset / garbage (x1)         retried, delivered
  fcm      400 INVALID_ARGUMENT         permanent: failed, DLQ reason "400"
  fcm      500 / 503 (x1)               retried, delivered
  fcm      429 + Retry-After 2 (x1)     retried no earlier than 2 s, delivered
  fcm      stall past fcm.timeout_ms    retried, delivered
  fcm      reset stream / drop / HTML   retried, delivered
           garbage (x1)

For every broadcast: status done, delivered + failed + cancelled + expired
== total, failed == the fields dead-lettered for it (DLQ), the fake saw the
fault (so a case cannot pass without it); at the end nothing is pending
(XPENDING 0 on every stream, retry zset empty).  SMTP has no 429 nor
"garbage" (a relay answers in reply codes): drop stands in for the
latter.  SendGrid failover has its own test (tests/integration/
test_failover.py).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
M = 3              # recipients per case
MAX_ATTEMPTS = 4

# (name, rule without "match", expected "delivered"|"failed", reason
#  substring for failures, min seconds between the fault and the success)
SMTP = [
    ("451-rcpt", {"action": "4xx", "code": 451, "stage": "rcpt", "times": 2},
     "delivered", None, 0),
    ("451-data", {"action": "4xx", "code": 451, "stage": "data", "times": 1},
     "delivered", None, 0),
    ("451-forever", {"action": "4xx", "code": 451, "stage": "rcpt"},
     "failed", "451", 0),
    # (a 5xx at RCPT is a bounce, not a DLQ entry: test_bounces.py)
    ("550-data", {"action": "5xx", "code": 550, "stage": "data",
                  "text": "5.1.1 Recipient address rejected: User unknown"},
     "failed", "550", 0),
    ("stall", {"action": "stall", "stage": "rcpt", "times": 1},
     "delivered", None, 0),
    ("reset", {"action": "reset", "stage": "rcpt", "times": 1},
     "delivered", None, 0),
    ("drop", {"action": "drop", "stage": "rcpt", "times": 1},
     "delivered", None, 0),
]
LINE = [
    ("400", {"action": "400"}, "failed", "400", 0),
    ("500", {"action": "500", "times": 1}, "delivered", None, 0),
    ("503", {"action": "503", "times": 1}, "delivered", None, 0),
    ("500-accepted", {"action": "500-accepted", "times": 1}, "delivered", None, 0),
    ("429-retry-after", {"action": "429-rate", "times": 1, "retry_after": 2},
     "delivered", None, 2.0),
    ("stall", {"action": "stall", "times": 1}, "delivered", None, 0),
    ("reset", {"action": "reset", "times": 1}, "delivered", None, 0),
    ("garbage", {"action": "garbage", "times": 1}, "delivered", None, 0),
]
FCM = [
    ("400", {"action": "400"}, "failed", "400", 0),
    ("500", {"action": "500", "times": 1}, "delivered", None, 0),
    ("503", {"action": "503", "times": 1}, "delivered", None, 0),
    ("429-retry-after", {"action": "429", "times": 1, "retry_after": "2"},
     "delivered", None, 2.0),
    ("stall", {"action": "stall", "times": 1}, "delivered", None, 0),
    ("reset", {"action": "reset", "times": 1}, "delivered", None, 0),
    ("drop", {"action": "drop", "times": 1}, "delivered", None, 0),
    ("garbage", {"action": "garbage", "times": 1}, "delivered", None, 0),
]


def tag(prov, name):
    return ("%s%s" % (prov, name)).replace("-", "")


def recipients(prov, name, ci):
    t = tag(prov, name)
    out = []
    for i in range(M):
        r = {"id": "%s-%d" % (t, i)}
        if prov == "smtp":
            r["email"] = "%s.%d@example.jp" % (t, i)
        elif prov == "line":
            r["line"] = uid(i, tag=0xf0000 + ci)     # tag findable in the id
        else:
            r["push"] = [{"platform": "fcm", "token": fcm_token(t, i)}]
        out.append(r)
    return out


def match(prov, name, ci):
    if prov == "line":
        return "U%08x" % (0xf0000 + ci)
    return tag(prov, name)


def dlq_fields(r, bid):
    n = 0
    reasons = []
    for e in dlq_entries(r):
        if e.get("bc") == bid:
            n += len([f for f in e.get("field", "").split(",") if f])
            reasons.append(e.get("reason", ""))
    return n, reasons


def fault_seen(prov, fake, m, rule):
    """How many times the fake applied the fault to this case."""
    if prov == "smtp":
        evs = fake.events()
        if rule["action"] in ("4xx", "5xx"):
            code = rule["code"]
            return sum(1 for e in evs if e.get("ev") in ("rcpt", "data")
                       and e.get("code") == code
                       and any(m in x for x in ([e.get("rcpt")] if isinstance(
                           e.get("rcpt"), str) else (e.get("rcpt") or []))))
        return sum(1 for e in evs if e.get("action") == rule["action"]
                   and m in str(e.get("rcpt")))
    if prov == "line":
        return sum(1 for e in fake.events("request") if e.get("action")
                   and any(m in u for u in (e.get("to") or [])))
    return sum(1 for e in fake.sends() if e.get("rule") and m in (e.get("token") or ""))


def retry_gap(prov, fake, m):
    """Seconds between the first fault answer and the first success."""
    if prov == "line":
        evs = [e for e in fake.events("request")
               if any(m in u for u in (e.get("to") or []))]
    else:
        evs = [e for e in fake.sends() if m in (e.get("token") or "")]
    bad = [e["ts"] for e in evs if e.get("status") != 200]
    good = [e["ts"] for e in evs if e.get("status") == 200]
    if not bad or not good:
        return None
    return min(good) - min(bad)


out = tmpdir("faults-provider")
with Redis(out) as r, FakeSMTP(out, tls="none") as smtp, \
        FakeLine(out) as line, FakeFCM(out) as fcm:
    fakes = {"smtp": smtp, "line": line, "fcm": fcm}
    cases = [("smtp", c) for c in SMTP] + [("line", c) for c in LINE] + \
        [("fcm", c) for c in FCM]
    rules = {"smtp": [], "line": [], "fcm": []}
    for ci, (prov, (name, rule, _, _, _)) in enumerate(cases):
        rr = dict(rule)
        rr["match"] = match(prov, name, ci)
        if rr["action"] == "stall":
            rr["seconds"] = 30
        rules[prov].append(rr)
    smtp.set_control({"rules": rules["smtp"]})
    line.set_control({"rules": rules["line"]})
    fcm.set_control({"rules": rules["fcm"]})
    k = Kairan(out, r, smtp=smtp, conf={
        "routes": {"email": "smtp", "line": "line", "push": "push"},
        "line": line.conf(timeout_ms="1000"),
        "fcm": fcm.conf(timeout_ms="1000"),
        "smtp": dict.fromkeys((  # connect, TLS and every reply wait
            "timeout_ms", "greeting_timeout_ms", "mail_timeout_ms",
            "rcpt_timeout_ms", "data_init_timeout_ms",
            "data_xfer_timeout_ms", "data_done_timeout_ms"), "1000"),
        "queue": {"claim_idle_ms": "3000", "retry_base_ms": "100",
                  "retry_cap_ms": "500", "max_attempts": str(MAX_ATTEMPTS)},
        "dispatcher": {"drain_ms": "1000"}})
    d = k.start()
    d.wait_output('"msg":"ready"', 15)
    ch_of = {"smtp": "email", "line": "line", "fcm": "push"}
    bids = []
    for ci, (prov, (name, rule, want, reason, gap)) in enumerate(cases):
        bids.append(k.submit({
            "tenant": "sakura-hs", "category": "notice", "policy": "all",
            "subject": "障害試験 %s %s" % (prov, name), "body": "本文\n",
            "channels": [ch_of[prov]],
            "recipients": recipients(prov, name, ci)}))
    for ci, (prov, (name, rule, want, reason, gap)) in enumerate(cases):
        label = "%s %s" % (prov, name)
        with tap.check("%s: %s, account exact" % (label, want)):
            bid = bids[ci]
            h = k.wait_done(bid, 60)
            ch = ch_of[prov]
            tot, dl, fl, cn, ex, ends = account(k, bid).get(ch, (0,) * 6)
            ndlq, reasons = dlq_fields(r, bid)
            seen = fault_seen(prov, fakes[prov], match(prov, name, ci), rule)
            tap.diag("%s: total %d delivered %d failed %d cancelled %d expired "
                     "%d; dlq %d; fault applied %d times%s"
                     % (label, tot, dl, fl, cn, ex, ndlq, seen,
                        ("; reason: " + reasons[0][:160]) if reasons else ""))
            assert h.get("status") == "done", h.get("status")
            assert tot == M, "total %d, want %d" % (tot, M)
            assert ends == tot, "delivered+failed+cancelled+expired %d != %d" % (ends, tot)
            assert fl == ndlq, "failed %d but %d fields in the DLQ" % (fl, ndlq)
            assert seen > 0, "the fake never applied the fault"
            if want == "delivered":
                assert dl == M, "delivered %d of %d" % (dl, M)
            else:
                assert fl == M, "failed %d of %d" % (fl, M)
                assert all(reason in x for x in reasons), \
                    "reason without %r: %r" % (reason, reasons)
            if name == "500-accepted":
                st = [e.get("status") for e in line.events("request")
                      if any(match(prov, name, ci) in u for u in (e.get("to") or []))]
                tap.diag("%s: LINE answered %r" % (label, st))
                assert st == [500, 409], "answers %r, want [500, 409]" % (st,)
            if name == "451-forever":
                att = [int(e.get("attempts", 0)) for e in dlq_entries(r)
                       if e.get("bc") == bid]
                assert att and all(a == MAX_ATTEMPTS for a in att), \
                    "attempts %r, want %d" % (att, MAX_ATTEMPTS)
            if gap:
                g = retry_gap(prov, fakes[prov], match(prov, name, ci))
                tap.diag("%s: retried %.2fs after the 429" % (label, g or -1))
                assert g is not None and g >= gap - 0.05, \
                    "retried %r s after, Retry-After was %g" % (g, gap)
    with tap.check("LINE: no user id stored twice (500 after accepting -> 409)"):
        n = {}
        for q in line.requests():
            for u in q["to"]:
                n[u] = n.get(u, 0) + 1
        dups = {u: c for u, c in n.items() if c > 1}
        assert not dups, "%d ids stored more than once" % len(dups)
    with tap.check("nothing pending at the end (every stream, retry zset)"):
        wait_nothing_pending(r)
    with tap.check("no address, user id or token in kairand's log"):
        log = d.stderr_text()
        leaked = [x for ci, (prov, (name, *_)) in enumerate(cases)
                  for rc in recipients(prov, name, ci)
                  for x in ([rc.get("email"), rc.get("line")] +
                            [p["token"] for p in rc.get("push", [])]) if x and x in log]
        assert not leaked, "in the log: %d, e.g. %s" % (len(leaked), leaked[0][:6])
    tap.eq(d.stop(10), 0, "kairand stops with 0")
    stats = {p: len(f.events()) for p, f in fakes.items()}
    tap.diag("fake events: %r" % stats)

tap.diag("test_provider_matrix.py took %s" % elapsed(T0))
tap.done()
