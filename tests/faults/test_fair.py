#!/usr/bin/python3
"""test_fair.py - fair to every school (issue 20, first part).

Tenant A (a board of education) sends a normal broadcast to
scale(200000) LINE recipients; while it is sending, tenant B (a school)
submits a 30-recipient normal broadcast on the same channel.  Within a
priority tenants take turns (deficit round robin in the expander) and the
job stream stays about queue.expand_ahead_ms deep, so:

  * B is delivered in full within 2 s of its submit (it used to wait for
    the whole of A);
  * A's throughput (recipients/s from its first to its last request)
    loses at most 5 % against the same broadcast sent alone just before
    (figures printed; the bound is asserted with the machine's noise in
    mind: see FAIR_LOSS below);
  * both accounts are exact, nothing is left pending.

LINE at [line] rate 200 (LINE's own limit: 200 multicast requests of 500
a second), into tests/fakes/fake_line.py.  Scaled down, A keeps 50,000
recipients and the rate shrinks with A (50 requests a second) so that A
still sends for about 2 s: at 20,000 recipients and rate 200 A was done in
0.28 s, and B (a kairanctl process) came back when A had 1,450 left, or
none on a busy machine (CI, 2026-12-07): the test no longer bit.  B waits
about queue.expand_ahead_ms (1 s) of A's sending, so B is submitted once a
tenth of A is delivered.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: E402,F401,F403

N = scale(200000, minimum=50000)
NB = 30
# A's throughput may lose this much (issue 20: 5 %).  Below full scale A
# sends for a second or two, and two runs of the same broadcast on a
# machine shared with other builds differ by ±30 % on their own (measured
# at KAIRAN_TEST_SCALE=0.25 and 0.1, load 10-20): there the bound is 35 %,
# which still catches A stalling behind B.  KAIRAN_FAIR_LOSS sets it; the
# figure is printed either way.
RATE = 200 if N >= 200000 else max(1, round(200 * N / 200000))
FAIR_LOSS = float(os.environ.get("KAIRAN_FAIR_LOSS")
                  or (0.05 if N >= 200000 else 0.35))

tap = TAP()
out = tmpdir("fair")


def a_broadcast(key, tag):
    return {"id": key, "tenant": "board", "subject": "教育委員会より",
            "body": "本文", "channels": ["line"],
            "recipients": [{"id": "a-%06d" % i, "line": uid(i, tag)}
                           for i in range(N)]}


def b_broadcast():
    return {"tenant": "school", "subject": "学校より", "body": "本文",
            "channels": ["line"],
            "recipients": [{"id": "b-%02d" % i, "line": uid(i, 0xb)}
                           for i in range(NB)]}


def throughput(h):
    return N / max(0.001, (int(h["last_ms"]) - int(h["first_ms"])) / 1000.0)


with Redis(out) as r, FakeLine(out) as line:
    k = Kairan(out, r, email="outbox", conf={
        "routes": {"line": "line"},
        "line": line.conf(rate=str(RATE), connections="8"),
        "dispatcher": {"max_recipients": str(max(N, 100000))},
        # Storing 200,000 sealed recipients is one long script.
        "redis": {"timeout_ms": "60s"},
        "http": {"listen": ""}})
    d = k.start()
    wait_for(lambda: "ready" in d.stderr_text(), 15, what="kairand ready")

    alone = k.submit(a_broadcast("alone", 0xa))
    h = k.wait_done(alone, 300)
    t_alone = throughput(h)
    tap.diag("A alone: %d recipients, %.0f recipients/s (rate %d)"
             % (N, t_alone, RATE))

    with tap.check("B's 30 recipients are delivered within 2 s of its "
                   "submit while A's %d are sending" % N):
        # Both runs of A start with a full rate bucket (its burst is a
        # second of sending): the first found a fresh one, the second
        # would find what the first left, refilled for as long as the
        # submit took, and seem slower for it.
        for key in r.call("KEYS", k.prefix + "rate:*") or []:
            r.call("DEL", key)
        shared = k.submit(a_broadcast("shared", 0xc))
        # Until A is well under way: a tenth delivered.
        wait_for(lambda: int(k.bc(shared).get("n:line:delivered", "0"))
                 >= N // 10, 120, what="A sending")
        t0 = time.time()
        b = k.submit(b_broadcast())
        hb = k.wait_done(b, 60)
        took = int(hb["done_ms"]) / 1000.0 - t0
        ha = k.bc(shared)
        a_left = N - int(ha.get("n:line:delivered", "0"))
        tap.diag("B done %.3f s after its submit (kairanctl included); "
                 "A still had %d recipients to go then" % (took, a_left))
        tap.eq(k.counts(b)["line"].get("delivered"), NB, "B all delivered")
        tap.ok(a_left > 0, "A was still sending when B was done (the test "
               "bites)")
        tap.ok(took <= 2.0, "B within 2 s: %.3f s" % took)

    with tap.check("A's throughput loses at most %.0f %%" % (FAIR_LOSS * 100)):
        ha = k.wait_done(shared, 300)
        t_shared = throughput(ha)
        loss = 1 - t_shared / t_alone
        tap.diag("A with B: %.0f recipients/s, alone %.0f: loss %.1f %% "
                 "(load %s)" % (t_shared, t_alone, loss * 100,
                                open("/proc/loadavg").read().split()[0]))
        tap.ok(loss <= FAIR_LOSS, "loss %.1f %%" % (loss * 100))
        tap.eq(k.counts(shared)["line"].get("delivered"), N, "A all delivered")

    with tap.check("nothing pending"):
        wait_nothing_pending(r)
        tap.ok(True, "no stream has pending entries")
        tap.eq(line_tally(line).duplicates(), 0, "no LINE duplicate")
    d.stop()
tap.done()
