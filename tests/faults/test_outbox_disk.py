#!/usr/bin/python3
"""test_outbox_disk.py - the outbox adapter when its directory cannot be
written (issue 4, "Faults": "Outbox directory unwritable or disk full:
clear error, jobs retried, not dropped").

Tests run as root, for whom chmod 000 means nothing, and a loop-mounted
tiny filesystem needs privileges CI may not have.  So:

 [1] unwritable: outbox.dir is a regular FILE.  Every write fails
     (ENOTDIR); kairand logs the reason ("not a directory") and retries;
     nothing is delivered, failed or dead-lettered while it lasts.  Then
     the file is replaced by a directory: every message is delivered,
     exactly once each, nothing pending.
 [2] disk full: the broadcast's directory outbox.dir/<id> is first a
     symlink to /dev/null (writes fail with ENOTDIR) until the jobs exist;
     then it is switched atomically (rename of a symlink) to a directory in
     which every job's temporary file name (".tmp-email-<rcpt>-<bindex8>",
     from the blind indexes in bc:<id>:r) is a symlink to /dev/full: the
     open succeeds and write(2) fails with ENOSPC, a real "disk full" on the
     real code path.  The adapter removes its temporary file after a failed
     write (the symlink), so the next attempt finds room: each job must see
     ENOSPC, be retried, and end delivered once; none dropped.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
N = 20


def bcast(bid, tag):
    return {"id": bid, "tenant": "sakura-hs", "category": "notice",
            "subject": "ディスク試験", "body": "本文\n", "channels": ["email"],
            "recipients": [{"id": "%s-%02d" % (tag, i),
                            "email": "%s%02d@example.jp" % (tag, i)}
                           for i in range(N)]}


def retry_lines(d, needle):
    return [ln for ln in d.stderr_text().splitlines()
            if '"retry later"' in ln and needle in ln]


def emls(path):
    found = []
    for dp, _, fs in os.walk(path):
        found += [os.path.join(dp, f) for f in fs if f.endswith(".eml")]
    return found


def conf(outbox):
    return {"outbox": {"dir": outbox},
            "queue": {"retry_base_ms": "100", "retry_cap_ms": "300",
                      "max_attempts": "100", "claim_idle_ms": "3000"},
            "smtp": dict.fromkeys((  # connect, TLS and every reply wait
            "timeout_ms", "greeting_timeout_ms", "mail_timeout_ms",
            "rcpt_timeout_ms", "data_init_timeout_ms",
            "data_xfer_timeout_ms", "data_done_timeout_ms"), "1000"),
            "dispatcher": {"drain_ms": "1000"}}


# ------------------------------------------------------------- [1]
with tap.check("[1] outbox.dir is a file: the reason logged, jobs retried, "
               "none dropped; delivered once the directory is there"):
    out = tmpdir("faults-outbox1")
    box = os.path.join(out, "outbox")
    with open(box, "w") as f:
        f.write("not a directory\n")
    with Redis(out) as r:
        k = Kairan(out, r, email="outbox", conf=conf(box))
        d = k.start()
        d.wait_output('"msg":"ready"', 15)
        bid = k.submit(bcast("unwritable-1", "u"))
        wait_for(lambda: len(retry_lines(d, "not a directory")) >= 2 * N, 30,
                 0.1, what="every job retried twice with 'not a directory'")
        lines = retry_lines(d, "not a directory")
        tap.diag("[1] kairand says: %s" % lines[0][:300])
        levels = sorted(set(json.loads(ln).get("level") for ln in lines))
        tap.diag("[1] %d 'retry later' lines, level(s) %s" % (len(lines), levels))
        c = k.counts(bid).get("email", {})
        tap.eq({s: c.get(s, 0) for s in END_STATES},
               {s: 0 for s in END_STATES},
               "[1] while unwritable: nothing delivered, failed, cancelled, expired")
        tap.eq(int(r.call("XLEN", "kairan:dlq")), 0, "[1] nothing dead-lettered")
        tap.ok(box in lines[0], "[1] the log names the outbox directory",
               lines[0][:300])
        tap.ok(d.alive(), "[1] kairand keeps running")
        os.unlink(box)
        os.mkdir(box)
        h = k.wait_done(bid, 30)
        c = k.counts(bid).get("email", {})
        tap.eq((h.get("status"), c.get("delivered", 0), c.get("failed", 0)),
               ("done", N, 0), "[1] fixed: done, all %d delivered, none failed" % N)
        files = emls(box)
        tap.eq(len(files), N, "[1] one .eml per recipient")
        wait_nothing_pending(r)
        tap.eq(d.stop(10), 0, "[1] kairand stops with 0")

# ------------------------------------------------------------- [2]
with tap.check("[2] disk full (write(2) -> ENOSPC via /dev/full): the reason "
               "logged, every job retried and delivered once"):
    out = tmpdir("faults-outbox2")
    box = os.path.join(out, "outbox")
    os.mkdir(box)
    with Redis(out) as r:
        k = Kairan(out, r, email="outbox", conf=conf(box))
        # The name is kairan's own: submitted before kairand starts, so that
        # its outbox folder can be spoilt before anything is written.
        bid = k.submit(bcast("diskfull-1", "f"))
        bcdir = os.path.join(box, bid)
        os.symlink("/dev/null", bcdir)      # not a directory: writes fail
        d = k.start()
        d.wait_output('"msg":"ready"', 15)
        wait_for(lambda: len(retry_lines(d, "not a directory")) >= N, 30, 0.1,
                 what="every job tried once")

        def fields():
            v = r.call("HGETALL", "kairan:bc:%s:r" % bid) or []
            return {v[i].decode(): v[i + 1].decode() for i in range(0, len(v), 2)}
        f = wait_for(lambda: (lambda x: x if len(x) == N else None)(fields()),
                     10, what="%d fields in bc:r" % N)
        full = os.path.join(out, "full-" + bid)
        os.mkdir(full)
        for field, val in f.items():
            bindex = field.split(":", 1)[1]
            rcpt = val.split("|")[1]
            os.symlink("/dev/full", os.path.join(
                full, ".tmp-email-%s-%s" % (rcpt, bindex[:8])))
        tmp = bcdir + ".new"
        os.symlink(full, tmp)
        os.replace(tmp, bcdir)              # atomic switch
        h = k.wait_done(bid, 30)
        enospc = retry_lines(d, "no space left")
        if enospc:
            tap.diag("[2] kairand says: %s" % enospc[0][:300])
        tap.eq(len(enospc), N, "[2] every job got ENOSPC once and was retried")
        c = k.counts(bid).get("email", {})
        tap.eq((h.get("status"), c.get("delivered", 0), c.get("failed", 0)),
               ("done", N, 0), "[2] done, all %d delivered, none failed" % N)
        files = emls(full)
        tap.eq(len(files), N, "[2] one .eml per recipient")
        tap.ok(all(os.path.isfile(p) and not os.path.islink(p) for p in files)
               and os.path.getsize(files[0]) > 100,
               "[2] the messages are real files")
        left = [x for x in os.listdir(full) if x.startswith(".tmp")]
        tap.eq(left, [], "[2] no temporary file left behind")
        tap.eq(int(r.call("XLEN", "kairan:dlq")), 0, "[2] nothing dead-lettered")
        wait_nothing_pending(r)
        tap.eq(d.stop(10), 0, "[2] kairand stops with 0")

tap.diag("test_outbox_disk.py took %s" % elapsed(T0))
tap.done()
