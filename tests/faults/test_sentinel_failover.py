#!/usr/bin/python3
"""test_sentinel_failover.py - kill -9 of the Redis primary under load,
with Redis Sentinel (issue 19, "Tests").

A private primary, two replicas and three sentinels (Debian's
redis-sentinel on loopback free ports, their own directories; AOF with
appendfsync everysec), two kairand and kairanctl finding the primary
through the sentinels, redis.wait_replicas = 1.

  phase 1: one broadcast of scale(20000) e-mail recipients (fake_smtp.py);
           the primary is killed (kill -9) at KILLS // 2 moments (at least
           one) spread over the deliveries; each time the killed node is
           started again as a replica of the new primary once the
           sentinels have elected it.
  phase 2: a run of submits (kairanctl, small broadcasts, each with its
           own key and addresses); the primary is killed the other
           KILLS - KILLS // 2 times during it.  A submit that exits 3
           (WAIT fell short, or no primary in time) is submitted again
           with the same key, as an operator would.

At the end: every acknowledged broadcast (kairanctl exit 0) is delivered
in full (sets of addresses), the big one too, with an exact account;
duplicates are counted and printed; for each kill, the time from the kill
to the sentinels' new primary and to the next delivery is printed (the
target: at most 10 s after the election).

KAIRAN_FAULT_KILLS (default 20; CI 5) and KAIRAN_TEST_SCALE (CI 0.1) size
it; KAIRAN_TEST_SEED replays the moments.
"""

import json
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from faultlib import *  # noqa: E402,F401,F403
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from sentinels import SentinelGroup  # noqa: E402

SEED = int(os.environ.get("KAIRAN_TEST_SEED") or int(time.time() * 1000) % 1000000)
KILLS = int(os.environ.get("KAIRAN_FAULT_KILLS") or 20)
K1 = max(1, KILLS // 2)
K2 = max(1, KILLS - K1)
N = scale(20000, minimum=300)
SMALL = 10
rnd = random.Random(SEED)

tap = TAP()
tap.diag("seed: %d (KAIRAN_TEST_SEED=%d replays the random moments)" % (SEED, SEED))
T0 = time.monotonic()

FAST = {
    "queue": {"claim_idle_ms": "3000", "retry_base_ms": "100",
              "retry_cap_ms": "1000"},
    "smtp": {"timeout_ms": "1000"},
    "dispatcher": {"drain_ms": "1000"},
}


def bc(tag, addrs, key):
    return {"id": key, "tenant": "sakura-hs", "category": "emergency",
            "priority": "urgent", "subject": "【緊急】%s" % tag,
            "body": "保護者各位\n明日は臨時休校とします。\n", "channels": ["email"],
            "recipients": [{"id": "r-%s-%d" % (tag, i), "email": a}
                           for i, a in enumerate(addrs)]}


def failover(g, kills, when):
    """Kill the primary, wait for the sentinels' new one, restart the
    killed node as its replica.  Appends (wall time of the kill, seconds to
    the election, wall time of the election) to kills."""
    t_kill_wall = time.time()
    t_kill = g.kill_primary()
    new = g.wait_new_primary(60)
    t_el = time.monotonic()
    kills.append((t_kill_wall, t_el - t_kill, t_kill_wall + (t_el - t_kill), when))
    g.restart_killed(new)
    return new


with tap.check("kill -9 of the Redis primary x%d (Sentinel, 2 replicas, WAIT 1): "
               "%d-recipient broadcast and a run of submits; every acknowledged "
               "broadcast delivered in full" % (K1 + K2, N)):
    out = tmpdir("faults-sentinel")
    with SentinelGroup(out, replicas=2, sentinels=3) as g, \
            FakeSMTP(out, tls="none") as smtp:
        conf = {s: dict(kv) for s, kv in FAST.items()}
        conf["redis"] = g.redis_conf(wait_replicas=1, wait_timeout_ms="2s")
        conf["routes"] = {"email": "smtp", "line": "outbox", "push": "outbox"}
        k = Kairan(out, g.proxy, smtp=smtp, conf=conf)
        mail = email_tally(smtp)
        d = [k.start(name="kairand-a"), k.start(name="kairand-b")]
        for p in d:
            p.wait_output('"msg":"ready"', 30)

        # ---- phase 1: the big broadcast
        addrs = ["s%05d@example.jp" % i for i in range(N)]
        t_submit = time.monotonic()
        cp = k.ctl("submit", "-", input=json.dumps(bc("big", addrs, "big"),
                                                  ensure_ascii=False), timeout=120)
        tap.eq(cp.returncode, 0, "the big broadcast is acknowledged (WAIT 1)")
        big = cp.stdout.strip()
        tap.diag("submitted %d recipients in %s" % (N, elapsed(t_submit)))
        kills = []
        for i, frac in enumerate(sorted(rnd.uniform(0.1, 0.8) for _ in range(K1))):
            want = int(N * frac)
            wait_for(lambda: mail.poll() >= want, 120 + N / 100, 0.02,
                     what="%d of %d deliveries (kill %d)" % (want, N, i + 1))
            failover(g, kills, "broadcast")
        h = k.wait_done(big, 180 + N / 50)
        tap.eq(h.get("status"), "done", "big broadcast: status done")
        got = mail.got()
        missing = set(addrs) - got
        tap.ok(not missing, "big broadcast: every recipient got it",
               "missing %d" % len(missing))
        acc = account(k, big).get("email", (0,) * 7)
        tap.diag("big account: total %d delivered %d failed %d cancelled %d expired %d"
                 % acc[:5])
        tap.eq(acc[0], N, "big: n:email:total == recipients")
        tap.eq(acc[1], N, "big: delivered == recipients")

        # ---- phase 2: a run of submits with kills in between
        subs = []          # [key, addrs, name, rc, t_start_wall]
        stop = threading.Event()

        def submitter():
            i = 0
            while not stop.is_set():
                key = "run-%d" % i
                a = ["u%04d-%02d@example.jp" % (i, j) for j in range(SMALL)]
                t = time.time()
                c = k.ctl("submit", "-", input=json.dumps(bc(key, a, key),
                                                         ensure_ascii=False), timeout=120)
                subs.append([key, a, c.stdout.strip(), c.returncode, t])
                i += 1
        th = threading.Thread(target=submitter, daemon=True)
        th.start()
        for i in range(K2):
            n0 = len(subs)
            wait_for(lambda: len(subs) >= n0 + 5, 120, 0.02,
                     what="5 submits before kill %d" % (K1 + i + 1))
            failover(g, kills, "submits")
        n0 = len(subs)
        wait_for(lambda: len(subs) >= n0 + 5, 120, 0.02, what="5 submits after the last kill")
        stop.set()
        th.join(130)
        acked = [s for s in subs if s[3] == 0]
        short = [s for s in subs if s[3] != 0]
        tap.diag("submits: %d, acknowledged %d, not acknowledged %d (exit %s)"
                 % (len(subs), len(acked), len(short),
                    ",".join(sorted(set(str(s[3]) for s in short))) or "-"))
        for s in short:
            c = k.ctl("submit", "-", input=json.dumps(bc(s[0], s[1], s[0]),
                                                     ensure_ascii=False), timeout=120)
            tap.eq(c.returncode, 0, "%s submitted again with its key: exit 0" % s[0])
            s[2] = c.stdout.strip()
        for s in subs:
            k.wait_done(s[2], 120)
        got = mail.got()
        lost = [s[0] for s in acked if not set(s[1]) <= got]
        tap.ok(not lost, "every acknowledged broadcast of the run is delivered in "
               "full (%d)" % len(acked), "not in full: %s" % lost[:10])
        retried_lost = [s[0] for s in short if not set(s[1]) <= got]
        tap.ok(not retried_lost, "the resubmitted ones too (%d)" % len(short),
               "%s" % retried_lost[:10])

        # ---- figures
        msgs = jsonl(smtp.messages_path)
        ts = sorted(m["ts"] for m in msgs)
        worst = 0.0
        for j, (t_kill, t_elect, t_el_wall, when) in enumerate(kills):
            nxt = next((t for t in ts if t > t_el_wall), None)
            after = [m["ts"] for m in msgs if m["ts"] > t_kill]
            if when == "submits":
                # a broadcast submitted after the kill: its first message
                later = [s for s in subs if s[4] > t_kill]
                la = set(a for s in later for a in s[1])
                cand = [m["ts"] for m in msgs if set(m["rcpt"]) & la]
                nxt = min(cand) if cand else None
            d_next = (nxt - t_kill) if nxt else float("nan")
            worst = max(worst, (nxt - t_el_wall) if nxt else 99.0)
            tap.diag("kill %d (%s): sentinels elected a new primary after %.2fs; "
                     "next delivery %.2fs after the kill (%.2fs after the election); "
                     "first message after the kill at %.2fs"
                     % (j + 1, when, t_elect, d_next, d_next - t_elect,
                        (min(after) - t_kill) if after else float("nan")))
        tap.ok(worst <= 10.0, "every next delivery within 10 s of the election "
               "(worst %.2fs)" % worst)
        tap.diag("duplicates email: %d (%d messages for %d addresses, %d addresses "
                 "got more than one)" % (mail.duplicates(), mail.count,
                                         len(mail.per), mail.dup_addresses()))
        wait_nothing_pending(g.proxy, timeout=60)
        tap.ok(True, "nothing pending: XPENDING 0 on every stream, retry empty")
        tap.eq(int(g.proxy.call("XLEN", "kairan:dlq")), 0, "DLQ empty")
        switches = sum(p.stderr_text().count("switched the primary") for p in d)
        tap.diag("+switch-master lines logged by the two kairand: %d" % switches)
        for i, p in enumerate(d):
            tap.ok(p.alive(), "kairand #%s running at the end" % "ab"[i],
                   p.stderr_text()[-2000:])
            tap.eq(p.stop(15), 0, "kairand #%s stops with 0" % "ab"[i])

tap.diag("test_sentinel_failover.py took %s" % elapsed(T0))
tap.done()
