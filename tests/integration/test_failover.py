#!/usr/bin/python3
"""test_failover.py - the school's relay goes down during an urgent
broadcast: e-mail fails over to (fake) SendGrid within the breaker's
thresholds; carrier addresses SendGrid refuses wait for the relay; when the
relay is back, a probe closes the breaker and traffic returns to SMTP;
failover.mode = emergency-only keeps normal mail off SendGrid; SendGrid
refusing kairan's API key pauses the failover only, never the relay.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa

tap = TAP()
out = tmpdir("failover")


SG_KEY = "SG.test-key"


def bc(n, prio, tag, extra=()):
    rc = [{"id": "%s-%03d" % (tag, i), "email": "%s%03d@example.jp" % (tag, i)}
          for i in range(n)]
    rc += [{"id": "%s-x%d" % (tag, i), "email": e} for i, e in enumerate(extra)]
    return {"tenant": "t1", "priority": prio, "subject": "件名 " + tag,
            "body": "本文", "channels": ["email"], "recipients": rc}


with Redis(out) as r, FakeSMTP(out) as smtp:
    sg = FakeSendGrid(out, "sendgrid", ["--token", SG_KEY])
    k = Kairan(out, r, smtp=smtp, conf={
        "sendgrid": {"api_base": sg.url, "api_key": SG_KEY},
        "failover": {"mode": "emergency-only", "failures": "3",
                     "window_ms": "30s", "probe_ms": "1500ms"},
        "queue": {"retry_base_ms": "100", "retry_cap_ms": "400",
                  "max_attempts": "50"},
        "smtp": dict.fromkeys((  # connect, TLS and every reply wait
            "timeout_ms", "greeting_timeout_ms", "mail_timeout_ms",
            "rcpt_timeout_ms", "data_init_timeout_ms",
            "data_xfer_timeout_ms", "data_done_timeout_ms"), "2000")})
    d = k.start()
    wait_for(lambda: "ready" in d.stderr_text(), 15, what="kairand ready")

    carrier = "taro..yamada.@docomo.ne.jp"
    with tap.check("relay down: urgent mail fails over to SendGrid"):
        smtp.set_control({"down": "refuse"})
        t0 = time.monotonic()
        b1 = k.submit(bc(40, "urgent", "u", [carrier]))
        wait_for(lambda: len(set(sg.recipients())) >= 40, 30,
                 what="40 recipients at SendGrid")
        took = time.monotonic() - t0
        tap.diag("failover: 40 messages at SendGrid %.1f s after submit" % took)
        tap.ok(took < 15, "failover within seconds (%.1f s)" % took)
        tap.ok(carrier not in sg.recipients(),
               "the RFC-violating carrier address was never sent to SendGrid")
        tap.ok(len(smtp.messages()) == 0, "nothing went through the relay")
        tap.ok('"to":"open"' in d.stderr_text(), "breaker open is logged")

    with tap.check("emergency-only: normal mail stays off SendGrid"):
        b2 = k.submit(bc(10, "normal", "n"))
        # A checkpoint: an urgent broadcast submitted after it arrives.
        b3 = k.submit(bc(3, "urgent", "c"))
        wait_for(lambda: sum(1 for e in sg.recipients() if e.startswith("c"))
                 == 3, 30, what="checkpoint broadcast at SendGrid")
        tap.ok(not any(e.startswith("n") for e in sg.recipients()),
               "no normal-priority mail at SendGrid")

    with tap.check("relay back: traffic returns to SMTP"):
        smtp.set_control({})
        h2 = k.wait_done(b2, 60)
        h1 = k.wait_done(b1, 60)
        got = set(m_r for m in smtp.messages() for m_r in m["rcpt"])
        tap.ok(carrier in got, "the carrier address went through the relay")
        tap.ok(all(("n%03d@example.jp" % i) in got for i in range(10)),
               "normal mail went through the relay")
        tap.eq(k.counts(b1)["email"].get("delivered"), 41,
               "urgent broadcast: all 41 delivered")
        tap.eq(k.counts(b2)["email"].get("delivered"), 10,
               "normal broadcast: all 10 delivered")
        tap.ok('"to":"closed"' in d.stderr_text(), "breaker closed is logged")
        b4 = k.submit(bc(5, "urgent", "after"))
        k.wait_done(b4, 30)
        tap.ok(not any(e.startswith("after") for e in sg.recipients()),
               "after recovery urgent mail uses the relay again")
        dup = len(sg.recipients()) - len(set(sg.recipients()))
        tap.eq(dup, 0, "no duplicate at SendGrid")

    with tap.check("SendGrid refusing the API key pauses the failover only: "
                   "once the relay is back, urgent mail goes through it "
                   "without waiting out the 30 s pause"):
        sg.set_control({"rules": [{"action": "401"}]})
        smtp.set_control({"down": "refuse"})
        b5 = k.submit(bc(4, "urgent", "k"))
        wait_for(lambda: "credentials refused" in d.stderr_text(), 30,
                 what="SendGrid's 401 seen")
        smtp.set_control({})
        b6 = k.submit(bc(3, "urgent", "r"))
        # The pause is 30 s: well within it, through the relay.
        k.wait_done(b6, 20)
        got = set(m_r for m in smtp.messages() for m_r in m["rcpt"])
        tap.ok(all(("r%03d@example.jp" % i) in got for i in range(3)),
               "the new broadcast went through the relay")
        k.wait_done(b5, 90)
        tap.eq(k.counts(b5)["email"].get("delivered"), 4,
               "the refused broadcast delivered through the relay later")
        sg.set_control({})

    d.stop()
    sg.stop()
tap.done()
