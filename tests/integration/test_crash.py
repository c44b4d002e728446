#!/usr/bin/python3
"""test_crash.py - kairand under crashes, signals and Redis faults.

Covers issue 2 ("Queue", "Dispatcher", "Tests": the kill -9 test) and a few
items of issue 4 "Faults":

 1. kill -9 of one of two kairand processes in the middle of a
    20,000-recipient broadcast, then a restart: every recipient gets the
    message, the account is exact, nothing is left pending; duplicates are
    reported ("# duplicates: n"), never asserted (at-least-once).
 1b. kill -9 of the only kairand DURING the expansion, then a restart: the
    expansion resumes at its checkpoint, exactly one job per recipient.
 2. SIGTERM while sends are in flight (the relay delays every RCPT): exit 0
    within drain_ms + a margin; a new kairand delivers the rest, none lost.
 3. Redis unreachable at start: kairand stays up, says so clearly, and
    delivers once a Redis appears on that port.
 4. Redis restarted (AOF on) in the middle of a broadcast: kairand
    reconnects and the broadcast completes.
 5. A Redis with maxmemory-policy allkeys-lru: kairand refuses to run (exit 1).
 6. kairand --check refuses queue.claim_idle_ms <= smtp.timeout_ms +
    dispatcher.drain_ms and accepts a larger one.

Counts shrink with KAIRAN_TEST_SCALE; KAIRAN_TEST_SEED replays the random
moments (the seed is printed as a diag line).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F403

# The environment must not redirect kairand elsewhere than our config says.
for _v in ("KAIRAN_REDIS_URL", "KAIRAN_OUTBOX_DIR", "KAIRAN_KEY_FILE",
           "KAIRAN_SMTP_PASSWORD"):
    os.environ.pop(_v, None)

SEED = int(os.environ.get("KAIRAN_TEST_SEED") or int(time.time() * 1000) % 1000000)
rnd = random.Random(SEED)

tap = TAP()
tap.diag("seed: %d (KAIRAN_TEST_SEED=%d replays the random moments)" % (SEED, SEED))

KAIRAND = os.path.join(BUILD, "kairand")
STREAMS = ("kairan:q:email:urgent", "kairan:q:email:normal")

# Short enough that a dead process' jobs are reclaimed within seconds;
# claim_idle must stay > smtp.timeout_ms + drain_ms or kairand refuses.
FAST = {
    "queue": {"claim_idle_ms": "3000", "retry_base_ms": "100",
              "retry_cap_ms": "1000"},
    "smtp": dict.fromkeys((  # connect, TLS and every reply wait
            "timeout_ms", "greeting_timeout_ms", "mail_timeout_ms",
            "rcpt_timeout_ms", "data_init_timeout_ms",
            "data_xfer_timeout_ms", "data_done_timeout_ms"), "1000"),
    "dispatcher": {"drain_ms": "1000"},
}


def conf(**extra):
    c = {s: dict(kv) for s, kv in FAST.items()}
    for sec, kv in extra.items():
        c.setdefault(sec, {}).update(kv)
    return c


class Inbox:
    """Reads the fake's messages.jsonl incrementally (20,000 messages would
    be too slow to re-parse on every poll) and counts messages per
    recipient."""

    def __init__(self, smtp):
        self.path = smtp.messages_path
        self.off = 0
        self.count = 0
        self.per_rcpt = {}

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return self.count
        end = data.rfind(b"\n")
        if end < 0:
            return self.count
        self.off += end + 1
        for line in data[:end].split(b"\n"):
            if not line.strip():
                continue
            m = json.loads(line)
            self.count += 1
            for r in m["rcpt"]:
                self.per_rcpt[r] = self.per_rcpt.get(r, 0) + 1
        return self.count

    def at_least(self, n):
        return self.poll() >= n

    def duplicates(self):
        """Messages beyond the first per recipient."""
        return sum(c - 1 for c in self.per_rcpt.values() if c > 1)

    def dup_rcpts(self):
        return sum(1 for c in self.per_rcpt.values() if c > 1)


def addresses(n, tag):
    return ["%s%05d@example.jp" % (tag, i) for i in range(n)]


def broadcast(addrs, bid=None, subject="【緊急】台風接近に伴う臨時休校"):
    bc = {"tenant": "sakura-hs", "category": "emergency",
          "subject": subject,
          "body": "保護者各位\n明日は臨時休校とします。\n",
          "channels": ["email"],
          "recipients": [{"id": "r-%d" % i, "email": a}
                         for i, a in enumerate(addrs)]}
    if bid:
        bc["id"] = bid
    return bc


def xpending_count(r, stream, group="kairand"):
    try:
        v = r.call("XPENDING", stream, group)
    except RedisError as e:
        if "NOGROUP" in str(e) or "no such key" in str(e).lower():
            return 0
        raise
    return int(v[0])


def leftovers(r, streams=STREAMS + ("kairan:broadcasts",)):
    """What is still in the queue: pending per stream, retry, dlq."""
    out = {s: xpending_count(r, s) for s in streams}
    out["retry"] = int(r.call("ZCARD", "kairan:retry"))
    out["dlq"] = int(r.call("XLEN", "kairan:dlq"))
    return out


def assert_nothing_left(r, timeout=10):
    """Eventually nothing pending in any stream, nothing to retry, no DLQ."""
    def empty():
        lo = leftovers(r)
        return lo if not any(lo.values()) else None
    try:
        wait_for(empty, timeout, 0.2, what="empty queue")
    except AssertionError:
        raise AssertionError("left in the queue: %r" % (leftovers(r),)) from None


def assert_account(k, bid, inbox, addrs, label):
    """The broadcast ended done, the account is exact, every recipient got
    the message; returns the number of duplicates (and prints it)."""
    h = k.bc(bid)
    n = len(addrs)
    tap.eq(h.get("status"), "done", "%s: status done" % label)
    tap.eq(int(h.get("jobs", -1)), n, "%s: jobs == recipients" % label)
    c = k.counts(bid).get("email", {})
    tap.eq(c.get("delivered", 0), n, "%s: n:email:delivered == N" % label)
    tap.eq({s: v for s, v in c.items() if s not in ("delivered", "total") and v},
           {}, "%s: nothing failed, expired or cancelled" % label)
    inbox.poll()
    got = set(inbox.per_rcpt)
    want = set(addrs)
    tap.ok(got == want, "%s: every recipient got the message (set equality)" % label,
           "missing %d (e.g. %r); unexpected %d (e.g. %r)"
           % (len(want - got), sorted(want - got)[:5], len(got - want),
              sorted(got - want)[:5]))
    dups = inbox.duplicates()
    tap.diag("duplicates: %d (%s: %d messages for %d recipients, %d recipients "
             "got more than one)" % (dups, label, inbox.count, n, inbox.dup_rcpts()))
    return dups


def elapsed(t0):
    return "%.1fs" % (time.monotonic() - t0)


T_START = time.monotonic()

# ---------------------------------------------------------------- 1. kill -9

N1 = scale(20000, minimum=200)
with tap.check("kill -9 of one of two kairand mid-broadcast (%d recipients), "
               "restart: delivered, exact account, nothing pending" % N1):
    t0 = time.monotonic()
    out = tmpdir("crash-kill9")
    with Redis(out) as r, FakeSMTP(out, tls="none") as smtp:
        k = Kairan(out, r, smtp=smtp, conf=conf())
        inbox = Inbox(smtp)
        d = [k.start(), k.start()]
        for p in d:
            p.wait_output('"msg":"ready"', 15)
        addrs = addresses(N1, "k")
        bid = k.submit(broadcast(addrs))
        at = rnd.uniform(0.15, 0.35)
        wait_for(lambda: inbox.at_least(int(N1 * at)), 60, 0.05,
                 what="%d%% of the messages" % int(at * 100))
        victim = rnd.randrange(2)
        d[victim].kill(signal.SIGKILL)
        tap.eq(d[victim].wait(10), -signal.SIGKILL, "kill -9: kairand killed")
        at_kill = inbox.poll()
        tap.diag("killed kairand #%d after %d messages (%.0f%%)"
                 % (victim + 1, at_kill, 100.0 * at_kill / N1))
        # A bit more traffic from the survivor, then a random pause.
        wait_for(lambda: inbox.at_least(min(N1, at_kill + N1 // 10)), 60, 0.05,
                 what="the survivor to go on sending")
        time.sleep(rnd.uniform(0, 1.0))
        d[victim] = k.start(name="kairand-restarted")
        h = k.wait_done(bid, 60 + N1 / 100)
        assert_account(k, bid, inbox, addrs, "kill -9")
        assert_nothing_left(r)
        reclaimed = sum(p.stderr_text().count("reclaimed jobs of a stopped process")
                        for p in d)
        tap.diag("reclaims logged by the live processes: %d" % reclaimed)
        for i, p in enumerate(d):
            tap.ok(p.alive(), "kill -9: kairand #%d still running at the end" % (i + 1),
                   p.stderr_text()[-2000:])
            tap.eq(p.stop(10), 0, "kill -9: kairand #%d stops with 0" % (i + 1))
    tap.diag("kill -9 mid-broadcast took %s" % elapsed(t0))

# ------------------------------------------------- 1b. kill -9 during expansion

N1B = scale(20000, minimum=500)
with tap.check("kill -9 of the only kairand during the expansion (%d "
               "recipients), restart: exactly one job per recipient" % N1B):
    t0 = time.monotonic()
    out = tmpdir("crash-expand")
    with Redis(out) as r, FakeSMTP(out, tls="none") as smtp:
        # Small pages: more checkpoints, a wider window to land in.
        k = Kairan(out, r, smtp=smtp, conf=conf(dispatcher={"expand_page": "100"}))
        inbox = Inbox(smtp)
        addrs = addresses(N1B, "x")
        bid = k.submit(broadcast(addrs))   # before any kairand runs
        # The first page is short (50), the others expand_page (100).
        pages = 1 + (max(N1B - 50, 0) + 99) // 100
        target = rnd.randint(1, max(1, pages // 2))
        key = "kairan:bc:" + bid
        d = k.start()
        caught = None
        with r.client() as c:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                xc, expanded = c.call("HMGET", key, "xc", "expanded")
                if expanded == b"1":
                    break
                if xc is not None and int(xc) >= target:
                    d.kill(signal.SIGKILL)
                    caught = int(xc)
                    break
                if not d.alive():
                    raise AssertionError("kairand exited: %s" % d.stderr_text()[-2000:])
        if caught is None:
            d.kill(signal.SIGKILL)
        d.wait(10)
        after = k.bc(bid)
        if after.get("expanded") != "1":
            tap.diag("killed during the expansion: checkpoint xc=%s of %d pages, "
                     "jobs=%s of %d" % (after.get("xc"), pages, after.get("jobs"), N1B))
        else:
            tap.diag("could not catch the expansion (it was over); went on")
        time.sleep(rnd.uniform(0, 0.5))
        d2 = k.start(name="kairand-restarted")
        h = k.wait_done(bid, 60 + N1B / 100)
        tap.eq(int(h.get("n:email:total", -1)), N1B,
               "expansion kill: n:email:total == N")
        tap.eq(int(h.get("xc", -1)), pages, "expansion kill: every page committed once")
        assert_account(k, bid, inbox, addrs, "expansion kill")
        assert_nothing_left(r)
        tap.eq(d2.stop(10), 0, "expansion kill: restarted kairand stops with 0")
    tap.diag("kill -9 during expansion took %s" % elapsed(t0))

# ------------------------------------------------------------- 2. SIGTERM

N2 = scale(300, minimum=60)
MARGIN_S = 2.0


def in_flight(smtp):
    """Transactions the relay has begun (MAIL) but not finished (DATA)."""
    evs = smtp.events()
    return (sum(1 for e in evs if e.get("ev") == "mail")
            - sum(1 for e in evs if e.get("ev") == "data"))


# drain_ms 1000: the 0.3 s sends in flight finish and are recorded.
# drain_ms 0: they are aborted, stay pending, and are reclaimed.
for drain_ms in ("1000", "0"):
    drain_s = int(drain_ms) / 1000.0
    label = "SIGTERM drain_ms=%s" % drain_ms
    with tap.check("%s while sends are in flight: exit 0 within drain_ms + %gs, "
                   "the rest delivered by a new kairand, none lost"
                   % (label, MARGIN_S)):
        t0 = time.monotonic()
        out = tmpdir("crash-sigterm")
        slow = {"rules": [{"match": "@", "stage": "rcpt", "action": "delay",
                           "seconds": 0.3}]}
        with Redis(out) as r, FakeSMTP(out, tls="none", control=slow) as smtp:
            k = Kairan(out, r, smtp=smtp,
                       conf=conf(dispatcher={"drain_ms": drain_ms}))
            inbox = Inbox(smtp)
            d = k.start()
            d.wait_output('"msg":"ready"', 15)
            addrs = addresses(N2, "t")
            bid = k.submit(broadcast(addrs))
            # Heavy sending: traffic for a while, every connection busy.
            wait_for(lambda: len(smtp.events("data")) >= 20, 30, 0.05,
                     what="20 messages at the relay")
            time.sleep(rnd.uniform(0, 0.3))
            wait_for(lambda: in_flight(smtp) >= 5, 10, 0.01,
                     what="5 sends in flight")
            flying = in_flight(smtp)
            msgs_before = inbox.poll()
            ts = time.monotonic()
            d.kill(signal.SIGTERM)
            rc = d.wait(drain_s + 15)
            took = time.monotonic() - ts
            tap.diag("%s: %d sends in flight, %d messages stored; exit %s after "
                     "%.2fs; %d messages stored after the exit"
                     % (label, flying, msgs_before, rc, took, inbox.poll()))
            tap.eq(rc, 0, "%s: exit status 0" % label)
            tap.ok(took <= drain_s + MARGIN_S,
                   "%s: exited within drain_ms + %gs" % (label, MARGIN_S),
                   "took %.2fs" % took)
            tap.ok("draining" in d.stderr_text(), "%s: the drain is logged" % label,
                   d.stderr_text()[-2000:])
            if drain_s > 0 and took < drain_s:
                # It stopped before the deadline, so every send it began
                # finished and its result was recorded before the exit.
                tap.eq(k.counts(bid).get("email", {}).get("delivered", 0),
                       inbox.poll(), "%s: every message the relay accepted "
                       "is recorded as delivered at exit" % label)
            smtp.clear_control()
            d2 = k.start(name="kairand-after-sigterm")
            h = k.wait_done(bid, 60)
            assert_account(k, bid, inbox, addrs, label)
            assert_nothing_left(r)
            tap.eq(d2.stop(10), 0, "%s: second kairand stops with 0" % label)
        tap.diag("%s took %s" % (label, elapsed(t0)))

# ----------------------------------------------- 3. Redis unreachable at start

N3 = 20
with tap.check("Redis unreachable at start: kairand stays up, says so, and "
               "delivers once Redis is there"):
    t0 = time.monotonic()
    out = tmpdir("crash-noredis")
    port = free_port()
    r = Redis(out, port=port, start=False)     # nothing listens yet
    with FakeSMTP(out, tls="none") as smtp:
        k = Kairan(out, r, smtp=smtp, conf=conf())
        inbox = Inbox(smtp)
        d = k.start()

        def redis_lines():
            """warn/error lines about Redis (not the "starting" info line)."""
            out = []
            for line in d.stderr_text().splitlines():
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("level") in ("warn", "error") and "redis" in line.lower():
                    out.append(line)
            return out

        def said_so():
            if not d.alive():
                raise AssertionError("kairand exited (%s) without Redis:\n%s"
                                     % (d.returncode, d.stderr_text()[-2000:]))
            return [ln for ln in redis_lines() if "connect" in ln.lower()]
        try:
            wait_for(said_so, 5, what="a warn/error log line about Redis and connect")
        except AssertionError:
            pass
        said = said_so()
        tap.ok(said, "no Redis: a warn/error log line says Redis cannot be "
               "connected to", "warn/error lines about Redis:\n"
               + "\n".join(redis_lines()[:5]))
        addr = "127.0.0.1:%d" % port
        tap.ok(any(addr in ln for ln in redis_lines()),
               "no Redis: the log names the address it cannot reach (%s)" % addr,
               "warn/error lines about Redis:\n" + "\n".join(redis_lines()[:5]))
        if said:
            tap.diag("kairand says: %s" % said[0])
        # Still alive a while later (retrying, no crash).
        time.sleep(2.0)
        tap.ok(d.alive(), "no Redis: kairand still running after 2s",
               "exit %s:\n%s" % (d.returncode, d.stderr_text()[-2000:]))
        r.start()
        try:
            addrs = addresses(N3, "u")
            bid = k.submit(broadcast(addrs))
            k.wait_done(bid, 30)
            assert_account(k, bid, inbox, addrs, "late Redis")
            assert_nothing_left(r)
            tap.eq(d.stop(10), 0, "late Redis: kairand stops with 0")
        finally:
            r.stop()
    tap.diag("Redis unreachable at start took %s" % elapsed(t0))

# ------------------------------------------- 4. Redis restart mid-broadcast

N4 = scale(5000, minimum=200)
with tap.check("Redis restarted (AOF on) mid-broadcast (%d recipients): "
               "kairand reconnects, the broadcast completes" % N4):
    t0 = time.monotonic()
    out = tmpdir("crash-redis-restart")
    with Redis(out, appendonly=True) as r, FakeSMTP(out, tls="none") as smtp:
        k = Kairan(out, r, smtp=smtp, conf=conf())
        inbox = Inbox(smtp)
        d = k.start()
        d.wait_output('"msg":"ready"', 15)
        addrs = addresses(N4, "q")
        bid = k.submit(broadcast(addrs))
        at = rnd.uniform(0.2, 0.5)
        wait_for(lambda: inbox.at_least(int(N4 * at)), 60, 0.05,
                 what="%d%% of the messages" % int(at * 100))
        before = inbox.poll()
        r.stop()
        down = rnd.uniform(0.3, 1.5)
        time.sleep(down)
        r.start()
        tap.diag("Redis restarted after %d messages, down %.1fs" % (before, down))
        d.wait_output("reconnected", 30)
        h = k.wait_done(bid, 60 + N4 / 100)
        tap.ok(d.alive(), "Redis restart: kairand still running",
               d.stderr_text()[-2000:])
        assert_account(k, bid, inbox, addrs, "Redis restart")
        assert_nothing_left(r)
        tap.eq(d.stop(10), 0, "Redis restart: kairand stops with 0")
    tap.diag("Redis restart took %s" % elapsed(t0))

# --------------------------------------------------- 5. maxmemory-policy

with tap.check("maxmemory-policy allkeys-lru: kairand refuses to run (exit 1)"):
    out = tmpdir("crash-policy")
    with Redis(out, extra_args=("--maxmemory-policy", "allkeys-lru")) as r:
        k = Kairan(out, r, email="outbox", conf=conf())
        d = k.start()
        rc = d.wait(15)
        log = d.stderr_text()
        tap.eq(rc, 1, "allkeys-lru: exit status 1")
        tap.ok("maxmemory" in log and "noeviction" in log,
               "allkeys-lru: the log names maxmemory-policy and noeviction",
               log[-2000:])
        tap.ok("allkeys-lru" in log, "allkeys-lru: the log names the policy found",
               log[-2000:])
        tap.eq(r.call("EXISTS", "kairan:q:email:normal"), 0,
               "allkeys-lru: nothing created in that Redis")

# -------------------------------------------------------- 6. --check

with tap.check("kairand --check: claim_idle_ms must exceed smtp.timeout_ms + "
               "dispatcher.drain_ms"):
    out = tmpdir("crash-check")
    r = Redis(out, start=False)

    def check(name, claim, timeout, drain):
        k = Kairan(out, r, email="outbox", name=name, conf={
            "queue": {"claim_idle_ms": claim}, "smtp": {"timeout_ms": timeout},
            "dispatcher": {"drain_ms": drain}})
        return subprocess.run([KAIRAND, "-c", k.conf, "--check"],
                              capture_output=True, text=True, timeout=30)

    for name, claim, tmo, drain in (("equal", "2000", "1000", "1000"),
                                    ("smaller", "30s", "60s", "10s")):
        cp = check("check-" + name, claim, tmo, drain)
        tap.eq(cp.returncode, 1, "--check: claim_idle_ms %s timeout+drain -> exit 1"
               % name)
        tap.ok("claim_idle_ms" in cp.stderr,
               "--check: the error names claim_idle_ms (%s)" % name, cp.stderr)
    cp = check("check-good", "2001", "1000", "1000")
    tap.eq(cp.returncode, 0, "--check: claim_idle_ms 2001 > 1000 + 1000 -> exit 0")
    tap.ok(cp.stderr.strip() == "", "--check: a good config prints no error",
           cp.stderr)

tap.diag("test_crash.py took %s" % elapsed(T_START))
tap.done()
