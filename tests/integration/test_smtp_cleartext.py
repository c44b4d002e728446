#!/usr/bin/python3
"""test_smtp_cleartext.py - smtp.tls = none never sends the relay's
password across a network (SECURITY-PROMISES.md row 2: plaintext SMTP
only for a local relay).  Like Postfix and curl, kairan sends AUTH without
TLS only to a relay on this host: the address it connected to must be
loopback (127.0.0.0/8, ::1; "localhost" by what it resolves to).

  [1] kairand --check on smtp.tls = none + smtp.username with a relay at
      another address of this machine: a warning naming the problem, and
      still exit 0 ("ok"): the units run --check before every start, and
      a configuration that worked yesterday must not keep the notices
      from going out.  The same relay on 127.0.0.1 or "localhost": no
      warning.
  [2] kairand with that configuration: an error in its log at start; the
      relay is connected to but gets no command at all (no EHLO, no AUTH,
      no password); the messages are not lost: the relay's breaker opens
      on these configuration faults as on a refused login, and every
      message reaches (fake) SendGrid; the reason names smtp.tls.
  [3] control: the same server on 127.0.0.1, reached as smtp://localhost,
      gets AUTH in clear and the messages.

The "remote" relay listens on a non-loopback address of this machine
(skipped, with a note, on a machine that has none).

Run:  BUILD=build /usr/bin/python3 tests/integration/test_smtp_cleartext.py
"""
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("cleartext")
SG_KEY = "SG.test-key"
N = 6


def own_address():
    """A non-loopback IPv4 address of this machine that can be listened
    on, or None."""
    cands = []
    try:
        cp = subprocess.run(["hostname", "-I"], capture_output=True, text=True,
                            timeout=10)
        cands += cp.stdout.split()
    except (OSError, subprocess.SubprocessError):
        pass
    for a in cands:
        if ":" in a or a.startswith("127."):
            continue
        try:
            s = socket.socket()
            s.bind((a, 0))
            s.close()
            return a
        except OSError:
            continue
    return None


def bc(tag, n=N):
    return {"tenant": "t1", "priority": "urgent", "subject": "件名 " + tag,
            "body": "本文", "channels": ["email"],
            "recipients": [{"id": "%s-%d" % (tag, i),
                            "email": "%s%d@example.jp" % (tag, i)}
                           for i in range(n)]}


def check(k):
    return subprocess.run([os.path.join(BUILD, "kairand"), "-c", k.conf,
                           "--check"], capture_output=True, text=True,
                          timeout=60)


ADDR = own_address()
if ADDR is None:
    tap.skip("[1]-[3] smtp.tls = none and a remote relay",
             "no non-loopback address on this machine to play a remote relay")
    tap.done()
    sys.exit(0)
tap.diag("the remote relay listens on %s" % ADDR)

QUICK = {"retry_base_ms": "100", "retry_cap_ms": "300", "max_attempts": "50"}

with Redis(out) as r, FakeSMTP(out, auth="kairan:s3cret-pass", host=ADDR,
                               name="remote", extra_args=["-v"]) as remote, \
        FakeSMTP(out, auth="kairan:s3cret-pass", name="local") as local:
    sg = FakeSendGrid(out, "sendgrid", ["--token", SG_KEY])
    k = Kairan(out, r, smtp=remote, conf={
        "sendgrid": {"api_base": sg.url, "api_key": SG_KEY},
        "failover": {"mode": "always", "failures": "2", "window_ms": "30s",
                     "probe_ms": "60s"},
        "queue": QUICK})
    assert k.sections["smtp"]["tls"] == "none"
    assert k.sections["smtp"]["url"].startswith("smtp://%s:" % ADDR)

    with tap.check("[1] --check: a warning naming smtp.tls = none and the "
                   "relay, still exit 0"):
        cp = check(k)
        assert cp.returncode == 0 and "ok" in cp.stdout, (cp.returncode,
                                                          cp.stdout, cp.stderr)
        assert "breaks a security promise" in cp.stderr, cp.stderr
        assert ("smtp.tls = none with smtp.username, but the relay %s is not "
                "on this host" % ADDR) in cp.stderr, cp.stderr
        assert "s3cret-pass" not in cp.stderr + cp.stdout

    with tap.check("[1] the same relay on 127.0.0.1 or as localhost: no "
                   "warning"):
        for url in ("smtp://127.0.0.1:%d" % local.port,
                    "smtp://localhost:%d" % local.port):
            k2 = Kairan(out, r, smtp=local, name="k-" + url.split("/")[2].split(":")[0])
            k2.sections["smtp"]["url"] = url
            k2.write_conf()
            cp = check(k2)
            assert cp.returncode == 0 and "promise" not in cp.stderr, \
                (url, cp.stderr)

    with tap.check("[2] kairand runs, logs the fault, sends the remote relay "
                   "nothing, and the messages fail over to SendGrid"):
        d = k.start()
        d.wait_output('"ready"', 20)
        bid = k.submit(bc("r"))
        k.wait_done(bid, 60)
        cnt = k.counts(bid).get("email", {})
        assert cnt.get("delivered") == N, (cnt, d.stderr_text()[-3000:])
        got = sorted(sg.recipients())
        assert got == sorted("r%d@example.jp" % i for i in range(N)), got
        evs = remote.events()
        assert any(e["ev"] == "connect" for e in evs), evs
        assert not [e for e in evs if e["ev"] in ("auth", "mail", "tls")], evs
        assert remote.messages() == []
        log = d.stderr_text()
        assert "the configuration breaks a security promise" in log, log[-3000:]
        assert "the password is never sent to it in clear" in log, log[-3000:]
        assert '"to":"open"' in log, "breaker open"
        assert "AUTH credentials are never sent without TLS" in log
        assert "s3cret-pass" not in log
        d.stop()
        assert d.returncode == 0, d.stderr_text()[-2000:]

    with tap.check("[2] the relay got no command at all: the connection "
                   "ended before its greeting was answered"):
        text = remote.proc.stderr_text()
        assert "] S: " in text, text[-2000:]      # it greeted (verbose log)
        assert "] C: " not in text, text[-2000:]  # and heard nothing back

    with tap.check("[3] control: the same server on loopback, as "
                   "smtp://localhost, gets AUTH in clear and the messages"):
        with Redis(os.path.join(out, "r3")) as r3:
            k3 = Kairan(out, r3, smtp=local, name="k-local", conf={"queue": QUICK})
            k3.sections["smtp"]["url"] = "smtp://localhost:%d" % local.port
            k3.write_conf()
            d = k3.start()
            d.wait_output('"ready"', 20)
            bid = k3.submit(bc("l", 3))
            k3.wait_done(bid, 60)
            assert k3.counts(bid).get("email", {}).get("delivered") == 3
            auths = [e for e in local.events() if e["ev"] == "auth"]
            assert auths and all(e["ok"] and e["user"] == "kairan" for e in auths), auths
            assert sorted(local.delivered_rcpts()) == ["l0@example.jp", "l1@example.jp",
                                                       "l2@example.jp"]
            assert "promise" not in d.stderr_text()
            d.stop()
    sg.stop()

tap.done()
