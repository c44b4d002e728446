#!/usr/bin/python3
"""test_escalate.py - "escalate_after": recipients who have not confirmed
by then are sent the message again on their next channel; those who
confirmed are not; each broadcast escalates once; a closed school's
broadcast does not escalate.
"""
import email
import email.policy
import glob
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa

tap = TAP()
out = tmpdir("escalate")
N, CONFIRM = 20, 6


def post(url):
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def links(outbox, bid):
    res = []
    for path in glob.glob(os.path.join(outbox, bid, "*.eml")):
        with open(path, "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        m = re.search(r"(https?://\S+/a/[A-Za-z0-9_.-]+)",
                      msg.get_body(("plain",)).get_content())
        res.append((os.path.basename(path).split("-")[0] + "-" +
                    os.path.basename(path).split("-")[1], m.group(1)))
    return res


def line_files(outbox, bid):
    return glob.glob(os.path.join(outbox, bid, "*.json"))


with Redis(out) as r:
    port = free_port()
    k = Kairan(out, r, email="outbox", conf={
        "http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                 "public_url": "http://127.0.0.1:%d" % port}})
    d = k.start()
    d.wait_output('"listening"', 15)
    rc = [{"id": "e%02d" % i, "email": "g%02d@example.jp" % i,
           "line": "U%032x" % (0xe5c000 + i)} for i in range(N)]
    with tap.check("unconfirmed recipients get their next channel"):
        bid = k.submit({"tenant": "t1", "subject": "安否確認", "body": "確認を",
                        "channels": ["email", "line"], "policy": "preferred",
                        "ack": True, "escalate_after": "3s",
                        "recipients": rc})
        wait_for(lambda: len(links(k.outbox, bid)) == N, 30,
                 what="all e-mails written")
        tap.eq(len(line_files(k.outbox, bid)), 0, "no LINE before escalation")
        confirmed = set()
        for name, url in sorted(links(k.outbox, bid))[:CONFIRM]:
            tap.ok(post(url) == 200, "confirmed through the link")
            confirmed.add(name.split("-")[0])
        wait_for(lambda: len(line_files(k.outbox, bid)) == N - CONFIRM, 30,
                 what="LINE for the unconfirmed")
        h = k.wait_done(bid, 30)
        got = set(os.path.basename(p).split("-")[0]
                  for p in line_files(k.outbox, bid))
        tap.eq(len(got), N - CONFIRM, "one LINE message per unconfirmed")
        tap.ok(not (got & confirmed), "nobody who confirmed was escalated")
        tap.eq(h.get("escalated"), str(N - CONFIRM), "counted as escalated")
        tap.eq(k.counts(bid)["line"].get("delivered"), N - CONFIRM,
               "escalation jobs delivered")
        tap.ok('"escalate"' in d.stderr_text(), "escalation logged")
    with tap.check("a closed school's broadcast does not escalate "
                   "(SECURITY-PROMISES.md row 9)"):
        b2 = k.submit({"tenant": "t2", "subject": "安否確認2", "body": "確認を",
                       "channels": ["email", "line"], "policy": "preferred",
                       "ack": True, "escalate_after": "3s",
                       "recipients": rc[:4]})
        wait_for(lambda: len(links(k.outbox, b2)) == 4, 30,
                 what="the e-mails written")
        k.wait_done(b2, 30)
        cp = k.ctl("tenant", "close", "t2")
        assert cp.returncode == 0, cp.stderr
        # a later broadcast of another school escalates: the checkpoint
        b3 = k.submit({"tenant": "t1", "subject": "後", "body": "確認を",
                       "channels": ["email", "line"], "policy": "preferred",
                       "ack": True, "escalate_after": "4s",
                       "recipients": rc[:1]})
        wait_for(lambda: len(line_files(k.outbox, b3)) == 1, 30,
                 what="the checkpoint's escalation")
        assert len(line_files(k.outbox, b2)) == 0, line_files(k.outbox, b2)
        assert k.bc(b2).get("escalated") is None, k.bc(b2)
    d.stop()
tap.done()
