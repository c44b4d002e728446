#!/usr/bin/python3
"""test_tls.py - TLS refusals (issue 4, "Leaks of data: TLS"): kairand with
smtp.tls = starttls and smtp.ca_file = the test CA (tests/tls/mkca.sh)
must refuse a relay that presents

  [1] an expired certificate            -> reason names "expired"
  [2] a self-signed (untrusted) one     -> "self-signed" / unknown CA
  [3] a certificate for another host    -> host name mismatch
  [4] only TLS 1.0/1.1 (fake_smtp --tls-max-version 1.1, the server at
      OpenSSL security level 0 so that it offers them at all)
                                        -> protocol version

For each: nothing is delivered (the fake stores no message), and
kairand's own reason - the dead-letter entry (`kairanctl dlq list
--json`) after queue.max_attempts tries, and its log - names the TLS
problem.  The texts asserted are OpenSSL's verify / alert strings as
libcurl reports them in CURLOPT_ERRORBUFFER, so a vague "SSL peer
certificate was not OK" fails the test.

  [5] control: the same configuration with the good server certificate
      delivers (so the refusals above are not a broken setup).

Run:  BUILD=build /usr/bin/python3 tests/integration/test_tls.py
"""

import json
import warnings
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
# TLS 1.0/1.1 are deprecated: that is the point of case 4.
warnings.filterwarnings("ignore", category=DeprecationWarning)
tap = TAP()
out = tmpdir("tls")
ca = mkca()
CA = os.path.join(ca, "ca.pem")
TENANT = "tls-hs"

# (name, cert, extra fake args, pattern the reason must match)
CASES = [
    ("expired certificate", "expired", [],
     r"certificate (has )?expired"),
    ("self-signed certificate", "selfsigned", [],
     r"self[- ]signed certificate|unable to get local issuer|unknown ca"),
    ("wrong host name", "wronghost", [],
     r"(host ?name|subject( alternative)? name|SAN).{0,60}"
     r"(mismatch|does not match|not match)|no alternative certificate "
     r"subject name matches"),
    ("TLS 1.0/1.1 only", "server", ["--tls-max-version", "1.1"],
     r"unsupported protocol|protocol version|wrong version|"
     r"no protocols available|tlsv1 alert protocol version"),
]


def dlq_reasons(k):
    cp = k.ctl("dlq", "list", "--json")
    if cp.returncode != 0:
        return []
    try:
        v = json.loads(cp.stdout or "[]")
    except ValueError:
        return []
    return [str(e.get("reason", "")) for e in v if isinstance(e, dict)]


def log_reasons(proc):
    """Reason-like fields of kairand's JSON log lines about e-mail."""
    res = []
    for line in proc.stderr_text().splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            continue
        text = " ".join(str(v) for key, v in j.items()
                        if key not in ("time", "level"))
        if "smtp" in text or "tls" in text.lower() or "ssl" in text.lower():
            res.append(text)
    return res


class LegacyTLS:
    """A real OpenSSL server (openssl s_server) that speaks only TLS 1.1
    (@SECLEVEL=0, or Debian's OpenSSL would not offer it at all), as an
    implicit-TLS relay.  Unlike an asyncio fake it answers a client that
    wants TLS >= 1.2 with a protocol_version alert, as an old relay does."""

    def __init__(self, d):
        self.port = free_port()
        self.url = "smtps://127.0.0.1:%d" % self.port
        self.tls = "implicit"
        self.ca = CA
        self.user = None
        self.proc = Proc(["openssl", "s_server", "-quiet",
                          "-accept", "127.0.0.1:%d" % self.port,
                          "-cert", os.path.join(ca, "server.pem"),
                          "-key", os.path.join(ca, "server.key"),
                          "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
                         d, name="legacy-tls")

        def up():
            import socket
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, what="openssl s_server")

    def messages(self):
        return []  # it speaks no SMTP: nothing can be delivered

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stop()


def run_case(i, name, cert, extra, pattern):
    d = os.path.join(out, "case%d" % i)
    os.makedirs(d, exist_ok=True)
    legacy = "--tls-max-version" in extra
    relay = (LegacyTLS(d) if legacy else
             FakeSMTP(d, tls="starttls", cert=os.path.join(ca, cert + ".pem"),
                      key=os.path.join(ca, cert + ".key"), extra_args=extra))
    with Redis(d) as r, relay as smtp:
        smtp.ca = CA
        k = Kairan(d, r, smtp=smtp, conf={
            "smtp": {"tls": "implicit" if legacy else "starttls",
                     "ca_file": CA, "timeout_ms": "5000"},
            "queue": {"max_attempts": "2", "retry_base_ms": "50",
                      "retry_cap_ms": "200"}})
        bid = k.submit({"tenant": TENANT, "subject": "TLS %d" % i,
                        "body": "body", "channels": ["email"],
                        "recipients": [{"id": "r-1",
                                        "email": "parent%d@example.jp" % i}]})
        proc = k.start()
        try:
            try:
                wait_for(lambda: dlq_reasons(k), 45, 0.2,
                         what="the job to reach the DLQ")
            except Exception as e:  # reported below, not fatal
                tap.diag("no DLQ entry: %s" % e)
            reasons = dlq_reasons(k)
            logs = log_reasons(proc)
        finally:
            proc.stop()
        got = smtp.messages()
        if not isinstance(got, list):
            got = list(got)
        tap.ok(len(got) == 0, "%s: nothing delivered" % name,
               "%d messages stored" % len(got))
        tap.ok(len(reasons) == 1, "%s: the job is dead-lettered" % name,
               str(reasons))
        rx = re.compile(pattern, re.I)
        tap.ok(any(rx.search(x) for x in reasons),
               "%s: the DLQ reason names it (/%s/)" % (name, pattern),
               "reasons: %s" % reasons)
        tap.ok(any(rx.search(x) for x in logs),
               "%s: kairand's log names it" % name,
               "log: %s" % [x[:300] for x in logs[-4:]])
        c = k.counts(bid).get("email", {})
        tap.ok(c.get("delivered", 0) == 0, "%s: counted 0 delivered" % name,
               str(c))


def offers_legacy_tls(d):
    """1 if fake_smtp --tls-max-version 1.1 really completes a TLS 1.1
    handshake (so case 4 tests a version refusal, not a broken server)."""
    import smtplib
    import ssl
    with FakeSMTP(d, tls="starttls", cert=os.path.join(ca, "server.pem"),
                  key=os.path.join(ca, "server.key"), name="legacy-probe",
                  extra_args=["--tls-max-version", "1.1"]) as smtp:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(CA)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as c:
            c.starttls(context=ctx)
            return c.sock.version()


os.makedirs(os.path.join(out, "probe"), exist_ok=True)
try:
    ver = offers_legacy_tls(os.path.join(out, "probe"))
except Exception as e:  # noqa: BLE001 - reported as the failure detail
    ver = "handshake failed: %s" % e
tap.ok(ver == "TLSv1.1", "the legacy fake really speaks TLS 1.1", str(ver))

for i, case in enumerate(CASES, 1):
    run_case(i, *case)

# [5] control: the good certificate through the same configuration delivers
d = os.path.join(out, "good")
os.makedirs(d, exist_ok=True)
with Redis(d) as r, FakeSMTP(d, tls="starttls",
                             cert=os.path.join(ca, "server.pem"),
                             key=os.path.join(ca, "server.key")) as smtp:
    smtp.ca = CA
    k = Kairan(d, r, smtp=smtp, conf={
        "smtp": {"tls": "starttls", "ca_file": CA, "timeout_ms": "5000"},
        "queue": {"max_attempts": "2", "retry_base_ms": "50",
                  "retry_cap_ms": "200"}})
    bid = k.submit({"tenant": TENANT, "subject": "TLS ok", "body": "body",
                    "channels": ["email"],
                    "recipients": [{"id": "r-1", "email": "ok@example.jp"}]})
    proc = k.start()
    try:
        k.wait_done(bid, 45)
        n = len(list(smtp.messages()))
    finally:
        proc.stop()
    tap.ok(n == 1, "control: the trusted, valid certificate delivers",
           "%d messages" % n)

tap.diag("runtime %.1f s" % (time.monotonic() - T0))
tap.done()
