#!/usr/bin/python3
"""soak.py - a long run of deliveries through the fakes with random faults,
watching kairand's memory (issue 4, "Faults": "A soak: 1,000,000
deliveries through fakes with random faults; print the final account and
kairand's RSS over time (it must stay flat)").

KAIRAN_SOAK_N deliveries (default 1,000,000; `make soak`), in broadcasts of
up to KAIRAN_SOAK_BATCH recipients (default 5,000), two in flight at a
time; each recipient has an e-mail address (fake_smtp.py), a LINE user id
(fake_line.py, multicast) and an FCM token (fake_fcm.js), policy "all":
three deliveries per recipient.  One kairand.  Faults, changed with every
broadcast:
  * SMTP: 451 at RCPT with probability 1%, reset 0.2%, 550 (permanent)
    0.1%;
  * LINE: 500 with probability 2%, reset 1%;
  * FCM: one of 500, 503, reset, drop, garbage, 429 for every token ending
    in a random digit (10%), once per token ("times" 1).
Every few seconds it prints the time, deliveries recorded, the rate and
kairand's VmRSS (/proc/<pid>/status).  At the end: the account per channel
(delivered + failed + cancelled + expired == total, asserted), nothing
pending (asserted), failed == the DLQ's fields, and RSS first (after the
warm-up: the first broadcast done) / last / max.  RSS is not held to a
tight number; the run fails only if RSS at the end is more than twice the
RSS after warm-up.  Exit 0/1 (TAP output).
"""

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: E402,F401,F403

SOAK_N = int(os.environ.get("KAIRAN_SOAK_N") or 1000000)
BATCH = int(os.environ.get("KAIRAN_SOAK_BATCH") or 5000)
EVERY = float(os.environ.get("KAIRAN_SOAK_EVERY") or 5)
SEED = int(os.environ.get("KAIRAN_TEST_SEED") or int(time.time() * 1000) % 1000000)
rnd = random.Random(SEED)
IN_FLIGHT = 2
FCM_FAULTS = ("500", "503", "reset", "drop", "garbage", "429")

tap = TAP()
tap.diag("soak: %d deliveries, broadcasts of up to %d recipients, seed %d"
         % (SOAK_N, BATCH, SEED))
T0 = time.monotonic()


def recipients(b, n):
    return [{"id": "s%d-%d" % (b, i), "email": "s%d.%d@example.jp" % (b, i),
             "line": uid(i, tag=b),
             "push": [{"platform": "fcm", "token": fcm_token("s%d" % b, i)}]}
            for i in range(n)]


def faults(smtp, line, fcm):
    smtp.set_control({"rules": [
        {"match": "@", "stage": "rcpt", "action": "4xx", "code": 451, "prob": 0.01},
        {"match": "@", "stage": "rcpt", "action": "reset", "prob": 0.002},
        {"match": "@", "stage": "data", "action": "5xx", "code": 550,
         "text": "5.1.1 User unknown", "prob": 0.001}]})
    line.set_control({"rules": [
        {"action": "500", "prob": 0.02}, {"action": "reset", "prob": 0.01}]})
    a = rnd.choice(FCM_FAULTS)
    rule = {"match": "%d:APA" % rnd.randrange(10), "action": a, "times": 1}
    if a == "429":
        rule["retry_after"] = "1"
    fcm.set_control({"rules": [rule]})
    return a


out = tmpdir("soak")
with Redis(out) as r, FakeSMTP(out, tls="none") as smtp, \
        FakeLine(out) as line, FakeFCM(out) as fcm:
    k = Kairan(out, r, smtp=smtp, conf={
        "routes": {"email": "smtp", "line": "line", "push": "push"},
        "line": line.conf(timeout_ms="1000"),
        "fcm": fcm.conf(timeout_ms="1000"),
        "smtp": dict.fromkeys((  # connect, TLS and every reply wait
            "timeout_ms", "greeting_timeout_ms", "mail_timeout_ms",
            "rcpt_timeout_ms", "data_init_timeout_ms",
            "data_xfer_timeout_ms", "data_done_timeout_ms"), "1000"),
        "queue": {"claim_idle_ms": "3000", "retry_base_ms": "100",
                  "retry_cap_ms": "1000", "max_attempts": "8"},
        "dispatcher": {"drain_ms": "1000"}})
    d = k.start()
    d.wait_output('"msg":"ready"', 15)
    pid = d.pid
    submitted = 0            # deliveries submitted
    pending = []             # broadcast ids not done yet
    done_bids = []
    b = 0
    rss = []                 # (t, rss kB, deliveries recorded)
    warm = None
    finished = 0             # deliveries recorded by done broadcasts
    last_print = 0.0
    with tap.check("soak of %d deliveries: kairand up, every broadcast done"
                   % SOAK_N):
        while True:
            # Broadcasts that ended.
            still = []
            for bid in pending:
                h = k.bc(bid)
                if "done_ms" in h:
                    done_bids.append(bid)
                    finished += int(h.get("final", 0))
                else:
                    still.append(bid)
            pending = still
            if warm is None and done_bids:
                warm = vmrss_kb(pid)
                tap.diag("warm-up over (first broadcast done): RSS %d kB" % warm)
            while len(pending) < IN_FLIGHT and submitted < SOAK_N:
                n = max(1, min(BATCH, (SOAK_N - submitted + 2) // 3))
                fa = faults(smtp, line, fcm)
                pending.append(k.submit({
                    "tenant": "sakura-hs", "category": "notice", "policy": "all",
                    "subject": "耐久試験 %d" % b, "body": "本文 %d\n" % b,
                    "channels": ["email", "line", "push"],
                    "recipients": recipients(b, n)}))
                submitted += 3 * n
                b += 1
            if not d.alive():
                raise AssertionError("kairand exited (%s): %s"
                                     % (d.returncode, d.stderr_text()[-2000:]))
            now = time.monotonic() - T0
            if now - last_print >= EVERY or not pending:
                inflight = sum(int(k.bc(x).get("final", 0)) for x in pending)
                rec = finished + inflight
                kb = vmrss_kb(pid)
                rss.append((now, kb, rec))
                tap.diag("t=%6.1fs deliveries recorded %8d / %d (%5.0f/s) "
                         "RSS %6d kB  (FCM fault now: %s)"
                         % (now, rec, SOAK_N, rec / max(now, 0.001), kb, fa))
                last_print = now
            if not pending and submitted >= SOAK_N:
                break
            time.sleep(0.2)
    total_s = time.monotonic() - T0
    with tap.check("account exact per channel, failed == DLQ fields, nothing "
                   "pending"):
        acc = {}
        for bid in done_bids:
            for ch, v in account(k, bid).items():
                a = acc.setdefault(ch, [0] * 6)
                for i, x in enumerate(v):
                    a[i] += x
        grand = 0
        for ch in CHANNELS:
            tot, dl, fl, cn, ex, ends = acc.get(ch, [0] * 6)
            grand += tot
            tap.diag("account %s: total %d delivered %d failed %d cancelled %d "
                     "expired %d" % (ch, tot, dl, fl, cn, ex))
            assert ends == tot, "%s: ends %d != total %d" % (ch, ends, tot)
        tap.diag("deliveries: %d in %.0fs (%.0f/s)" % (grand, total_s,
                                                      grand / total_s))
        assert grand == submitted, "total %d != submitted %d" % (grand, submitted)
        nfail = sum(acc.get(ch, [0] * 6)[2] for ch in CHANNELS)
        ndlq = sum(len([f for f in e.get("field", "").split(",") if f])
                   for e in dlq_entries(r))
        tap.diag("failed %d, DLQ fields %d" % (nfail, ndlq))
        why = {}
        for e in dlq_entries(r):
            w = e.get("reason", "")[:90]
            why[w] = why.get(w, 0) + 1
        for w, n in sorted(why.items(), key=lambda x: -x[1])[:6]:
            tap.diag("DLQ reason x%d: %s" % (n, w))
        assert nfail == ndlq, "failed %d != DLQ fields %d" % (nfail, ndlq)
        wait_nothing_pending(r)
    with tap.check("kairand's RSS flat: at the end at most 2x after warm-up"):
        kbs = [x[1] for x in rss if x[1]]
        last = vmrss_kb(pid)
        if warm is None:
            warm = kbs[0]
        tap.diag("RSS kB: after warm-up %d, last %d, max %d, min %d (%d samples)"
                 % (warm, last, max(kbs), min(kbs), len(kbs)))
        assert last <= 2 * warm, "RSS grew from %d to %d kB" % (warm, last)
    tap.eq(d.stop(10), 0, "kairand stops with 0")

tap.diag("soak.py took %.1fs" % (time.monotonic() - T0))
tap.done()
