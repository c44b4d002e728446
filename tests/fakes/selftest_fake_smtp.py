#!/usr/bin/python3
"""Self-test of tests/fakes/fake_smtp.py and tests/integration/harness.py.

Run: /usr/bin/python3 tests/fakes/selftest_fake_smtp.py   (TAP output)
Not named test_* on purpose: it tests the test tools, not kairan.
"""

import base64
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import (FakeSMTP, Proc, Redis, RedisError, TAP, mkca,  # noqa: E402
                     tmpdir, wait_for, scale)

tap = TAP()
out = tmpdir("selftest-smtp")
ca_dir = mkca(os.path.join(out, "ca"))
CA = os.path.join(ca_dir, "ca.pem")
USER, PASS = "kairan", "s3cret"
QUOTED = '"taro..yamada."@docomo.ne.jp'
UNQUOTED = "taro..yamada.@docomo.ne.jp"


def client_ctx():
    ctx = ssl.create_default_context(cafile=CA)
    return ctx


def msg(subject, body="hello\r\n"):
    return ("From: a@b.jp\r\nTo: x@y.jp\r\nSubject: %s\r\n\r\n%s" % (subject, body))


def expect_code(fn, code):
    try:
        fn()
    except smtplib.SMTPResponseException as e:
        assert e.smtp_code == code, "got %d %r, want %d" % (e.smtp_code, e.smtp_error, code)
        return
    raise AssertionError("no error, wanted %d" % code)


def rcpt_code(s, addr):
    return s.rcpt(addr)[0]


# ------------------------------------------------------------------ mkca
with tap.check("mkca: files exist and verify as intended"):
    for n in ("ca", "server", "expired", "wronghost", "selfsigned"):
        assert os.path.exists(os.path.join(ca_dir, n + ".pem")), n
        assert os.path.exists(os.path.join(ca_dir, n + ".key")), n

    def verify(n):
        return subprocess.run(["openssl", "verify", "-CAfile", CA, os.path.join(ca_dir, n + ".pem")],
                              capture_output=True).returncode
    assert verify("server") == 0
    assert verify("wronghost") == 0
    assert verify("expired") != 0
    assert verify("selfsigned") != 0
    st = os.stat(os.path.join(ca_dir, "ca.pem")).st_mtime_ns
    mkca(os.path.join(ca_dir))
    assert os.stat(os.path.join(ca_dir, "ca.pem")).st_mtime_ns == st, "not idempotent"

# ------------------------------------------------------------------ plain
plain = FakeSMTP(out, name="plain", max_rcpt=100)

with tap.check("plain: two messages on one session, dot-unstuffing, CRLF kept"):
    with smtplib.SMTP("127.0.0.1", plain.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.has_extn("pipelining") and s.has_extn("size") and s.has_extn("8bitmime")
        assert not s.has_extn("starttls") and not s.has_extn("auth")
        s.sendmail("a@b.jp", ["x@y.jp", "z@y.jp"], msg("one", ".leading dot\r\n..two\r\nend\r\n"))
        s.sendmail("a@b.jp", ["w@y.jp"], msg("two"), mail_options=["BODY=8BITMIME"])
    m = plain.wait_messages(2)
    assert m[0]["rcpt"] == ["x@y.jp", "z@y.jp"], m[0]
    assert m[0]["data"].endswith(".leading dot\r\n..two\r\nend\r\n"), repr(m[0]["data"])
    assert m[0]["conn"] == m[1]["conn"]
    assert m[1]["mail_params"].get("BODY") == "8BITMIME", m[1]
    assert "SIZE" in m[1]["mail_params"], m[1]
    assert m[0]["tls"] is False and m[0]["auth"] is None and m[0]["bare_lf"] is False

with tap.check("plain: quoted local part stored unquoted, raw kept"):
    with smtplib.SMTP("127.0.0.1", plain.port, timeout=10) as s:
        s.sendmail("a@b.jp", [QUOTED, '"a\\"b"@ezweb.ne.jp'], msg("quoted"))
    m = plain.wait_messages(3)[-1]
    assert m["rcpt"] == [UNQUOTED, 'a"b@ezweb.ne.jp'], m["rcpt"]
    assert m["rcpt_raw"] == [QUOTED, '"a\\"b"@ezweb.ne.jp'], m["rcpt_raw"]

with tap.check("plain: UTF-8 8bit body, exact bytes recoverable"):
    body = "日本語の本文\r\n"
    with smtplib.SMTP("127.0.0.1", plain.port, timeout=10) as s:
        s.sendmail("a@b.jp", ["u@y.jp"], msg("8bit", body).encode("utf-8"))
    m = plain.wait_messages(4)[-1]
    assert m["data"].encode("utf-8", "surrogateescape").endswith(body.encode()), m["data"]

with tap.check("plain: command errors (RCPT before MAIL, DATA without rcpt, RSET, NOOP, bad syntax)"):
    with smtplib.SMTP("127.0.0.1", plain.port, timeout=10) as s:
        assert s.docmd("MAIL", "FROM:<a@b.jp>")[0] == 503  # before EHLO
        s.ehlo("c")
        assert s.docmd("RCPT", "TO:<x@y.jp>")[0] == 503
        assert s.docmd("MAIL", "FROM:<a@b.jp>")[0] == 250
        assert s.docmd("MAIL", "FROM:<a@b.jp>")[0] == 503
        assert s.docmd("RCPT", "TO:<nodomain>")[0] == 501
        assert s.docmd("DATA")[0] == 554
        assert s.docmd("RSET")[0] == 250
        assert s.docmd("NOOP")[0] == 250
        assert s.docmd("XYZZY")[0] == 500
        assert s.docmd("MAIL", "FROM:<>")[0] == 250  # null sender
        assert s.docmd("RSET")[0] == 250
        assert s.docmd("MAIL", "FROM:<a@b.jp> SIZE=999999999")[0] == 552

with tap.check("plain: PIPELINING (MAIL+RCPT+RCPT+DATA in one write)"):
    sk = socket.create_connection(("127.0.0.1", plain.port), timeout=10)
    f = sk.makefile("rb")

    def replies(n):
        out_ = []
        while len(out_) < n:
            ln = f.readline()
            assert ln, "closed"
            if ln[3:4] == b" ":
                out_.append(int(ln[:3]))
        return out_
    assert replies(1) == [220]
    sk.sendall(b"EHLO p\r\n")
    assert replies(1) == [250]
    sk.sendall(b"MAIL FROM:<p@b.jp>\r\nRCPT TO:<p1@y.jp>\r\nRCPT TO:<\"p..2\"@docomo.ne.jp>\r\nDATA\r\n")
    assert replies(4) == [250, 250, 250, 354]
    sk.sendall(b"Subject: pipe\r\n\r\nline\n.\r\nQUIT\r\n")
    assert replies(2) == [250, 221]
    sk.close()
    m = plain.wait_messages(5)[-1]
    assert m["rcpt"] == ["p1@y.jp", "p..2@docomo.ne.jp"] and m["bare_lf"] is True, m

with tap.check("plain: --max-rcpt 100: 101st RCPT gets 554 and the session is closed"):
    s = smtplib.SMTP("127.0.0.1", plain.port, timeout=10)
    s.ehlo("c")
    s.mail("a@b.jp")
    for i in range(100):
        assert rcpt_code(s, "r%d@docomo.ne.jp" % i) == 250
    code = rcpt_code(s, "r100@docomo.ne.jp")
    assert code == 554, code
    try:
        s.noop()
        raise AssertionError("session still open")
    except smtplib.SMTPServerDisconnected:
        pass
    s.close()

# ------------------------------------------------------------------ fault rules
with tap.check("rules: 4xx once per recipient, then accepted"):
    plain.set_control({"rules": [{"match": "flaky", "action": "4xx", "times": 1}]})
    with smtplib.SMTP("127.0.0.1", plain.port, timeout=10) as s:
        s.ehlo("c")
        s.mail("a@b.jp")
        assert rcpt_code(s, "flaky1@y.jp") == 451
        assert rcpt_code(s, "flaky2@y.jp") == 451   # counted per exact address
        assert rcpt_code(s, "flaky1@y.jp") == 250
        assert rcpt_code(s, "ok@y.jp") == 250
        s.rset()
    ev = [e for e in plain.events("rcpt") if "flaky" in (e.get("rcpt") or "")]
    assert [e["code"] for e in ev] == [451, 451, 250], ev

with tap.check("rules: 5xx default 550 and custom code/text"):
    plain.set_control({"rules": [{"match": "gone", "action": "5xx"},
                                 {"match": "full", "action": "4xx", "code": 452,
                                  "text": "4.2.2 Mailbox full"}]})
    with smtplib.SMTP("127.0.0.1", plain.port, timeout=10) as s:
        s.ehlo("c")
        s.mail("a@b.jp")
        assert rcpt_code(s, "gone@y.jp") == 550
        c, t = s.rcpt("full@y.jp")
        assert c == 452 and b"Mailbox full" in t, (c, t)
        assert rcpt_code(s, "fine@y.jp") == 250
        s.data(msg("partial"))
    m = plain.messages()[-1]
    assert m["rcpt"] == ["fine@y.jp"], m

with tap.check("rules: drop closes without reply"):
    plain.set_control({"rules": [{"match": "drop", "action": "drop"}]})
    s = smtplib.SMTP("127.0.0.1", plain.port, timeout=10)
    s.ehlo("c")
    s.mail("a@b.jp")
    try:
        s.rcpt("drop@y.jp")
        raise AssertionError("no disconnect")
    except smtplib.SMTPServerDisconnected:
        pass
    s.close()

with tap.check("rules: reset aborts the connection"):
    plain.set_control({"rules": [{"match": "rst", "action": "reset"}]})
    s = smtplib.SMTP("127.0.0.1", plain.port, timeout=10)
    s.ehlo("c")
    s.mail("a@b.jp")
    try:
        s.rcpt("rst@y.jp")
        raise AssertionError("no disconnect")
    except (smtplib.SMTPServerDisconnected, ConnectionResetError):
        pass
    s.close()

with tap.check("rules: stall never answers (client times out)"):
    plain.set_control({"rules": [{"match": "stall", "action": "stall"}]})
    s = smtplib.SMTP("127.0.0.1", plain.port, timeout=10)
    s.ehlo("c")
    s.mail("a@b.jp")
    s.sock.settimeout(0.5)
    t0 = time.monotonic()
    try:
        s.rcpt("stall@y.jp")
        raise AssertionError("got a reply")
    except (socket.timeout, TimeoutError, smtplib.SMTPServerDisconnected) as e:
        assert "timed out" in str(e), e
    assert time.monotonic() - t0 >= 0.45
    s.close()

with tap.check("rules: delay answers normally after a pause"):
    plain.set_control({"rules": [{"match": "slow", "action": "delay", "seconds": 0.3}]})
    with smtplib.SMTP("127.0.0.1", plain.port, timeout=10) as s:
        s.ehlo("c")
        s.mail("a@b.jp")
        t0 = time.monotonic()
        assert rcpt_code(s, "slow@y.jp") == 250
        assert time.monotonic() - t0 >= 0.25

with tap.check("rules: stage data -> 451 after the final dot, nothing stored"):
    n0 = len(plain.messages())
    plain.set_control({"rules": [{"match": "baddata", "action": "4xx", "stage": "data"}]})
    with smtplib.SMTP("127.0.0.1", plain.port, timeout=10) as s:
        s.ehlo("c")
        s.mail("a@b.jp")
        s.rcpt("baddata@y.jp")
        c, _ = s.data(msg("x"))
        assert c == 451, c
        s.sendmail("a@b.jp", ["good@y.jp"], msg("after"))   # same session still usable
    m = plain.wait_messages(n0 + 1)
    assert len(m) == n0 + 1 and m[-1]["rcpt"] == ["good@y.jp"]

with tap.check("rules: stage mail with code 421 closes the session"):
    plain.set_control({"rules": [{"match": "blocked", "action": "4xx", "stage": "mail",
                                  "code": 421, "text": "4.7.0 Too much mail"}]})
    s = smtplib.SMTP("127.0.0.1", plain.port, timeout=10)
    s.ehlo("c")
    assert s.docmd("MAIL", "FROM:<blocked@b.jp>")[0] == 421
    try:
        s.noop()
        raise AssertionError("still open")
    except smtplib.SMTPServerDisconnected:
        pass
    s.close()

with tap.check("down: 421 at connect; open session gets 421 at next MAIL; up again"):
    plain.clear_control()
    live = smtplib.SMTP("127.0.0.1", plain.port, timeout=10)
    live.ehlo("c")
    plain.set_control({"down": True})
    try:
        smtplib.SMTP("127.0.0.1", plain.port, timeout=10)
        raise AssertionError("connected while down")
    except smtplib.SMTPConnectError as e:
        assert e.smtp_code == 421, e
    assert live.docmd("MAIL", "FROM:<a@b.jp>")[0] == 421
    live.close()
    plain.set_control({"down": False})
    with smtplib.SMTP("127.0.0.1", plain.port, timeout=10) as s:
        assert s.noop()[0] == 250

with tap.check("down refuse: connection refused, then listening again on the same port"):
    plain.set_control({"down": "refuse"})

    def refused():
        try:
            socket.create_connection(("127.0.0.1", plain.port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True
    wait_for(refused, 5, what="port closed")
    plain.set_control({})

    def accepting():
        try:
            with smtplib.SMTP("127.0.0.1", plain.port, timeout=5) as s:
                return s.noop()[0] == 250
        except (ConnectionRefusedError, smtplib.SMTPConnectError):
            return False
    wait_for(accepting, 5, what="port open again")

with tap.check("--strict-addresses: unquoted a..b@ rejected, quoted accepted"):
    strict = FakeSMTP(out, name="strict", extra_args=["--strict-addresses"])
    with smtplib.SMTP("127.0.0.1", strict.port, timeout=10) as s:
        s.ehlo("c")
        s.mail("a@b.jp")
        assert s.docmd("RCPT", "TO:<taro..yamada.@docomo.ne.jp>")[0] == 501
        assert rcpt_code(s, QUOTED) == 250
    strict.stop()

# ------------------------------------------------------------------ STARTTLS + AUTH
tls = FakeSMTP(out, name="tls", tls="starttls", cert=os.path.join(ca_dir, "server.pem"),
               key=os.path.join(ca_dir, "server.key"), require_tls=True,
               auth="%s:%s" % (USER, PASS))

with tap.check("starttls: MAIL before STARTTLS is 530, AUTH only after TLS"):
    with smtplib.SMTP("127.0.0.1", tls.port, timeout=10) as s:
        s.ehlo("c")
        assert s.has_extn("starttls") and not s.has_extn("auth")
        assert s.docmd("MAIL", "FROM:<a@b.jp>")[0] == 530
        assert s.docmd("AUTH", "PLAIN")[0] == 530

with tap.check("starttls: verified TLS + AUTH PLAIN (inline) + send"):
    with smtplib.SMTP("127.0.0.1", tls.port, timeout=10) as s:
        s.starttls(context=client_ctx())
        s.ehlo("c")
        assert not s.has_extn("starttls") and "PLAIN" in s.esmtp_features["auth"]
        assert s.docmd("MAIL", "FROM:<a@b.jp>")[0] == 530   # auth required
        s.login(USER, PASS)                                 # smtplib: PLAIN inline
        s.sendmail("a@b.jp", [QUOTED], msg("tls"))
    m = tls.wait_messages(1)[-1]
    assert m["tls"] and m["auth"] == USER and m["rcpt"] == [UNQUOTED], m

with tap.check("starttls: AUTH LOGIN and PLAIN via 334 continuation"):
    with smtplib.SMTP("127.0.0.1", tls.port, timeout=10) as s:
        s.starttls(context=client_ctx())
        s.ehlo("c")
        s.user, s.password = USER, PASS
        c, _ = s.auth("LOGIN", s.auth_login)
        assert c == 235, c
    with smtplib.SMTP("127.0.0.1", tls.port, timeout=10) as s:
        s.starttls(context=client_ctx())
        s.ehlo("c")
        assert s.docmd("AUTH", "PLAIN")[0] == 334
        tok = base64.b64encode(("\0%s\0%s" % (USER, PASS)).encode()).decode()
        assert s.docmd(tok)[0] == 235
        s.sendmail("a@b.jp", ["cont@y.jp"], msg("cont"))
    tls.wait_messages(2)

with tap.check("starttls: wrong password 535, hostname check fails for wrong CA"):
    with smtplib.SMTP("127.0.0.1", tls.port, timeout=10) as s:
        s.starttls(context=client_ctx())
        s.ehlo("c")
        expect_code(lambda: s.login(USER, "nope"), 535)
    # Client trusting nothing but the system store must reject our test cert.
    with smtplib.SMTP("127.0.0.1", tls.port, timeout=10) as s:
        try:
            s.starttls(context=ssl.create_default_context())
            raise AssertionError("untrusted cert accepted")
        except ssl.SSLCertVerificationError:
            pass
    wait_for(lambda: any(not e["ok"] for e in tls.events("tls")), 5, what="tls failure event")

for bad, why in (("expired", "expired"), ("wronghost", "mismatch"), ("selfsigned", "self-signed")):
    with tap.check("starttls: client rejects %s certificate" % bad):
        f = FakeSMTP(out, name="tls-" + bad, tls="starttls", cert=os.path.join(ca_dir, bad + ".pem"),
                     key=os.path.join(ca_dir, bad + ".key"))
        try:
            with smtplib.SMTP("127.0.0.1", f.port, timeout=10) as s:
                try:
                    s.starttls(context=client_ctx())
                    raise AssertionError("accepted")
                except ssl.SSLCertVerificationError as e:
                    assert why in str(e).lower() or why == "mismatch" and "hostname" in str(e), e
        finally:
            f.stop()

with tap.check("implicit TLS (smtps)"):
    imp = FakeSMTP(out, name="smtps", tls="implicit", auth="%s:%s" % (USER, PASS))
    assert imp.ca and os.path.exists(imp.ca)
    ctx = ssl.create_default_context(cafile=imp.ca)
    with smtplib.SMTP_SSL("127.0.0.1", imp.port, timeout=10, context=ctx) as s:
        s.login(USER, PASS)
        s.sendmail("a@b.jp", ["i@y.jp"], msg("smtps"))
    assert imp.wait_messages(1)[0]["tls"] is True

# ------------------------------------------------------------------ curl CLI
if shutil.which("curl"):
    for label, fake, url_scheme in (("STARTTLS", tls, "smtp"), ("smtps", imp, "smtps")):
        with tap.check("curl CLI via %s, AUTH, quoted rcpt" % label):
            n0 = len(fake.messages())
            mf = os.path.join(out, "curl-msg.txt")
            with open(mf, "wb") as fh:
                fh.write(b"From: a@b.jp\r\nTo: x@y.jp\r\nSubject: curl\r\n\r\n.dot line\r\nbody\r\n")
            args = ["curl", "-sS", "--url", "%s://127.0.0.1:%d" % (url_scheme, fake.port),
                    "--cacert", fake.ca or CA, "--mail-from", "a@b.jp",
                    "--mail-rcpt", QUOTED, "--mail-rcpt", "plain@y.jp",
                    "--upload-file", mf, "-u", "%s:%s" % (USER, PASS)]
            if url_scheme == "smtp":
                args.insert(2, "--ssl-reqd")
            p = subprocess.run(args, capture_output=True, timeout=30)
            assert p.returncode == 0, (p.returncode, p.stderr)
            m = fake.wait_messages(n0 + 1)[-1]
            assert m["rcpt"] == [UNQUOTED, "plain@y.jp"], m
            assert m["rcpt_raw"][0] == QUOTED, m
            assert m["data"].endswith(".dot line\r\nbody\r\n"), repr(m["data"])
            assert m["tls"] and m["auth"] == USER
else:
    tap.skip("curl CLI", "curl not installed")

# ------------------------------------------------------------------ load
with tap.check("load: %d concurrent sessions x %d messages" % (scale(200), 10)):
    load = FakeSMTP(out, name="load")
    nconn, per = scale(200), 10
    errors = []
    barrier = threading.Barrier(nconn)

    def worker(i):
        try:
            with smtplib.SMTP("127.0.0.1", load.port, timeout=30) as s:
                barrier.wait(30)
                for j in range(per):
                    s.sendmail("a@b.jp", ["u%d-%d@y.jp" % (i, j)], msg("load"))
        except Exception as e:
            errors.append(repr(e))
    t0 = time.monotonic()
    th = [threading.Thread(target=worker, args=(i,)) for i in range(nconn)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.monotonic() - t0
    assert not errors, errors[:3]
    m = load.wait_messages(nconn * per)
    assert len(m) == nconn * per
    assert load.peak_connections() == nconn, load.peak_connections()
    tap.diag("%d messages over %d sessions in %.2fs" % (nconn * per, nconn, dt))

with tap.check("--max-conn: excess sessions get 421"):
    mc = FakeSMTP(out, name="maxconn", extra_args=["--max-conn", "2"])
    a = smtplib.SMTP("127.0.0.1", mc.port, timeout=10)
    b = smtplib.SMTP("127.0.0.1", mc.port, timeout=10)
    try:
        smtplib.SMTP("127.0.0.1", mc.port, timeout=10)
        raise AssertionError("third session accepted")
    except smtplib.SMTPConnectError as e:
        assert e.smtp_code == 421
    a.quit()
    b.quit()

# ------------------------------------------------------------------ shutdown
with tap.check("SIGTERM: clean exit 0 with stats, even with a stalled session open"):
    plain.set_control({"rules": [{"match": "stall", "action": "stall"}]})
    s = smtplib.SMTP("127.0.0.1", plain.port, timeout=10)
    s.ehlo("c")
    s.mail("a@b.jp")
    s.send(b"RCPT TO:<stall@y.jp>\r\n")
    time.sleep(0.1)   # let the RCPT reach the server (not a correctness wait)
    rc = plain.stop(10)
    assert rc == 0, (rc, plain.proc.stderr_text()[-1000:])
    assert '"messages":' in plain.proc.stderr_text()
    s.close()

# ------------------------------------------------------------------ harness bits
with tap.check("harness: Redis + RespClient"):
    with Redis(out) as r:
        assert r.call("SET", "k", "v") == "OK"
        with r.client() as c:
            assert c.pipeline([["INCR", "n"], ["GET", "k"], ["GET", "none"]]) == [1, b"v", None]
            try:
                c.call("INCR", "k")
                raise AssertionError("no error")
            except RedisError:
                pass

with tap.check("harness: Proc + wait_for"):
    p = Proc([sys.executable, "-c", "import sys,time; print('hi', file=sys.stderr, flush=True); time.sleep(30)"],
             out, name="sleeper")
    p.wait_output("hi", 5)
    assert p.alive()
    p.kill(signal.SIGTERM)
    assert p.wait(5) == -signal.SIGTERM and p.returncode == -signal.SIGTERM
    try:
        wait_for(lambda: False, 0.1, what="never")
        raise RuntimeError("no timeout")
    except AssertionError as e:
        assert "never" in str(e)

for f in (tls, imp, load, mc):
    f.stop()
tap.done()
