#!/usr/bin/python3
"""test_smtp_hostile.py - kairand's SMTP client (adapters/smtp.c,
adapters/smtp_client.c) against relays that are broken or hostile, each
case checked against RFC 5321 / 3207 rather than against our own fakes'
habits.  Short reply timeouts (3 s), one connection, one try per message.

  [1] a message larger than one TLS record (16 KiB) over STARTTLS: the
      whole of it reaches the relay and is delivered (OpenSSL's partial
      writes must not drop the rest of the content).
  [2] a UTF-8 address (RFC 6531) and a relay that does not offer
      SMTPUTF8 (tests/fakes/fake_smtp.py offers 8BITMIME, not SMTPUTF8):
      the address is never sent (no MAIL, no RCPT for it), the message
      fails at once with a reason naming SMTPUTF8 (no retry: the relay
      will not change); an ASCII recipient of the same broadcast, on the
      same connection, is delivered.
  [3] a relay that answers the end of DATA one byte every 0.5 s (a
      reply of about a minute): smtp.data_done_timeout_ms (3 s here)
      bounds the wait for the whole reply, not for each byte; the
      message ends tempfail with the timeout as its reason.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_smtp_hostile.py
"""
import email
import email.policy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("smtphostile")
FAST = dict.fromkeys(("greeting_timeout_ms", "mail_timeout_ms",
                      "rcpt_timeout_ms", "data_init_timeout_ms",
                      "data_xfer_timeout_ms", "data_done_timeout_ms"), "3000")
FAST["connections"] = "1"
QUEUE = {"max_attempts": "1", "retry_base_ms": "50", "retry_cap_ms": "100"}


def one(k, tenant, addr, body="本文", subject="件名"):
    return k.submit({"tenant": tenant, "category": "notice",
                     "subject": subject, "body": body,
                     "channels": ["email"],
                     "recipients": [{"id": "r1", "email": addr}]})


def body_of(msg):
    """The decoded text body of a stored message (fake_smtp's "data")."""
    raw = msg["data"].encode("utf-8", "surrogateescape")
    m = email.message_from_bytes(raw, policy=email.policy.default)
    return m.get_content()


# [1] a message of several TLS records over STARTTLS
d = os.path.join(out, "big")
with Redis(d) as r, FakeSMTP(d, tls="starttls", require_tls=True) as smtp:
    k = Kairan(d, r, smtp=smtp, conf={"smtp": FAST, "queue": QUEUE})
    BIG = "台風接近のため明日は臨時休校とします。\n" * 1500   # ~90 KiB
    bid = one(k, "big-hs", "big@example.jp", body=BIG)
    p = k.start()
    try:
        k.wait_done(bid, 30)
        cnt = k.counts(bid).get("email", {})
        msgs = smtp.messages()
        tap.eq(cnt.get("delivered", 0), 1,
               "[1] a 90 KiB message over STARTTLS is delivered")
        tap.ok(len(msgs) == 1 and msgs[0]["tls"] and
               body_of(msgs[0]).replace("\r\n", "\n") == BIG,
               "[1] the relay got all of it, over TLS",
               "%d messages" % len(msgs))
    finally:
        p.stop()

# [2] a UTF-8 address, a relay without SMTPUTF8
d = os.path.join(out, "utf8")
with Redis(d) as r, FakeSMTP(d) as smtp:
    k = Kairan(d, r, smtp=smtp, conf={"smtp": FAST, "queue": QUEUE})
    UTF8 = "たろう@example.jp"
    bid = k.submit({"tenant": "utf8-hs", "category": "notice",
                    "subject": "件名", "body": "本文", "channels": ["email"],
                    "recipients": [{"id": "r1", "email": UTF8},
                                   {"id": "r2", "email": "ascii@example.jp"}]})
    p = k.start()
    try:
        k.wait_done(bid, 30)
        cnt = k.counts(bid).get("email", {})
        st = r.call("HGETALL", "kairan:bc:%s:r" % bid)
        reasons = " ".join(v.decode("utf-8", "replace") for v in st[1::2])
        tap.eq((cnt.get("delivered", 0), cnt.get("failed", 0)), (1, 1),
               "[2] the ASCII recipient delivered, the UTF-8 one failed")
        tap.eq(smtp.delivered_rcpts(), ["ascii@example.jp"],
               "[2] only the ASCII address reached the relay")
        sent = [e.get("rcpt_raw") for e in smtp.events("rcpt")]
        tap.ok(all(x and x.isascii() for x in sent),
               "[2] no RCPT (nor MAIL) carried the UTF-8 address", str(sent))
        tap.ok("SMTPUTF8" in reasons, "[2] the reason names SMTPUTF8",
               reasons)
    finally:
        p.stop()

# [3] a reply trickled byte by byte
d = os.path.join(out, "trickle")
os.makedirs(d, exist_ok=True)
port = free_port()
store = os.path.join(d, "trickle.jsonl")
fake = Proc([sys.executable, os.path.join(FAKES, "bad_smtp.py"), "--port",
             str(port), "--mode", "trickle", "--store", store], d,
            name="trickle")
fake.wait_output("ready", 15, stream="stdout")


class Relay:
    url = "smtp://127.0.0.1:%d" % port
    tls = "none"


with Redis(d) as r:
    k = Kairan(d, r, smtp=Relay(), conf={"smtp": FAST, "queue": QUEUE})
    bid = one(k, "trickle-hs", "slow@example.jp")
    p = k.start()
    try:
        t = time.monotonic()
        k.wait_done(bid, 25)
        took = time.monotonic() - t
        cnt = k.counts(bid).get("email", {})
        st = r.call("HGETALL", "kairan:bc:%s:r" % bid)
        reasons = " ".join(v.decode("utf-8", "replace") for v in st[1::2])
        tap.eq(cnt.get("failed", 0), 1, "[3] the trickled message failed")
        tap.ok("timeout" in reasons and "end of DATA" in reasons,
               "[3] the reason is the end-of-DATA timeout", reasons)
        tap.ok(took < 15, "[3] within a few seconds (%.1f s)" % took)
    except AssertionError as e:
        tap.ok(False, "[3] the trickled message ended within 25 s", str(e))
    finally:
        p.stop()
        fake.stop()

tap.diag("%.1f s" % (time.monotonic() - T0))
tap.done()
