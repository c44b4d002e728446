#!/usr/bin/python3
"""test_retention_dlq.py - the dead-letter queue keeps nothing past
retention (SECURITY-PROMISES.md rows 8 and 9).

A delivery that fails for good leaves a DLQ entry (kairan:dlq): the
broadcast's id, the recipient's field, the job as it was sent (the sealed
address, the recipient id), the provider's reason.  Those are delivery
records: they must go with the broadcast's other delivery records
(retention.delivery_days), and with everything else of a closed tenant
(retention.closed_tenant_days).

  [1] two schools, each a broadcast with one address the relay refuses at
      the end of DATA (550): each has its DLQ entry.
  [2] ume is closed (61 days ago, --now) and purged: every DLQ entry of its
      broadcast is gone; momo's is still there.
  [3] a purge after retention.delivery_days: momo's DLQ entry is gone with
      the delivery records (the broadcast itself is kept).

Run:  BUILD=build /usr/bin/python3 tests/integration/test_retention_dlq.py
"""

import datetime
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("retention-dlq")
JST = datetime.timezone(datetime.timedelta(hours=9))


def iso(dt):
    return dt.astimezone(JST).isoformat(timespec="seconds")


def dlq_bcs(redis, P):
    """The broadcast ids named by the DLQ's entries, in order."""
    res = []
    for _id, kv in redis.call("XRANGE", P + "dlq", "-", "+") or []:
        f = {kv[i].decode(): kv[i + 1].decode("utf-8", "replace")
             for i in range(0, len(kv), 2)}
        res.append(f.get("bc", ""))
    return res


with Redis(out) as redis, FakeSMTP(out) as smtp:
    k = Kairan(out, redis, smtp=smtp)
    P = k.prefix
    d = k.start()
    d.wait_output('"listening"', 15)
    smtp.set_control({"rules": [
        {"match": "dead", "action": "5xx", "code": 550, "stage": "data",
         "text": "5.1.1 Recipient address rejected: User unknown"}]})

    bids = {}
    with tap.check("[1] a refused address of each school is in the DLQ"):
        for t in ("ume", "momo"):
            bids[t] = k.submit({
                "tenant": t, "category": "notice", "subject": "お知らせ",
                "body": "本文です。", "channels": ["email"],
                "recipients": [{"id": t + "-1", "email": "dead.%s@example.jp" % t},
                               {"id": t + "-2", "email": "alive.%s@example.jp" % t}]})
        for t in bids:
            k.wait_done(bids[t], 30)
            assert k.counts(bids[t]).get("email", {}).get("failed") == 1, \
                k.counts(bids[t])
        got = dlq_bcs(redis, P)
        assert got.count(bids["ume"]) == 1 and got.count(bids["momo"]) == 1, got
    d.stop()

    now = datetime.datetime.now(JST)
    with tap.check("[2] a closed school's erasure takes its DLQ entries too"):
        cp = k.ctl("tenant", "close", "ume", "--now",
                   iso(now - datetime.timedelta(days=61)))
        assert cp.returncode == 0, cp.stderr
        cp = k.ctl("purge", "--now", iso(now))
        assert cp.returncode == 0, cp.stderr
        assert redis.call("EXISTS", P + "bc:" + bids["ume"]) == 0, "ume not erased"
        got = dlq_bcs(redis, P)
        assert bids["ume"] not in got, got
        assert got.count(bids["momo"]) == 1, got

    with tap.check("[3] after retention.delivery_days the DLQ entry is gone, "
                   "the broadcast kept"):
        cp = k.ctl("purge", "--now", iso(now + datetime.timedelta(days=366)))
        assert cp.returncode == 0, cp.stderr
        assert redis.call("EXISTS", P + "bc:%s:r" % bids["momo"]) == 0
        assert redis.call("EXISTS", P + "bc:" + bids["momo"]) == 1
        got = dlq_bcs(redis, P)
        assert bids["momo"] not in got, got

tap.diag("runtime %.1f s" % (time.monotonic() - T0))
tap.done()
