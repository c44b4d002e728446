#!/usr/bin/python3
"""test_smtp_addresses_adv.py - hostile addresses for a relay name with
several addresses (adapters/smtp.c; written by a review that set out to
break test_smtp_addresses.py's change, and found [3] and [4] failing).
Same nss_wrapper hosts file as test_smtp_addresses.py.

  [1] black hole first (a listener on 127.0.0.3 whose accept queue is
      full: the SYN is dropped, connect() hangs) with smtp.timeout_ms
      1000: every message is delivered through the next address, once;
  [2] kairand stopped while every connection waits on a black hole (two
      of them, then the relay): it exits 0; the messages are not lost: a
      second kairand with a good hosts file delivers each exactly once;
  [3] an address that takes the TCP connection and closes it at once
      (a relay host whose smtpd is down behind a proxy) before the good
      one: every message through the good one (RFC 5321 5.1: a
      connection that fails before its greeting is a failed address);
  [4] the address that last worked is not pinned: relay.test = .2, .1;
      .2 is down at first, so .1 worked; then .1 only accepts and closes
      and .2 is a working relay: every message reaches .2;
  [5] four addresses whose connect() fails at once (synchronously), then
      the relay: delivered; five failing before a sixth: dead-lettered
      (at most five addresses are tried).

Run:  BUILD=build /usr/bin/python3 tests/integration/test_smtp_addresses_adv.py
"""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("smtp-addresses-adv")
N = 6

def hosts(tag, addrs):
    return hosts_env(out, tag, "relay.test", addrs)


def bc(tag, n=N):
    return {"tenant": "t1", "priority": "urgent", "subject": "件名 " + tag,
            "body": "本文", "channels": ["email"],
            "recipients": [{"id": "%s-%d" % (tag, i),
                            "email": "%s%d@example.jp" % (tag, i)}
                           for i in range(n)]}


def send(k, tag):
    """Submit bc(tag) and wait for its end: (its id, its e-mail counts)."""
    bid = k.submit(bc(tag))
    k.wait_done(bid, 60)
    return bid, k.counts(bid).get("email", {})


class BlackHole:
    """A listener whose accept queue is full: further SYNs are dropped."""

    def __init__(self, host, port):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, port))
        self.ls.listen(0)
        self.fill = []
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect((host, port))
            except BlockingIOError:
                pass
            self.fill.append(s)

        def connected(s):
            try:
                s.getpeername()
                return True
            except OSError:
                return False
        # The queue holds what it can; the rest of the fillers wait too.
        wait_for(lambda: sum(map(connected, self.fill)) >= 1, 10,
                 what="the black hole's queue filled")
        probe = socket.socket()
        probe.settimeout(1.0)
        try:
            probe.connect((host, port))
            self.works = False
        except (socket.timeout, OSError):
            self.works = True
        probe.close()

    def close(self):
        for s in self.fill:
            s.close()
        self.ls.close()


class AcceptClose:
    """Takes each TCP connection and closes it at once."""

    def __init__(self, host, port):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, port))
        self.ls.listen(64)
        self.n = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.ls.settimeout(0.2)
        while not self.stop:
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.n += 1
            s.close()

    def close(self):
        self.stop = True
        self.t.join()
        self.ls.close()


def rcpts(relay, tag):
    return sorted(rc for m in relay.messages() for rc in m["rcpt"]
                  if rc.startswith(tag))


with FakeSMTP(out) as relay:
    P = relay.port

    with tap.check("[1] a black hole first, smtp.timeout_ms 1000: every "
                   "message through the next address, once"):
        bh = BlackHole("127.0.0.3", P)
        tap.ok(bh.works, "the black hole drops SYNs")
        with Redis(os.path.join(out, "r1")) as r:
            k = Kairan(out, r, smtp=relay, name="k1", conf={
                "smtp": {"url": "smtp://relay.test:%d" % P,
                         "connections": "2", "timeout_ms": "1000"}})
            d = k.start(extra_env=hosts("bh", ["127.0.0.3", "127.0.0.1"]))
            d.wait_output('"ready"', 20)
            t0 = time.time()
            bid = k.submit(bc("a"))
            k.wait_done(bid, 60)
            took = time.time() - t0
            cnt = k.counts(bid).get("email", {})
            tap.eq(cnt.get("delivered"), N, "all delivered: %s (%.1f s)"
                   % (cnt, took))
            tap.eq(rcpts(relay, "a"),
                   sorted("a%d@example.jp" % i for i in range(N)),
                   "each once at the relay")
            d.stop()
            tap.eq(d.returncode, 0, "kairand stopped cleanly")
        bh.close()

    with tap.check("[2] stopped while each connection waits on a black "
                   "hole: exits 0, nothing lost or doubled"):
        bh3 = BlackHole("127.0.0.3", P)
        bh4 = BlackHole("127.0.0.4", P)
        with Redis(os.path.join(out, "r2")) as r:
            k = Kairan(out, r, smtp=relay, name="k2", conf={
                "smtp": {"url": "smtp://relay.test:%d" % P,
                         "connections": "2", "timeout_ms": "4000"},
                "dispatcher": {"drain_ms": "1000"}})
            d = k.start(extra_env=hosts(
                "bh2", ["127.0.0.3", "127.0.0.4", "127.0.0.1"]))
            d.wait_output('"ready"', 20)
            bid = k.submit(bc("b"))
            # The first address timed out, the second waits.
            d.wait_output('"address":"127.0.0.3"', 30)
            d.stop(timeout=20)
            tap.eq(d.returncode, 0, "kairand exited 0 mid-fallback")
            err = d.stderr_text()
            tap.ok("AddressSanitizer" not in err and "LeakSanitizer" not in err
                   and "runtime error" not in err, "no sanitizer report")
            d2 = k.start(extra_env=hosts("good", ["127.0.0.1"]))
            d2.wait_output('"ready"', 20)
            k.wait_done(bid, 60)
            cnt = k.counts(bid).get("email", {})
            tap.eq(cnt.get("delivered"), N, "all delivered after: %s" % cnt)
            tap.eq(rcpts(relay, "b"),
                   sorted("b%d@example.jp" % i for i in range(N)),
                   "each once at the relay")
            d2.stop()
            tap.eq(d2.returncode, 0, "second kairand stopped cleanly")
        bh3.close()
        bh4.close()

    with tap.check("[3] an address that takes TCP and closes at once, "
                   "before the good one"):
        ac = AcceptClose("127.0.0.2", P)
        with Redis(os.path.join(out, "r3")) as r:
            k = Kairan(out, r, smtp=relay, name="k3", conf={
                "smtp": {"url": "smtp://relay.test:%d" % P,
                         "connections": "2"},
                "queue": {"max_attempts": "1"}})
            d = k.start(extra_env=hosts("ac", ["127.0.0.2", "127.0.0.1"]))
            d.wait_output('"ready"', 20)
            bid, cnt = send(k, "c")
            tap.diag("accept-close first: %s, %d connections to it"
                     % (cnt, ac.n))
            tap.ok(ac.n >= 1, "the accept-close address was tried")
            tap.eq(cnt.get("delivered"), N,
                   "delivered through the address that works: %s" % cnt)
            d.stop()
        ac.close()

with FakeSMTP(out, name="smtp5") as relay5:
    with tap.check("[5] four addresses whose connect() fails at once "
                   "(fe80:: without a scope: EINVAL, synchronous), then the "
                   "relay: delivered; all five failing: dead-lettered"):
        with Redis(os.path.join(out, "r5")) as r:
            k = Kairan(out, r, smtp=relay5, name="k5", conf={
                "smtp": {"url": "smtp://relay.test:%d" % relay5.port,
                         "connections": "2"},
                "queue": {"max_attempts": "1"}})
            d = k.start(extra_env=hosts(
                "sync", ["fe80::1", "fe80::2", "fe80::3", "fe80::4",
                         "127.0.0.1"]))
            d.wait_output('"ready"', 20)
            bid, cnt = send(k, "g")
            tap.eq(cnt.get("delivered"), N, "through the fifth: %s" % cnt)
            d.stop()
            tap.eq(d.returncode, 0, "stopped cleanly")
            d = k.start(extra_env=hosts(
                "sync5", ["fe80::1", "fe80::2", "fe80::3", "fe80::4",
                          "fe80::5", "127.0.0.1"]))
            d.wait_output('"ready"', 20)
            bid, cnt = send(k, "h")
            tap.eq(cnt.get("failed"), N, "a sixth address is never tried "
                   "(MAX_ADDRS 5): %s" % cnt)
            cp = k.ctl("dlq", "list", "--json")
            reasons = set(e.get("reason", "") for e in json.loads(cp.stdout)
                          if e.get("broadcast") == bid)
            tap.ok(reasons and all(
                "(each of the 5 addresses of relay.test: fe80::1 failed, "
                "fe80::2 failed, fe80::3 failed, fe80::4 failed, fe80::5 "
                "failed)" in x for x in reasons),
                "the reason lists how each address failed: %s"
                % sorted(reasons))
            d.stop()
            tap.eq(d.returncode, 0, "stopped cleanly")

relay2 = None
with tap.check("[4] the address that last worked is not pinned once it "
               "only accepts and closes"):
    relay1 = FakeSMTP(out, name="smtp-p1", host="127.0.0.1")
    P = relay1.port
    with Redis(os.path.join(out, "r4")) as r:
        k = Kairan(out, r, smtp=relay1, name="k4", conf={
            "smtp": {"url": "smtp://relay.test:%d" % P,
                     "connections": "2"},
            "queue": {"max_attempts": "1"}})
        d = k.start(extra_env=hosts("pin", ["127.0.0.2", "127.0.0.1"]))
        d.wait_output('"ready"', 20)
        bid, cnt = send(k, "d")
        tap.eq(cnt.get("delivered"), N, "phase 1 via .1: %s" % cnt)
        relay1.stop()
        ac = AcceptClose("127.0.0.1", P)
        relay2 = FakeSMTP(out, name="smtp-p2", host="127.0.0.2", port=P)
        bid, cnt = send(k, "e")
        tap.diag("phase 2: %s; accept-close took %d connections, relay .2 "
                 "has %d" % (cnt, ac.n, len(rcpts(relay2, "e"))))
        tap.eq(cnt.get("delivered"), N,
               "phase 2 via .2 (the resolver's first, working): %s" % cnt)
        d.stop()
        # Control: a fresh kairand (nothing pinned) with the same hosts
        # file goes to .2 first, as the resolver orders them.
        d3 = k.start(extra_env=hosts("pin", ["127.0.0.2", "127.0.0.1"]))
        d3.wait_output('"ready"', 20)
        bid, cnt = send(k, "f")
        tap.eq(cnt.get("delivered"), N, "control: a fresh kairand delivers "
               "through .2: %s" % cnt)
        d3.stop()
        ac.close()
        relay2.stop()
tap.done()
