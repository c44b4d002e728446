#!/usr/bin/python3
"""test_bounces.py - bounces, suppression and what to tell the family
(issue 18, "Tests").

A real redis-server, the fake SMTP relay and kairand with
smtp.bounce_local/bounce_domain set; kairanctl bounce is run as Postfix's
pipe(8) would run it (the message on stdin, ${recipient} as argument),
with a config whose security.key_file does not exist (it needs no key).

  [1] every message's envelope sender is bounce+<16 base32>@<bounce
      domain>, one reference per recipient, nothing of an address in it.
  [2] a 550 at RCPT (a docomo address): bounced at once, with 5.1.1 and the
      relay's code; no DLQ entry; suppressed.
  [3] a DSN through `kairanctl bounce` (exit 0): delivered -> bounced,
      the counts move; the report (--format json) counts bounced and lists
      the recipient with state bounced and a reason a teacher understands.
  [4] an auto-reply: exit 0, counted (n:email:autoreply), kept aside,
      not a bounce (state stays delivered, not suppressed).
  [5] a DSN whose Final-Recipient differs (a forwarding target): exit 1,
      kept aside, nothing recorded, not suppressed.
  [6] unattributable input: an unknown reference, no reference, too big
      -> exit 1, kept aside; bad arguments -> exit 2.
  [6b] Redis unreachable, or an error reply where the message would be
      kept aside: exit 75 (EX_TEMPFAIL, Postfix's pipe(8) tries again),
      nothing recorded or kept aside.
  [7] the next broadcast skips both suppressed addresses and counts them
      (suppressed 2, never silent); report and API count and list them.
  [7] GET /v1/broadcasts/{id} and the list count bounced and suppressed;
      the recipients API and its CSV give each row its state.
  [8] soft bounces: a delayed DSN in 3 broadcasts within 14 days
      suppresses; each broadcast counts once.
  [9] kairanctl suppression list (masked) and clear; the cleared address
      is sent to again.
  [11] SendGrid's Event Webhook (POST /sendgrid/events): a signed batch
      records the bounce it attributes by kairan_ref (other events,
      unknown references ignored); a forged signature, a stale timestamp
      and missing headers are refused with nothing recorded; the same
      request again (a replay) and the same sg_event_id re-signed change
      nothing.
  [12] through Postfix: a private instance (postfix -c DIR start-fg, as
      test_smtp_client's) with the runbook's master.cf pipe(8) and
      transport lines takes a DSN for the bounce domain over SMTP and runs
      kairanctl bounce as user nobody, without the key file: recorded.
  [10] no plaintext address in Redis, kairand's log or the aside stream.
  [13] tenant close + purge erase the tenant's suppression and soft
      bounces.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_bounces.py
"""

import base64
import http.client
import shutil
import smtplib
import tempfile
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("bounces")
T = "sakura-hs"
BDOM = "bounce.sakura.example.jp"
REF_RE = re.compile(r"^bounce\+([a-z2-7]{16})@" + re.escape(BDOM) + "$")

GONE = "hanako.gone@example.jp"          # DSN 5.1.1 later
REFUSED = "taro..yamada.@docomo.ne.jp"   # 550 at RCPT
AWAY = "jiro.away@example.jp"            # auto-reply
FWD = "saburo.fwd@example.jp"            # DSN from a forwarding target
OK = "shiro.ok@example.jp"
SOFT = "goro.full@example.jp"            # delayed three times
ALL = [GONE, REFUSED, AWAY, FWD, OK, SOFT]


def rcpts(tag):
    return [{"id": "r-%d" % i, "name": "保護者%d" % i, "email": a}
            for i, a in enumerate(ALL)]


def bcast(subject):
    return {"tenant": T, "category": "notice", "subject": subject,
            "body": "保護者各位\n本文です。\n", "channels": ["email"],
            "recipients": rcpts(subject)}


def dsn(final, action="failed", status="5.1.1", to=None):
    """A Postfix-style DSN (CRLF) for final."""
    b = "B-" + str(time.monotonic_ns())
    lines = [
        "Return-Path: <>",
        "From: MAILER-DAEMON@mx.example.jp (Mail Delivery System)",
        "To: %s" % (to or "postmaster@example.jp"),
        "Subject: Undelivered Mail Returned to Sender",
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        '\tboundary="%s"' % b,
        "",
        "--" + b,
        "Content-Type: text/plain",
        "",
        "Your message could not be delivered.",
        "",
        "--" + b,
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.example.jp",
        "",
        "Final-Recipient: rfc822; <%s>" % final,
        "Action: %s" % action,
        "Status: %s" % status,
        "Diagnostic-Code: smtp; 550 %s <%s>: User unknown" % (status, final),
        "",
        "--%s--" % b,
        ""]
    return "\r\n".join(lines)


AUTOREPLY = "\r\n".join([
    "From: %s" % AWAY, "To: someone", "Subject: 自動応答: 不在です",
    "Auto-Submitted: auto-replied", "", "月曜日まで不在です。", ""])


def connectable(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def redis_dump(r):
    blobs, cursor = [], b"0"
    while True:
        cursor, keys = r.call("SCAN", cursor, "COUNT", 1000)
        for k in keys:
            blobs.append(k)
            t = r.call("TYPE", k)
            if t == "string":
                blobs.append(r.call("GET", k) or b"")
            elif t == "hash":
                blobs.extend(r.call("HGETALL", k))
            elif t == "list":
                blobs.extend(r.call("LRANGE", k, 0, -1))
            elif t == "set":
                blobs.extend(r.call("SMEMBERS", k))
            elif t == "zset":
                blobs.extend(r.call("ZRANGE", k, 0, -1))
            elif t == "stream":
                for _eid, kv in r.call("XRANGE", k, "-", "+"):
                    blobs.extend(kv)
        if cursor in (b"0", "0", 0):
            return blobs


def sg_key(name):
    """An EC P-256 key pair: (private PEM path, base64 DER public key)."""
    priv = os.path.join(out, name + ".pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", priv], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", priv, "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return priv, base64.b64encode(der).decode()


def sg_sign(priv, ts, body):
    return base64.b64encode(subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", priv], input=ts.encode() + body,
        check=True, capture_output=True).stdout).decode()


SG_PRIV, SG_PUB = sg_key("sendgrid")
FORGER, _ = sg_key("forger")

with Redis(out) as r, FakeSMTP(out, tls="none") as smtp:
    k = Kairan(out, r, smtp=smtp, conf={
        "smtp": {"bounce_local": "bounce", "bounce_domain": BDOM},
        "sendgrid": {"webhook_public_key": SG_PUB}})
    # kairanctl bounce as the Postfix pipe user runs it: no key file.
    nokey = os.path.join(out, "bounce.conf")
    with open(k.conf) as f, open(nokey, "w") as g:
        g.write(f.read().replace(k.key_file, os.path.join(out, "no-such-key")))

    def bounce(stdin, *args):
        return subprocess.run([os.path.join(BUILD, "kairanctl"), "-c", nokey,
                               "bounce"] + list(args),
                              input=stdin.encode() if isinstance(stdin, str)
                              else stdin, capture_output=True, timeout=60)

    def state(bid, addr_rcpt):
        """bc:<id>:r value of the recipient id's e-mail field."""
        h = r.call("HGETALL", "kairan:bc:%s:r" % bid) or []
        for i in range(0, len(h), 2):
            v = h[i + 1].decode()
            if v.split("|")[1] == addr_rcpt:
                return v
        return None

    def aside():
        return [dict(zip(*[iter([x.decode() for x in kv])] * 2))
                for _e, kv in r.call("XRANGE", "kairan:bounce:aside", "-", "+")]

    rid = {a: "r-%d" % i for i, a in enumerate(ALL)}
    smtp.set_control({"rules": [
        {"match": REFUSED, "stage": "rcpt", "action": "5xx", "code": 550,
         "text": '5.1.1 <"taro..yamada."@docomo.ne.jp>: Recipient address '
                 'rejected: User unknown'}]})
    d = k.start()
    d.wait_output('"msg":"ready"', 15)
    bid1 = k.submit(bcast("臨時休校のお知らせ"))
    k.wait_done(bid1, 60)
    msgs = {m["rcpt"][0]: m for m in smtp.messages()}
    refs = {}

    with tap.check("[1] envelope sender bounce+<16 base32>@%s, one per "
                   "recipient, no address in it" % BDOM):
        assert set(msgs) == set(ALL) - {REFUSED}, sorted(msgs)
        for a, m in msgs.items():
            g = REF_RE.match(m["mail_from"])
            assert g, "MAIL FROM %r" % m["mail_from"]
            refs[a] = g.group(1)
            local = a.split("@")[0].lower()
            assert local[:6] not in m["mail_from"], m["mail_from"]
        assert len(set(refs.values())) == len(refs), refs
        # the From header is still the school's
        for m in msgs.values():
            assert "noreply@sakura.example.jp" in m.get("data", m.get(
                "raw", "noreply@sakura.example.jp")), "From changed"

    with tap.check("[2] 550 at RCPT: bounced at once (5.1.1, 550), no DLQ "
                   "entry, suppressed"):
        c = k.counts(bid1)["email"]
        assert c.get("bounced") == 1 and c.get("delivered") == 5, c
        assert c.get("failed", 0) == 0, c
        v = state(bid1, rid[REFUSED])
        assert v and v.startswith("b|") and "5.1.1;1;rcpt 550" in v, v
        dl = [e for e in json.loads(k.ctl("dlq", "list", "--json").stdout)
              if e.get("broadcast") == bid1]
        assert not dl, dl
        wait_for(lambda: r.call("HLEN", "kairan:supp:" + T) == 1, 10,
                 what="the refused address suppressed")

    with tap.check("[3] a DSN through kairanctl bounce: exit 0, delivered -> "
                   "bounced"):
        cp = bounce(dsn(GONE), "bounce+%s@%s" % (refs[GONE], BDOM))
        assert cp.returncode == 0, (cp.returncode, cp.stdout, cp.stderr)
        tap.diag("[3] %s" % cp.stdout.decode().strip())
        c = k.counts(bid1)["email"]
        assert c.get("bounced") == 2 and c.get("delivered") == 4, c
        v = state(bid1, rid[GONE])
        assert v.startswith("b|") and "5.1.1;0;dsn" in v, v
        assert r.call("HLEN", "kairan:supp:" + T) == 2
        # the same DSN again: nothing counted twice
        cp = bounce(dsn(GONE), "bounce+%s@%s" % (refs[GONE], BDOM))
        assert cp.returncode == 0, cp.stderr
        assert k.counts(bid1)["email"].get("bounced") == 2

    with tap.check("[3] the report counts bounced and lists the recipient "
                   "with state bounced and a teacher's reason"):
        cp = k.ctl("report", bid1, "--format", "json")
        assert cp.returncode == 0, cp.stderr
        rep = json.loads(cp.stdout)
        assert rep["bounced"] == 2 and rep["suppressed"] == 0, rep
        lst = {u["id"]: u for u in rep["unconfirmed"]}
        for a in (GONE, REFUSED):
            u = lst[rid[a]]
            assert u["state"] == "bounced" and u["status"] == "5.1.1", u
        assert "ドメイン指定受信" in lst[rid[REFUSED]]["reason"], lst[rid[REFUSED]]
        assert "ドメイン指定受信" in lst[rid[REFUSED]]["reason_ja"]
        assert "does not exist" in lst[rid[GONE]]["reason"], lst[rid[GONE]]
        assert lst[rid[OK]]["state"] == "reached", lst[rid[OK]]
        txt = k.ctl("report", bid1).stdout
        assert "BOUNCED" in txt and "bounced:     2" in txt, txt
        html = k.ctl("report", bid1, "--format", "html").stdout
        assert "BOUNCED: " in html and "ドメイン指定受信" in html, html[-600:]

    with tap.check("[4] an auto-reply: exit 0, counted, kept aside, not a "
                   "bounce"):
        cp = bounce(AUTOREPLY, "bounce+%s@%s" % (refs[AWAY], BDOM))
        assert cp.returncode == 0, (cp.returncode, cp.stdout, cp.stderr)
        assert b"not a bounce" in cp.stdout, cp.stdout
        c = k.counts(bid1)["email"]
        assert c.get("autoreply") == 1 and c.get("bounced") == 2, c
        assert state(bid1, rid[AWAY]).startswith("d|")
        assert [e for e in aside() if e["kind"] == "auto-reply"
                and e["bc"] == bid1], aside()
        assert r.call("HLEN", "kairan:supp:" + T) == 2

    with tap.check("[5] a DSN whose Final-Recipient differs: exit 1, kept "
                   "aside, nothing recorded"):
        cp = bounce(dsn("forwarded.to@elsewhere.example.jp"),
                    "bounce+%s@%s" % (refs[FWD], BDOM))
        assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
        assert state(bid1, rid[FWD]).startswith("d|")
        assert k.counts(bid1)["email"].get("bounced") == 2
        assert r.call("HLEN", "kairan:supp:" + T) == 2
        e = [x for x in aside() if x["kind"] == "unattributed"
             and x["ref"] == refs[FWD]]
        assert e and "Final-Recipient" in e[0]["reason"], aside()

    with tap.check("[6] unknown reference, no reference (header), too big "
                   "-> 1; bad arguments -> 2"):
        cp = bounce(dsn(GONE), "bounce+aaaaaaaaaaaaaaaa@%s" % BDOM)
        assert cp.returncode == 1, (cp.returncode, cp.stderr)
        cp = bounce(dsn(GONE))  # To: postmaster: no reference
        assert cp.returncode == 1, (cp.returncode, cp.stderr)
        # the reference from the To header when no argument is given
        cp = bounce(dsn(FWD, to="bounce+%s@%s" % (refs[FWD], BDOM)))
        assert cp.returncode == 0, (cp.returncode, cp.stderr)
        assert state(bid1, rid[FWD]).startswith("b|")
        cp = bounce(b"x" * (1024 * 1024 + 10), "bounce+%s@%s" % (refs[OK], BDOM))
        assert cp.returncode == 1, (cp.returncode, cp.stderr)
        assert state(bid1, rid[OK]).startswith("d|")
        for args in (("a", "b"), ("--what",)):
            cp = bounce("", *args)
            assert cp.returncode == 2, (args, cp.returncode, cp.stderr)
        kinds = r.call("HGETALL", "kairan:bounce:stats")
        tap.diag("[6] kept aside: %r" % kinds)

    with tap.check("[6b] Redis unreachable or answering an error: exit 75 "
                   "(EX_TEMPFAIL: Postfix tries again), nothing recorded"):
        down = os.path.join(out, "bounce-down.conf")
        with open(nokey) as f, open(down, "w") as g:
            g.write(f.read().replace(r.url, "redis://127.0.0.1:%d"
                                     % free_port()))
        assert r.url not in open(down).read()
        cp = subprocess.run([os.path.join(BUILD, "kairanctl"), "-c", down,
                             "bounce", "bounce+%s@%s" % (refs[OK], BDOM)],
                            input=dsn(OK).encode(), capture_output=True,
                            timeout=60)
        assert cp.returncode == 75, (cp.returncode, cp.stderr)
        assert b"Postfix" in cp.stderr or b"Redis" in cp.stderr, cp.stderr
        # an error reply where the message would be kept aside (the
        # stream holds another type): 75, not "1 kept aside"
        n_aside = len(aside())
        saved = r.call("DUMP", "kairan:bounce:aside")
        r.call("RENAME", "kairan:bounce:aside", "kairan:bounce:aside-saved")
        r.call("SET", "kairan:bounce:aside", "x")
        try:
            cp = bounce(dsn(GONE), "bounce+aaaaaaaaaaaaaaaa@%s" % BDOM)
            assert cp.returncode == 75, (cp.returncode, cp.stderr)
            assert b"WRONGTYPE" in cp.stderr, cp.stderr
        finally:
            r.call("DEL", "kairan:bounce:aside")
            r.call("RENAME", "kairan:bounce:aside-saved",
                   "kairan:bounce:aside")
        assert saved and len(aside()) == n_aside
        assert state(bid1, rid[OK]).startswith("d|")

    with tap.check("[7] the next broadcast skips the suppressed addresses "
                   "and counts them"):
        n0 = len(smtp.messages())
        bid2 = k.submit(bcast("再送：臨時休校"))
        k.wait_done(bid2, 60)
        c = k.counts(bid2)["email"]
        assert c.get("suppressed") == 3 and c.get("delivered") == 3, c
        new = [m["rcpt"][0] for m in smtp.messages()[n0:]]
        assert sorted(new) == sorted([AWAY, OK, SOFT]), new
        h = k.bc(bid2)
        assert h.get("status") == "done", h.get("status")
        rep = json.loads(k.ctl("report", bid2, "--format", "json").stdout)
        assert rep["suppressed"] == 3 and rep["bounced"] == 0, rep
        lst = {u["id"]: u for u in rep["unconfirmed"]}
        assert lst[rid[GONE]]["state"] == "suppressed", lst[rid[GONE]]
        assert "ask the family" in lst[rid[GONE]]["reason"]
        assert state(bid2, rid[REFUSED]).startswith("s|")

    def api(path, tok):
        host, port = k.sections["http"]["listen"].rsplit(":", 1)
        cn = http.client.HTTPConnection(host, int(port), timeout=10)
        cn.request("GET", path, headers={"Authorization": "Bearer " + tok})
        resp = cn.getresponse()
        data = resp.read()
        cn.close()
        return resp.status, data

    with tap.check("[7] the API counts bounced and suppressed; recipients "
                   "API and CSV states"):
        cp = k.ctl("token", "create", "--role", "limited_admin", "--tenant", T,
                   "--name", "bounces")
        assert cp.returncode == 0, cp.stderr
        tok = cp.stdout.strip()
        st, data = api("/v1/broadcasts/%s" % bid1, tok)
        assert st == 200, (st, data[:300])
        cnt = json.loads(data)["counts"]["email"]
        assert cnt["bounced"] == 3 and cnt["pending"] == 0, cnt
        st, data = api("/v1/broadcasts/%s" % bid2, tok)
        cnt = json.loads(data)["counts"]["email"]
        assert cnt["suppressed"] == 3 and cnt["delivered"] == 3, cnt
        st, data = api("/v1/broadcasts?limit=50", tok)
        assert st == 200, (st, data[:300])
        lst = {b["id"]: b for b in json.loads(data)["broadcasts"]}
        assert lst[bid2]["suppressed"] == 3 and lst[bid1]["bounced"] == 3, \
            lst[bid1]
        st, data = api("/v1/broadcasts/%s/recipients?limit=500" % bid2, tok)
        assert st == 200, (st, data[:300])
        rows = {r["recipient"]: r for r in json.loads(data)["recipients"]}
        assert rows[rid[GONE]]["state"] == "suppressed", rows[rid[GONE]]
        assert rows[rid[OK]]["state"] == "delivered", rows[rid[OK]]
        st, data = api("/v1/broadcasts/%s/recipients?limit=500" % bid1, tok)
        rows = {r["recipient"]: r for r in json.loads(data)["recipients"]}
        assert rows[rid[GONE]]["state"] == "bounced", rows[rid[GONE]]
        st, data = api("/v1/broadcasts/%s/recipients.csv" % bid1, tok)
        assert st == 200 and b",bounced," in data, data[:400]

    with tap.check("[8] soft: a delayed DSN in 3 broadcasts within 14 days "
                   "suppresses (each broadcast once)"):
        bids = [bid1, bid2]
        bids.append(k.submit(bcast("三通目")))
        k.wait_done(bids[2], 60)
        n_before = r.call("HLEN", "kairan:supp:" + T)
        softrefs = []
        for m in smtp.messages():
            if m["rcpt"][0] == SOFT:
                softrefs.append(REF_RE.match(m["mail_from"]).group(1))
        assert len(softrefs) == 3, softrefs
        for i, ref in enumerate(softrefs):
            for _twice in range(2):
                cp = bounce(dsn(SOFT, "delayed", "4.2.2"),
                            "bounce+%s@%s" % (ref, BDOM))
                assert cp.returncode == 0, cp.stderr
            n = r.call("HLEN", "kairan:supp:" + T)
            assert n == n_before + (1 if i == 2 else 0), (i, n, n_before)
        assert state(bids[0], rid[SOFT]).startswith("d|")
        assert k.counts(bids[0])["email"].get("soft") == 2

    with tap.check("[9] suppression list (masked, reasons) and clear; the "
                   "cleared address is sent to again"):
        cp = k.ctl("suppression", "list", T, "--json")
        assert cp.returncode == 0, cp.stderr
        lst = json.loads(cp.stdout)
        assert len(lst) == 4, lst
        kinds = sorted(e["kind"] for e in lst)
        assert kinds == ["hard", "hard", "hard", "soft"], kinds
        for a in ALL:
            assert a not in cp.stdout, "%s listed in clear" % a
        assert any(e["address"].endswith("@docomo.ne.jp") and "*" in e["address"]
                   for e in lst), lst
        cp = k.ctl("suppression", "clear", T, GONE)
        assert cp.returncode == 0, (cp.returncode, cp.stderr)
        cp = k.ctl("suppression", "clear", T, GONE)
        assert cp.returncode == 3, (cp.returncode, cp.stderr)
        assert k.ctl("suppression", "list", "bad:tenant").returncode == 2
        n0 = len(smtp.messages())
        bid4 = k.submit(bcast("四通目"))
        k.wait_done(bid4, 60)
        assert k.counts(bid4)["email"].get("suppressed") == 3
        assert GONE in [m["rcpt"][0] for m in smtp.messages()[n0:]]

    def sg_post(body, ts=None, priv=SG_PRIV, headers=True, sig=None,
                ip=None):
        ts = ts or str(int(time.time()))
        h = {"Content-Type": "application/json"}
        if ip:  # the source, as nginx names it (a loopback peer is trusted)
            h["X-Real-IP"] = ip
        if headers:
            h["X-Twilio-Email-Event-Webhook-Signature"] = sig or sg_sign(
                priv, ts, body)
            h["X-Twilio-Email-Event-Webhook-Timestamp"] = ts
        host, port = k.sections["http"]["listen"].rsplit(":", 1)
        cn = http.client.HTTPConnection(host, int(port), timeout=10)
        cn.request("POST", "/sendgrid/events", body=body, headers=h)
        resp = cn.getresponse()
        data = resp.read()
        cn.close()
        return resp.status, data

    def ev(ref, eid, event="bounce", status="5.1.1", **kw):
        e = {"email": AWAY, "event": event, "sg_event_id": eid,
             "timestamp": int(time.time()), "reason": "550 %s unknown" % AWAY}
        if status:
            e["status"] = status
        if ref:
            e["kairan_ref"] = ref
            e["kairan_bc"] = bid1
        e.update(kw)
        return e

    with tap.check("[11] SendGrid webhook: signed batch records the bounce it "
                   "attributes; forged, stale, unsigned refused; replay and "
                   "re-signed duplicates change nothing"):
        body = json.dumps([
            ev(None, "e-processed", event="processed", status=None),
            ev(refs[AWAY], "e-bounce-1"),
            ev(None, "e-noref"),
            ev("a" * 16, "e-unknown-ref"),
            ev(refs[AWAY], "e-open", event="open", status=None),
        ]).encode()
        supp0 = r.call("HLEN", "kairan:supp:" + T)
        # forged first (from a forger's address): nothing recorded
        FORGER_IP = "203.0.113.66"
        st, data = sg_post(body, priv=FORGER, ip=FORGER_IP)
        assert st == 403, (st, data)
        st, data = sg_post(body, headers=False, ip=FORGER_IP)
        assert st == 401, (st, data)
        st, data = sg_post(body, ts=str(int(time.time()) - 25 * 3600),
                           ip=FORGER_IP)
        assert st == 403, (st, data)
        # its bad signatures are counted against it: refused before its
        # body is even read (the ECDSA check is not free), while SendGrid's
        # own requests spend none of the shared budget on them
        st, data = sg_post(body, priv=FORGER, ip=FORGER_IP)
        assert st == 429 and b"bad signature" in data, (st, data)
        assert state(bid1, rid[AWAY]).startswith("d|")
        assert r.call("HLEN", "kairan:supp:" + T) == supp0
        # the real one
        ts = str(int(time.time()))
        sig = sg_sign(SG_PRIV, ts, body)
        st, data = sg_post(body, ts=ts, sig=sig)
        assert st == 200, (st, data)
        j = json.loads(data)
        assert j == {"replay": False, "recorded": 1, "duplicates": 0,
                     "unknown": 1}, j
        v = state(bid1, rid[AWAY])
        assert v.startswith("b|") and v.endswith("5.1.1;0;sendgrid"), v
        c1 = k.counts(bid1)["email"]
        assert r.call("HLEN", "kairan:supp:" + T) == supp0 + 1
        # the same request again (and its signature made anew, as ECDSA
        # allows): a replay, nothing changes
        for s2 in (sig, None):
            st, data = sg_post(body, ts=ts, sig=s2)
            assert st == 200 and json.loads(data)["replay"] is True, (st, data)
        # SendGrid's retry signed anew, with a later timestamp: the event
        # ids were seen
        st, data = sg_post(body, ts=str(int(ts) + 1))
        assert st == 200, (st, data)
        j = json.loads(data)
        assert j["recorded"] == 0 and j["duplicates"] == 2, j
        assert k.counts(bid1)["email"] == c1, (k.counts(bid1), c1)
        st, data = sg_post(b"{not json", ts=ts)
        assert st == 400, (st, data)

    def postfix_bounce_check():
        """[12]: the runbook's Postfix lines, for real."""
        pdir = tempfile.mkdtemp(prefix="kairan-postfix-bounce-")
        os.chmod(pdir, 0o755)
        port = free_port()
        spool, data = (os.path.join(pdir, x) for x in ("spool", "data"))
        os.makedirs(spool)
        os.makedirs(data)
        shutil.chown(data, "postfix")
        conf = os.path.join(pdir, "kairan.conf")   # readable by nobody
        shutil.copy(nokey, conf)
        os.chmod(conf, 0o644)
        main = {
            "compatibility_level": "3.6", "queue_directory": spool,
            "data_directory": data, "mail_owner": "postfix",
            "setgid_group": "postdrop", "myhostname": "mx.test.example",
            "mydestination": "", "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4", "mynetworks": "127.0.0.0/8",
            "relay_domains": BDOM, "recipient_delimiter": "+",
            "transport_maps": "inline:{ %s=kairan-bounce: }" % BDOM,
            "kairan-bounce_destination_recipient_limit": "1",
            "smtpd_relay_restrictions": "permit_mynetworks, "
                                        "reject_unauth_destination",
            "default_transport": "discard:test", "alias_maps": "",
            "alias_database": "", "maillog_file": "/dev/stdout",
        }
        with open(os.path.join(pdir, "main.cf"), "w") as f:
            f.writelines("%s = %s\n" % kv for kv in main.items())
        with open("/etc/postfix/master.cf") as f, \
                open(os.path.join(pdir, "master.cf"), "w") as g:
            for line in f:
                w = line.split()
                if line[0] in "# \t\n" or len(w) < 8:
                    g.write(line)
                    continue
                if w[0] == "smtp" and w[1] == "inet":
                    w[0] = "127.0.0.1:%d" % port
                w[4] = "n"  # no chroot
                g.write(" ".join(w) + "\n")
            # docs/runbook.md, "Postfix: hand the bounce domain to ..."
            g.write("kairan-bounce unix - n n - 4 pipe\n"
                    "  flags=Rq user=nobody size=1048576 argv=%s -c %s "
                    "bounce ${recipient}\n"
                    % (os.path.abspath(os.path.join(BUILD, "kairanctl")), conf))
        pf = Proc(["/usr/sbin/postfix", "-c", pdir, "start-fg"], out,
                  name="postfix", extra_env={"MAIL_CONFIG": pdir})
        try:
            wait_for(lambda: connectable(port), 30, what="postfix smtpd")
            n0 = [m for m in smtp.messages() if m["rcpt"][0] == GONE]
            ref = REF_RE.match(n0[-1]["mail_from"]).group(1)
            bid = bid4
            assert state(bid, rid[GONE]).startswith("d|")
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.sendmail("", ["bounce+%s@%s" % (ref, BDOM)],
                           dsn(GONE).encode())
            wait_for(lambda: state(bid, rid[GONE]).startswith("b|"), 60,
                     what="the DSN through Postfix recorded")
            def plog():
                with open(pf.stdout_path, errors="replace") as f:
                    return f.read()
            # pipe(8) logs once kairanctl has exited
            wait_for(lambda: "relay=kairan-bounce" in plog() and
                     "status=sent" in plog(), 30, what="pipe(8) to log it")
            plog = plog()
            for a in ALL:
                assert a not in plog.replace(GONE, ""), a
        finally:
            subprocess.run(["/usr/sbin/postfix", "-c", pdir, "stop"],
                           capture_output=True, timeout=60)
            pf.stop()
            shutil.rmtree(pdir, ignore_errors=True)

    if not os.path.exists("/usr/sbin/postfix") or os.geteuid() != 0:
        tap.skip("[12] through Postfix's pipe(8)",
                 "needs postfix and root (its daemons run as postfix)")
    else:
        with tap.check("[12] a DSN through a private Postfix: transport and "
                       "pipe(8) as in the runbook, kairanctl bounce as "
                       "nobody without the key"):
            postfix_bounce_check()

    with tap.check("[10] no plaintext address in Redis, kairand's log or the "
                   "aside stream"):
        blobs = redis_dump(r)
        for a in ALL + ["forwarded.to@elsewhere.example.jp"]:
            for b in blobs:
                assert a.encode() not in b.lower(), (a, b[:120])
        log = d.stderr_text()
        for a in ALL:
            assert a not in log, a
    tap.eq(d.stop(10), 0, "kairand stops with 0")

    with tap.check("[13] tenant close and purge erase the suppressed "
                   "addresses and soft bounces"):
        r.call("HSET", "kairan:soft:" + T, "x", "1/b")
        assert r.call("EXISTS", "kairan:supp:" + T) == 1
        cp = k.ctl("tenant", "close", T)
        assert cp.returncode == 0, cp.stderr
        later = time.strftime("%Y-%m-%dT%H:%M:%S+09:00",
                              time.gmtime(time.time() + 9 * 3600 + 71 * 86400))
        cp = k.ctl("purge", "--now", later)
        assert cp.returncode == 0, cp.stderr
        assert r.call("EXISTS", "kairan:supp:" + T) == 0
        assert r.call("EXISTS", "kairan:soft:" + T) == 0

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
