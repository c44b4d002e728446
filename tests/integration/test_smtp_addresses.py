#!/usr/bin/python3
"""test_smtp_addresses.py - a relay's name with several addresses (RFC
5321 5.1: the client tries each address of the name in turn).  A school's
relay name with an AAAA record whose route is not there used to fail
every message over to SendGrid, or hold it, while its A record answered.

The name comes from a hosts file of the test's own, given to kairand
alone through nss_wrapper (LD_PRELOAD, NSS_WRAPPER_HOSTS); /etc/hosts is
never touched.  Nothing listens on 127.0.0.2 and 127.0.0.3 at the relay's
port: a connection there is refused at once.

  [0] the hosts file gives the addresses in its order (nss_wrapper does
      not sort them): the bad ones come first, so the test bites;
  [1] relay.test = 127.0.0.2, 127.0.0.3, 127.0.0.1: every message reaches
      the relay, none fails; kairand's log names each refused address
      (the relay's address, never a recipient's) and says it tries the
      next;
  [2] the relay restarts (every open connection dies): the new
      connections go to the address that worked, first: no address is
      refused again;
  [3] relay.test = 127.0.0.2, 127.0.0.3 only: each message ends in the
      dead-letter stream (queue.max_attempts = 1) with a reason naming the
      refusal and how many addresses were tried.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_smtp_addresses.py
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("smtp-addresses")
N = 8
FAILED = "a relay address failed; trying the next one of its name"

def hosts(tag, addrs):
    return hosts_env(out, tag, "relay.test", addrs)


def bc(tag):
    return {"tenant": "t1", "priority": "urgent", "subject": "件名 " + tag,
            "body": "本文", "channels": ["email"],
            "recipients": [{"id": "%s-%d" % (tag, i),
                            "email": "%s%d@example.jp" % (tag, i)}
                           for i in range(N)]}


def send(k, tag):
    """Submit bc(tag) and wait for its end: (its id, its e-mail counts)."""
    bid = k.submit(bc(tag))
    k.wait_done(bid, 60)
    return bid, k.counts(bid).get("email", {})


def log_lines(d):
    lines = []
    for ln in d.stderr_text().splitlines():
        try:
            lines.append(json.loads(ln))
        except ValueError:
            continue
    return lines


def refused(d):
    return [e for e in log_lines(d) if e.get("msg") == FAILED]


with FakeSMTP(out) as relay:
    env = hosts("three", ["127.0.0.2", "127.0.0.3", "127.0.0.1"])

    with tap.check("[0] the hosts file's order reaches the resolver"):
        cp = subprocess.run(["getent", "ahosts", "relay.test"],
                            capture_output=True, text=True, timeout=30,
                            env=dict(os.environ, **env))
        order = []
        for ln in cp.stdout.splitlines():
            a = ln.split()[0]
            if a not in order:
                order.append(a)
        tap.eq(order, ["127.0.0.2", "127.0.0.3", "127.0.0.1"],
               "bad addresses first")

    with Redis(os.path.join(out, "r1")) as r:
        k = Kairan(out, r, smtp=relay, name="k1", conf={
            "smtp": {"url": "smtp://relay.test:%d" % relay.port,
                     "connections": "2"}})
        d = k.start(extra_env=env)
        d.wait_output('"ready"', 20)

        with tap.check("[1] three addresses, two refusing: every message "
                       "through the third"):
            bid, cnt = send(k, "a")
            tap.eq(cnt.get("delivered"), N, "all delivered: %s" % cnt)
            got = sorted(rc for m in relay.messages() for rc in m["rcpt"])
            tap.eq(got, sorted("a%d@example.jp" % i for i in range(N)),
                   "the relay has each one")
            ev = refused(d)
            addrs = sorted(set(e.get("address") for e in ev))
            tap.eq(addrs, ["127.0.0.2", "127.0.0.3"],
                   "each refused address logged")
            tap.ok(all(e.get("host") == "relay.test" for e in ev),
                   "with the relay's name")
            tap.ok(all("refused" in e.get("reason", "").lower() for e in ev),
                   "and why: %s" % (ev[0].get("reason") if ev else None))
            tap.ok("@example.jp" not in d.stderr_text(),
                   "no recipient in the log")
            before = len(ev)

        with tap.check("[2] after the relay restarts, new connections go "
                       "to the address that worked first"):
            n_connect = len(relay.events("connect"))
            relay.restart()
            bid, cnt = send(k, "b")
            tap.eq(cnt.get("delivered"), N, "all delivered: %s" % cnt)
            # The restarted relay's events file goes on: count anew.
            connects = relay.events("connect")
            tap.ok(len(connects) > n_connect, "new connections were opened "
                   "(%d, %d before the restart)" % (len(connects), n_connect))
            tap.eq(len(refused(d)), before, "no address refused again")
        d.stop()
        tap.eq(d.returncode, 0, "kairand stopped cleanly")

    with Redis(os.path.join(out, "r2")) as r:
        k = Kairan(out, r, smtp=relay, name="k2", conf={
            "smtp": {"url": "smtp://relay.test:%d" % relay.port},
            "queue": {"max_attempts": "1"}})
        d = k.start(extra_env=hosts("two", ["127.0.0.2", "127.0.0.3"]))
        d.wait_output('"ready"', 20)

        with tap.check("[3] every address refusing: dead-lettered, the "
                       "reason says how many were tried and how each "
                       "failed"):
            bid, cnt = send(k, "c")
            tap.eq(cnt.get("failed"), N, "all failed: %s" % cnt)
            cp = k.ctl("dlq", "list", "--json")
            tap.eq(cp.returncode, 0, "dlq list")
            dl = [e for e in json.loads(cp.stdout) if e.get("broadcast") == bid]
            tap.eq(len(dl), N, "each one in the dead-letter stream")
            reasons = set(e.get("reason", "") for e in dl)
            tap.ok(all("each of the 2 addresses of relay.test: 127.0.0.2 "
                       "refused, 127.0.0.3 refused)" in x for x in reasons),
                   "reason: %s" % sorted(reasons))
        d.stop()
tap.done()
