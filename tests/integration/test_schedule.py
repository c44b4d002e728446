#!/usr/bin/python3
"""test_schedule.py - send_at holds a broadcast until then (status
"scheduled", nothing sent); one cancelled before its time never sends;
broadcasts are counted per category in kairanctl status; a closed
school's scheduled broadcast never sends (tenant close cancels it).
"""
import datetime
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa

tap = TAP()
out = tmpdir("schedule")
JST = datetime.timezone(datetime.timedelta(hours=9))


def at(seconds):
    t = datetime.datetime.now(JST) + datetime.timedelta(seconds=seconds)
    return t.isoformat(timespec="seconds")


def emls(k, bid):
    return glob.glob(os.path.join(k.outbox, bid, "*.eml"))


with Redis(out) as r:
    k = Kairan(out, r, email="outbox")
    d = k.start()
    rc = [{"id": "s%d" % i, "email": "s%d@example.jp" % i} for i in range(5)]
    with tap.check("send_at holds the broadcast until then"):
        b1 = k.submit({"tenant": "t1", "category": "event", "subject": "予定",
                       "body": "本文", "channels": ["email"], "recipients": rc,
                       "send_at": at(4)})
        wait_for(lambda: k.bc(b1).get("status") == "scheduled", 10,
                 what="status scheduled")
        tap.eq(len(emls(k, b1)), 0, "nothing sent before send_at")
        h = k.wait_done(b1, 30)
        tap.eq(len(emls(k, b1)), 5, "sent once due")
        first = int(h["first_ms"])
        tap.ok(first >= int(h["send_at_ms"]), "not before send_at")
    with tap.check("a scheduled broadcast cancelled before its time"):
        b2 = k.submit({"tenant": "t1", "category": "event", "subject": "中止",
                       "body": "本文", "channels": ["email"], "recipients": rc,
                       "send_at": at(3)})
        wait_for(lambda: k.bc(b2).get("status") == "scheduled", 10,
                 what="status scheduled")
        cp = k.ctl("cancel", b2)
        tap.eq(cp.returncode, 0, "cancel exits 0")
        # Checkpoint: a broadcast due after b2's time has been sent.
        b3 = k.submit({"tenant": "t1", "category": "notice", "subject": "後",
                       "body": "本文", "channels": ["email"], "recipients": rc,
                       "send_at": at(5)})
        k.wait_done(b3, 30)
        tap.eq(len(emls(k, b2)), 0, "the cancelled one never sent")
        tap.eq(k.bc(b2).get("status"), "cancelled", "status cancelled")
    with tap.check("counts per category"):
        st = json.loads(k.ctl("status", "--json").stdout)
        tap.eq(st.get("categories"), {"event": 2, "notice": 1},
               "kairanctl status --json counts broadcasts per category")
    with tap.check("a closed school's scheduled broadcast never sends "
                   "(SECURITY-PROMISES.md row 9: nothing goes out for it "
                   "after tenant close)"):
        b4 = k.submit({"tenant": "t2", "category": "event", "subject": "閉校後",
                       "body": "本文", "channels": ["email"], "recipients": rc,
                       "send_at": at(3)})
        wait_for(lambda: k.bc(b4).get("status") == "scheduled", 10,
                 what="status scheduled")
        cp = k.ctl("tenant", "close", "t2")
        assert cp.returncode == 0, cp.stderr
        # Checkpoint: another school's broadcast due after b4's time.
        b5 = k.submit({"tenant": "t1", "category": "notice", "subject": "後2",
                       "body": "本文", "channels": ["email"], "recipients": rc,
                       "send_at": at(5)})
        k.wait_done(b5, 30)
        assert len(emls(k, b5)) == 5, len(emls(k, b5))
        assert len(emls(k, b4)) == 0, "sent %d after the close" % len(emls(k, b4))
        assert k.bc(b4).get("status") == "cancelled", k.bc(b4)
    d.stop()
tap.done()
