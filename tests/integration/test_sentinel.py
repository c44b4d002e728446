#!/usr/bin/python3
"""test_sentinel.py - Redis Sentinel and replicated acknowledgements (issue
19), the fast version: one primary, one replica, three sentinels (Debian's
redis-sentinel on loopback free ports, their own directories), kairand
with the outbox adapter.  tests/faults/test_sentinel_failover.py is the
big one.

  [1] redis.sentinels without redis.sentinel_password_file: kairand --check
      refuses it and says what to set.
  [2] discovery: a rogue sentinel listed first names the replica; kairanctl
      and kairand refuse it (ROLE is not master), ask the real sentinels,
      and a broadcast submitted with redis.wait_replicas = 1 (kairanctl and
      the API) is delivered in full.
  [3] WAIT falls short (wait_replicas = 2, one replica): kairanctl exits 3
      with the id on stdout, the API answers 503 with the id; the
      broadcast is stored (a retry with the same key is safe).
  [4] failover: kill -9 of the primary; a submit during the election goes
      through once the sentinels name the replica, kairand follows
      (+switch-master) and delivers it; the time from the kill to the
      delivery is printed.
"""

import http.client
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403
from sentinels import RogueSentinel, SentinelGroup  # noqa: E402

tap = TAP()
N = 20


def bcast(tag, key=None):
    b = {"tenant": "sakura", "category": "emergency", "priority": "urgent",
         "subject": "【緊急】%s" % tag, "body": "本文です。", "channels": ["email"],
         "recipients": [{"id": "r-%d" % i, "email": "g%d-%s@example.jp" % (i, tag)}
                        for i in range(N)]}
    if key:
        b["id"] = key
    return b


def post(port, token, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/v1/broadcasts", body=json.dumps(body, ensure_ascii=False).encode(),
              headers={"Authorization": "Bearer " + token,
                       "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, {"raw": data}


def delivered(k, bid):
    return k.counts(bid).get("email", {}).get("delivered", 0)


out = tmpdir("sentinel")
with SentinelGroup(out, replicas=1, sentinels=3) as g:
    replica = g.nodes[1]
    rogue = RogueSentinel(("127.0.0.1", replica.port))
    port = free_port()
    k = Kairan(out, g.proxy, email="outbox",
               conf={"redis": g.redis_conf(), "http": {"listen": "127.0.0.1:%d" % port}})

    with tap.check("[1] sentinels without a password are refused"):
        k.sections["redis"].pop("sentinel_password_file")
        k.write_conf()
        cp = subprocess.run([os.path.join(BUILD, "kairand"), "-c", k.conf, "--check"],
                            capture_output=True, text=True, timeout=30)
        tap.ok(cp.returncode != 0, "kairand --check fails", cp.stderr)
        tap.ok("sentinel_password_file" in cp.stderr
               and "sentinel_allow_no_password" in cp.stderr,
               "the message says what to set", cp.stderr)
        k.sections["redis"]["sentinel_password_file"] = g.password_file
        k.sections["redis"]["sentinels"] = "127.0.0.1:%d,%s" % (rogue.port, g.list)
        k.sections["redis"]["wait_replicas"] = "1"
        k.write_conf()

    token = k.ctl("token", "create", "--role", "admin", "--name", "ops").stdout.strip()

    with tap.check("[2] discovery past a rogue sentinel, WAIT 1 satisfied"):
        cp = k.ctl("submit", "-", input=json.dumps(bcast("one"), ensure_ascii=False))
        tap.eq(cp.returncode, 0, "kairanctl submit exits 0 (WAIT 1 confirmed)")
        b1 = cp.stdout.strip()
        tap.ok(rogue.asked >= 1, "the rogue sentinel was asked first (%d)" % rogue.asked)
        tap.ok(g.primary.call("EXISTS", "kairan:bc:" + b1) == 1,
               "the broadcast is on the primary")
        d = k.start()
        d.wait_output('"msg":"ready"', 30)
        h = k.wait_done(b1, 60)
        tap.eq(delivered(k, b1), N, "kairand delivered it in full")
        tap.ok("not a primary" in d.stderr_text(),
               "kairand refused the address the rogue named (logged)")
        d.wait_output('"msg":"connected","conn":"wait"', 30)
        d.wait_output('"listening"', 30)
        # The discovery ran on libuv's pool, which kairand sizes at 16
        # threads (main.c): the loop's thread, the pool's, any others.
        ntask = len(os.listdir("/proc/%d/task" % d.pid))
        tap.ok(ntask >= 17, "kairand's thread pool has 16 threads (%d tasks)" % ntask)
        st, j = post(port, token, bcast("api-one", key="api-one"))
        tap.eq(st, 202, "POST /v1/broadcasts 202 once WAIT 1 confirms")
        if st == 202:
            k.wait_done(j["id"], 60)
            tap.eq(delivered(k, j["id"]), N, "the API's broadcast is delivered")
        tap.eq(d.stop(15), 0, "kairand stops with 0")
        replica_writes = replica.call("ROLE")[0]
        tap.eq(replica_writes, b"slave", "the replica is still a replica")

    with tap.check("[3] WAIT falls short: exit 3 / 503, with the id"):
        k.sections["redis"]["wait_replicas"] = "2"
        k.sections["redis"]["wait_timeout_ms"] = "300ms"
        k.write_conf()
        cp = k.ctl("submit", "-", input=json.dumps(bcast("two", key="two"), ensure_ascii=False))
        tap.eq(cp.returncode, 3, "kairanctl submit exits 3")
        b2 = cp.stdout.strip()
        tap.ok(b2.startswith("b-"), "the id is printed (%s)" % b2)
        tap.ok("only 1 of 2 replicas" in cp.stderr and "same" in cp.stderr,
               "stderr says how many confirmed and that a retry is safe", cp.stderr)
        tap.ok(g.primary.call("EXISTS", "kairan:bc:" + b2) == 1, "the broadcast is stored")
        cp2 = k.ctl("submit", "-", input=json.dumps(bcast("two", key="two"), ensure_ascii=False))
        tap.eq(cp2.stdout.strip(), b2, "a retry with the same key names the same broadcast")
        d = k.start()
        d.wait_output('"msg":"ready"', 30)
        # Submits go on the "wait" connection, which comes up on its own
        # (a loaded machine can answer "ready" before it): wait for it.
        d.wait_output('"msg":"connected","conn":"wait"', 30)
        d.wait_output('"listening"', 30)
        st, j = post(port, token, bcast("api-two", key="api-two"))
        tap.eq(st, 503, "POST /v1/broadcasts 503")
        tap.ok(str(j.get("id", "")).startswith("b-") and "replicas" in j.get("error", ""),
               "the 503 carries the id and says why", json.dumps(j))
        tap.eq(d.stop(15), 0, "kairand stops with 0")

    with tap.check("[4] failover: kill -9 of the primary, the next broadcast is delivered"):
        k.sections["redis"]["wait_replicas"] = "0"
        k.write_conf()
        d = k.start()
        d.wait_output('"msg":"ready"', 30)
        old = g.primary
        t_kill = g.kill_primary()
        cp = k.ctl("submit", "-", input=json.dumps(bcast("three"), ensure_ascii=False),
                   timeout=60)
        tap.eq(cp.returncode, 0, "kairanctl submit during the failover exits 0", )
        if cp.returncode != 0:
            tap.diag(cp.stderr)
        b3 = cp.stdout.strip()
        new = g.wait_new_primary(30)
        t_elected = time.monotonic()
        tap.ok(new.port != old.port, "the sentinels promoted the replica")
        wait_for(lambda: delivered(k, b3) >= 1, 60, 0.02, what="first delivery after the kill")
        t_first = time.monotonic()
        k.wait_done(b3, 60)
        tap.eq(delivered(k, b3), N, "delivered in full after the failover")
        tap.diag("kill -> new primary seen %.2fs; kill -> first delivery %.2fs"
                 % (t_elected - t_kill, t_first - t_kill))
        wait_for(lambda: "switched the primary" in d.stderr_text(), 20, 0.05,
                 what="kairand's +switch-master line")
        tap.ok(True, "kairand saw +switch-master")
        tap.ok(d.alive(), "kairand kept running", d.stderr_text()[-2000:])
        tap.eq(d.stop(15), 0, "kairand stops with 0")
    with tap.check("[5] kairan-backup --sentinels and the demo follow the sentinels"):
        env = dict(os.environ, KAIRAN_BACKUP_SENTINEL_AUTH=g.password_file and
                   open(g.password_file).read().strip())
        env.pop("REDISCLI_AUTH", None)
        bdir = os.path.join(out, "backups")
        cp = subprocess.run([os.path.join(ROOT, "scripts", "backup.sh"), "--sentinels",
                             "127.0.0.1:%d,%s" % (rogue.port, g.list), "--dir", bdir,
                             "--no-key"], capture_output=True, text=True, env=env,
                            timeout=120)
        want = "primary (from the sentinels): 127.0.0.1:%d" % g.primary.port
        tap.ok(cp.returncode == 0 and want in cp.stdout,
               "kairan-backup backs up the primary the sentinels name",
               cp.stdout[-1500:] + cp.stderr[-1500:])
        env = dict(os.environ, KAIRAN_REDIS_SENTINELS=g.list,
                   KAIRAN_DEMO_SENTINEL_PASSWORD_FILE=g.password_file,
                   KAIRAN_DEMO_RECIPIENTS="12", KAIRAN_DEMO_CONSOLE="0", BUILD=BUILD)
        env.pop("KAIRAN_REDIS_URL", None)
        cp = subprocess.run([os.path.join(ROOT, "scripts", "demo.sh")], capture_output=True,
                            text=True, env=env, timeout=180, cwd=ROOT)
        tap.ok(cp.returncode == 0 and "demo: 12 messages delivered" in cp.stdout,
               "the demo runs through the sentinels", cp.stdout[-1500:] + cp.stderr[-1500:])
    rogue.stop()

tap.done()
