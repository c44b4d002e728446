#!/usr/bin/python3
"""test_smtp_cleartext.py - smtp.tls = none sends mail in clear only to a
local relay, and a password only to this host (SECURITY-PROMISES.md row
2: "plaintext SMTP only by an explicit, logged opt-out for a local
relay").  The address kairand connected to decides, not the relay's name:
loopback (127.0.0.0/8, ::1) may get mail and AUTH; a local network
(10/8, 172.16/12, 192.168/16, 169.254/16, fc00::/7, fe80::/10) mail
without a password; any other address nothing at all.

  [1] kairand --check with smtp.tls = none: a relay elsewhere, with a
      password or without, is a warning naming the relay and the fix;
      a relay on a local network with a password the warning of the
      password; on a local network without one, on 127.0.0.1 or as
      localhost (with a password): no warning.  Always exit 0 ("ok"):
      the units run --check before every start, and a configuration that
      worked yesterday must not keep the notices from going out.
  [2] kairand, smtp.tls = none, no password, a relay elsewhere: an error
      in its log at start and from the adapter, saying why and what to
      do, with no recipient's address; the relay is connected to but
      hears no command (no EHLO, no mail); the messages are not lost: the
      relay's breaker opens on these tempfails as when the relay is down,
      and every message reaches (fake) SendGrid.
  [3] the same relay elsewhere with a password: the same, and no AUTH.
  [4] a relay on a local network address, no password: gets the mail in
      clear (a relay on the school's LAN).
  [5] a relay on a local network address with a password: gets no AUTH
      and no mail; the messages fail over.
  [6] control: a relay on loopback, reached as smtp://localhost, gets
      AUTH in clear and the mail.

"Elsewhere" and "local network" are addresses of this machine outside
and inside those blocks (this test's own table, written apart from
common/ipscope.c); a part whose address this machine lacks is skipped
with a note.  unit test_ipscope judges every block and its edges.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_smtp_cleartext.py
"""
import ipaddress
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("cleartext")
SG_KEY = "SG.test-key"
PASS = "s3cret-pass"
N = 6

LOCAL_NETS = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
    "fc00::/7", "fe80::/10")]


def scope(a):
    """'loopback', 'local' or 'elsewhere', as kairand should judge a."""
    ip = ipaddress.ip_address(a)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback and (ip.version == 4 or ip == ipaddress.ip_address("::1")):
        return "loopback"
    if any(ip in n for n in LOCAL_NETS):
        return "local"
    return "elsewhere"


def bindable(a):
    fam = socket.AF_INET6 if ":" in a else socket.AF_INET
    try:
        s = socket.socket(fam)
        s.bind((a, 0))
        s.close()
        return True
    except OSError:
        return False


def own_address(want):
    """An address of this machine kairand judges as want, that can be
    listened on, or None (link-local left out: it needs a zone)."""
    try:
        cp = subprocess.run(["hostname", "-I"], capture_output=True, text=True,
                            timeout=10)
        cands = cp.stdout.split()
    except (OSError, subprocess.SubprocessError):
        cands = []
    for a in cands:
        if "%" in a or a.lower().startswith("fe80:") or a.startswith("169.254."):
            continue
        try:
            if scope(a) == want and bindable(a):
                return a
        except ValueError:
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


def urlhost(a):
    return "[%s]" % a if ":" in a else a


QUICK = {"retry_base_ms": "100", "retry_cap_ms": "300", "max_attempts": "50"}
FAILOVER = {"mode": "always", "failures": "2", "window_ms": "30s",
            "probe_ms": "60s"}

# Self-test of this file's table against a few known answers.
assert [scope(a) for a in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.1.1",
                           "fd00::2", "::ffff:192.168.0.1", "192.0.2.2",
                           "100.64.0.1", "fec0::1", "8.8.8.8")] == [
    "loopback", "loopback", "loopback", "local", "local", "local",
    "elsewhere", "elsewhere", "elsewhere", "elsewhere"]

REMOTE = own_address("elsewhere")
LAN = own_address("local")
tap.diag("a relay elsewhere listens on %s, one on a local network on %s"
         % (REMOTE, LAN))


def refused_run(tag, relay, password):
    """kairand with smtp.tls = none and relay (not to be spoken to):
    checks [2]/[3]/[5]; returns kairand's log."""
    with Redis(os.path.join(out, "r-" + tag)) as r:
        sg = FakeSendGrid(out, "sg-" + tag, ["--token", SG_KEY])
        k = Kairan(out, r, smtp=relay, name="k-" + tag, conf={
            "sendgrid": {"api_base": sg.url, "api_key": SG_KEY},
            "failover": FAILOVER, "queue": QUICK})
        assert k.sections["smtp"]["tls"] == "none"
        assert ("username" in k.sections["smtp"]) == password
        d = k.start()
        d.wait_output('"ready"', 20)
        bid = k.submit(bc(tag))
        k.wait_done(bid, 60)
        cnt = k.counts(bid).get("email", {})
        assert cnt.get("delivered") == N, (cnt, d.stderr_text()[-3000:])
        got = sorted(sg.recipients())
        assert got == sorted("%s%d@example.jp" % (tag, i) for i in range(N)), got
        evs = relay.events()
        assert any(e["ev"] == "connect" for e in evs), evs
        assert not [e for e in evs if e["ev"] in ("auth", "mail", "rcpt", "tls")], evs
        assert relay.messages() == []
        d.stop()
        assert d.returncode == 0, d.stderr_text()[-2000:]
        sg.stop()
        log = d.stderr_text()
        assert '"to":"open"' in log, "breaker open"
        assert PASS not in log
        for i in range(N):
            assert "%s%d@example.jp" % (tag, i) not in log, "a recipient in the log"
        # The relay heard nothing: it greeted (verbose log) and got no command.
        text = relay.proc.stderr_text()
        assert "] S: " in text, text[-2000:]
        assert "] C: " not in text, text[-2000:]
        return log


with FakeSMTP(out, auth="kairan:" + PASS, name="local") as local:
    # ---- [1] --check ----
    with Redis(os.path.join(out, "r1")) as r:
        def conf_for(tag, host, password):
            k = Kairan(out, r, smtp=local, name="k1-" + tag)
            k.sections["smtp"]["url"] = "smtp://%s:%d" % (urlhost(host),
                                                          local.port)
            if not password:
                del k.sections["smtp"]["username"]
                del k.sections["smtp"]["password"]
            k.write_conf()
            return check(k)

        if REMOTE is None:
            tap.skip("[1] --check: a relay elsewhere",
                     "no address outside loopback and the local networks "
                     "on this machine")
        else:
            with tap.check("[1] --check: a relay elsewhere, with a password "
                           "or without: a warning naming it and the fix, "
                           "still exit 0"):
                for password in (False, True):
                    cp = conf_for("remote-%d" % password, REMOTE, password)
                    assert cp.returncode == 0 and "ok" in cp.stdout, \
                        (cp.returncode, cp.stdout, cp.stderr)
                    assert "breaks a security promise" in cp.stderr, cp.stderr
                    assert ("smtp.tls = none, but the relay %s is not on this "
                            "host or a local network" % REMOTE) in cp.stderr, \
                        cp.stderr
                    assert "set smtp.tls = starttls" in cp.stderr, cp.stderr
                    assert "relay on this host or the local network" in \
                        cp.stderr, cp.stderr
                    assert PASS not in cp.stderr + cp.stdout
        if LAN is None:
            tap.skip("[1] --check: a relay on a local network",
                     "no local network address on this machine")
        else:
            with tap.check("[1] --check: a relay on a local network: no "
                           "warning; with a password, the password's"):
                cp = conf_for("lan", LAN, False)
                assert cp.returncode == 0 and "promise" not in cp.stderr, \
                    cp.stderr
                cp = conf_for("lan-pw", LAN, True)
                assert cp.returncode == 0 and "ok" in cp.stdout, cp.stderr
                assert ("smtp.tls = none with smtp.username, but the relay %s "
                        "is not on this host" % LAN) in cp.stderr, cp.stderr
                assert "not on this host or a local network" not in cp.stderr
                assert PASS not in cp.stderr + cp.stdout
        with tap.check("[1] --check: 127.0.0.1 or localhost with a password: "
                       "no warning"):
            for host in ("127.0.0.1", "localhost"):
                cp = conf_for(host, host, True)
                assert cp.returncode == 0 and "promise" not in cp.stderr, \
                    (host, cp.stderr)

    # ---- [2] [3] a relay elsewhere ----
    if REMOTE is None:
        tap.skip("[2] [3] kairand and a relay elsewhere",
                 "no address outside loopback and the local networks on "
                 "this machine")
    else:
        with FakeSMTP(out, host=REMOTE, name="remote",
                      extra_args=["-v"]) as remote:
            with tap.check("[2] a relay elsewhere, no password: kairand "
                           "runs, says why and what to do, sends the relay "
                           "nothing, the mail fails over to SendGrid"):
                log = refused_run("r", remote, False)
                assert "the configuration breaks a security promise" in log, \
                    log[-3000:]
                assert ("smtp.tls = none, and the relay is not on this host "
                        "or a local network") in log, log[-3000:]
                assert '"address":"%s"' % REMOTE in log, log[-3000:]
                assert "smtp.tls = none sends mail in clear, so only to a " \
                    "relay on this host or a local network" in log, log[-3000:]
        with FakeSMTP(out, host=REMOTE, auth="kairan:" + PASS, name="remote-pw",
                      extra_args=["-v"]) as remote:
            with tap.check("[3] a relay elsewhere with a password: the same, "
                           "no AUTH"):
                log = refused_run("p", remote, True)
                assert ("smtp.tls = none, and the relay is not on this host "
                        "or a local network") in log, log[-3000:]

    # ---- [4] [5] a relay on a local network ----
    if LAN is None:
        tap.skip("[4] [5] kairand and a relay on a local network",
                 "no local network address on this machine")
    else:
        with FakeSMTP(out, host=LAN, name="lan") as lan:
            with tap.check("[4] a relay on a local network, no password: "
                           "gets the mail in clear"):
                with Redis(os.path.join(out, "r4")) as r:
                    k = Kairan(out, r, smtp=lan, name="k-lan",
                               conf={"queue": QUICK})
                    assert k.sections["smtp"]["tls"] == "none"
                    assert "username" not in k.sections["smtp"]
                    d = k.start()
                    d.wait_output('"ready"', 20)
                    bid = k.submit(bc("n", 3))
                    k.wait_done(bid, 60)
                    assert k.counts(bid).get("email", {}).get("delivered") == 3
                    assert sorted(lan.delivered_rcpts()) == [
                        "n0@example.jp", "n1@example.jp", "n2@example.jp"]
                    log = d.stderr_text()
                    assert "promise" not in log, log[-2000:]
                    assert "not on this host" not in log, log[-2000:]
                    d.stop()
        with FakeSMTP(out, host=LAN, auth="kairan:" + PASS, name="lan-pw",
                      extra_args=["-v"]) as lanpw:
            with tap.check("[5] a relay on a local network with a password: "
                           "no AUTH, no mail, the mail fails over"):
                log = refused_run("w", lanpw, True)
                assert "the password is never sent to it in clear" in log, \
                    log[-3000:]
                assert "AUTH credentials are never sent without TLS" in log
                assert "not on this host or a local network" not in log

    # ---- [6] control ----
    with tap.check("[6] control: a relay on loopback, as smtp://localhost, "
                   "gets AUTH in clear and the mail"):
        with Redis(os.path.join(out, "r6")) as r:
            k = Kairan(out, r, smtp=local, name="k-local", conf={"queue": QUICK})
            k.sections["smtp"]["url"] = "smtp://localhost:%d" % local.port
            k.write_conf()
            d = k.start()
            d.wait_output('"ready"', 20)
            bid = k.submit(bc("l", 3))
            k.wait_done(bid, 60)
            assert k.counts(bid).get("email", {}).get("delivered") == 3
            auths = [e for e in local.events() if e["ev"] == "auth"]
            assert auths and all(e["ok"] and e["user"] == "kairan" for e in auths), auths
            assert sorted(local.delivered_rcpts()) == ["l0@example.jp", "l1@example.jp",
                                                       "l2@example.jp"]
            assert "promise" not in d.stderr_text()
            d.stop()

tap.done()
