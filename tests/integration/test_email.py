#!/usr/bin/python3
"""test_email.py - an e-mail broadcast end to end (issue 2, "Tests").

kairanctl submit -> Redis -> kairand (expand, worker, smtp adapter over
libcurl) -> tests/fakes/fake_smtp.py, with a real redis-server.

  [1] 1,000 recipients (scale()), Japanese subject (several encoded-words,
      emoji, ①髙﨑) and multi-line Japanese body over STARTTLS + AUTH with
      require-tls: every recipient exactly once, carrier addresses quoted on
      the wire, every message decodes back to subject and body, line
      lengths, Message-ID, Date, TLS/AUTH recorded.
  [2] one address under two recipient ids (different case) -> one message.
  [3] 4xx twice then success -> delivered on the third attempt.
  [4] 5xx -> DLQ with its code and no address; watch exits 1; dlq retry
      --all after the fault is cleared -> delivered, counts fixed.
  [7] kairanctl submit with an id twice -> same id, one set of messages.
  [5] no plaintext address anywhere in Redis (every key, every type) nor in
      kairand's log, after [1]-[4], [7] ran on that Redis.
  [6] TLS required: a relay without STARTTLS, a relay whose certificate
      the configured CA did not sign (and expired / wrong-host ones)
      -> nothing sent, jobs fail with a TLS reason.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_email.py
"""

import collections
import datetime
import email
import email.policy
import email.utils
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("email")

SUBJECT = ("【緊急】台風１４号接近に伴う臨時休校のお知らせ（髙﨑市・①号館）😀 "
           "明日１１月２２日（金）は全学年休校とします。保護者の皆様はご確認ください")
BODY = "\n".join([
    "保護者各位",
    "",
    "桜高校の髙﨑です。台風１４号の接近に伴い、明日は臨時休校とします。",
    "① 登校は不要です。② 部活動も中止します。😀 ではなく ⚠️ です。",
    "長い行：" + "生徒の安全を最優先に判断しました。" * 30,
    ".",
    ". ドットで始まる行",
    "..二つのドット",
    "From 行も本文のまま",
    "半角ｶﾀｶﾅと全角　スペース、タブ\tも。",
    "",
    "以上",
])
CARRIER = ["taro..yamada.@docomo.ne.jp", "hanako.@ezweb.ne.jp",
           "a..b..c.@softbank.ne.jp"]
FROM_ADDR = "noreply@sakura.example.jp"


def norm(s):
    """Line ends normalised, trailing newlines dropped."""
    return s.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


def quoted(addr):
    """The RFC 5321 form of a carrier address (local part quoted)."""
    local, _, dom = addr.rpartition("@")
    if re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*",
                    local):
        return addr
    return '"%s"@%s' % (local.replace("\\", "\\\\").replace('"', '\\"'), dom)


def bcast(recipients, subject="お知らせ", body="本文です。", **kw):
    b = {"tenant": "sakura-hs", "category": "notice", "subject": subject,
         "body": body, "channels": ["email"], "recipients": recipients}
    b.update(kw)
    return b


def rcpts(addrs, prefix):
    return [{"id": "%s-%d" % (prefix, i), "email": a} for i, a in enumerate(addrs)]


def msgs_for(smtp, addrs):
    """Stored messages with any recipient in addrs (case-insensitive)."""
    want = {a.lower() for a in addrs}
    return [m for m in smtp.messages() if any(r.lower() in want for r in m["rcpt"])]


def rcpt_events(smtp, addr):
    return [e for e in smtp.events("rcpt") if (e.get("rcpt") or "").lower() == addr.lower()]


def header_block(data):
    return data.split("\r\n\r\n", 1)[0]


def raw_header(data, name):
    """The raw (unfolded lines kept) value of one header."""
    lines = header_block(data).split("\r\n")
    outl, on = [], False
    for ln in lines:
        if ln[:1] in (" ", "\t"):
            if on:
                outl.append(ln)
            continue
        on = ln.lower().startswith(name.lower() + ":")
        if on:
            outl.append(ln)
    return "\r\n".join(outl)


def redis_dump(client):
    """Every key name and every value (all types) as a list of bytes."""
    blobs, n, cursor = [], 0, b"0"
    while True:
        cursor, keys = client.call("SCAN", cursor, "COUNT", 1000)
        for key in keys:
            n += 1
            blobs.append(key)
            t = client.call("TYPE", key)
            if t == "string":
                vals = [client.call("GET", key)]
            elif t == "hash":
                vals = client.call("HGETALL", key)
            elif t == "list":
                vals = client.call("LRANGE", key, 0, -1)
            elif t == "set":
                vals = client.call("SMEMBERS", key)
            elif t == "zset":
                vals = client.call("ZRANGE", key, 0, -1, "WITHSCORES")
            elif t == "stream":
                vals = []
                for eid, kv in client.call("XRANGE", key, "-", "+"):
                    vals.append(eid)
                    vals.extend(kv)
                for g in client.call("XINFO", "GROUPS", key):
                    vals.extend(x for x in g if isinstance(x, bytes))
            elif t == "none":
                vals = []
            else:
                raise AssertionError("unexpected type %s of %r" % (t, key))
            blobs.extend(v for v in vals if isinstance(v, bytes))
        if cursor in (b"0", 0, "0"):
            return n, blobs


def needles(addrs):
    """What must not be found: each address as given, lowered, quoted as on
    the wire, and the local part alone when it is a distinctive carrier one
    (it has ".." or ends with ".")."""
    s = set()
    for a in addrs:
        s.update({a, a.lower(), quoted(a), quoted(a.lower())})
        local = a.rpartition("@")[0]
        if ".." in local or local.endswith("."):
            s.add(local)
            s.add(local.lower())
    return sorted(s)


def leaks(blobs, addrs):
    """The needles of addrs found in any of blobs (bytes)."""
    hay = b"\x00".join(blobs)
    return [n for n in needles(addrs) if n.encode() in hay]


ALL_ADDRS = set()   # every address submitted to the shared Redis (for [5])


# ====================================================================
# [1]-[5], [7]: one Redis, one relay (STARTTLS required, AUTH), one kairand
# ====================================================================

r = Redis(out)
smtp = FakeSMTP(out, tls="starttls", auth="u:p", require_tls=True)
k = Kairan(out, r, smtp=smtp,
           conf={"queue": {"retry_base_ms": "50", "retry_cap_ms": "200"}})
d = k.start()

# ---------------------------------------------------------------- [1]
N = scale(1000, minimum=len(CARRIER) + 2)
addrs1 = ["guardian%04d@example.jp" % i for i in range(N - len(CARRIER))] + CARRIER
ALL_ADDRS.update(addrs1)
bid1 = None
msgs1 = []
with tap.check("[1] %d-recipient broadcast submitted and ended" % N):
    t_sub = time.time()
    bid1 = k.submit(bcast(rcpts(addrs1, "r1"), SUBJECT, BODY))
    assert bid1, "no id printed"
    h = k.wait_done(bid1, 90)
    c = k.counts(bid1).get("email", {})
    tap.diag("[1] %d messages in %.2fs" % (N, time.time() - t_sub))
    assert h.get("status") == "done", h.get("status")
    assert c.get("delivered") == N, "counts %r" % c
    assert not c.get("failed") and not c.get("expired"), "counts %r" % c
    msgs1 = smtp.wait_messages(N, 10)

with tap.check("[1] exactly %d messages, each recipient exactly once" % N):
    msgs1 = msgs_for(smtp, addrs1)
    got = collections.Counter(a.lower() for m in msgs1 for a in m["rcpt"])
    dups = {a: n for a, n in got.items() if n > 1}
    assert len(msgs1) == N, "%d messages" % len(msgs1)
    assert all(len(m["rcpt"]) == 1 for m in msgs1), "a message with several RCPT"
    assert not dups, "duplicates: %r" % list(dups.items())[:5]
    assert set(got) == {a.lower() for a in addrs1}, \
        "missing %r, unexpected %r" % (
            sorted({a.lower() for a in addrs1} - set(got))[:5],
            sorted(set(got) - {a.lower() for a in addrs1})[:5])

with tap.check("[1] carrier addresses delivered with the local part quoted on the wire"):
    for a in CARRIER:
        ms = [m for m in msgs1 if a in m["rcpt"]]
        assert len(ms) == 1, "%s: %d messages" % (a, len(ms))
        assert ms[0]["rcpt_raw"] == [quoted(a)], \
            "%s: RCPT TO:<%s>, want <%s>" % (a, ms[0]["rcpt_raw"][0], quoted(a))
    plain = [m for m in msgs1 if m["rcpt"][0].startswith("guardian")]
    bad = [m["rcpt_raw"] for m in plain if m["rcpt_raw"] != m["rcpt"]]
    assert not bad, "dot-atom addresses quoted needlessly: %r" % bad[:3]

parsed1 = []
with tap.check("[1] every message decodes back to the submitted subject and body"):
    bad = []
    for m in msgs1:
        raw = m["data"].encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parsed1.append((m, msg))
        subj = str(msg["Subject"])
        if subj != SUBJECT:
            bad.append(("subject", m["rcpt"], subj))
            continue
        if msg.get_content_type() != "text/plain" or \
                (msg.get_content_charset() or "").lower() != "utf-8":
            bad.append(("content-type", m["rcpt"], msg["Content-Type"]))
            continue
        body = msg.get_content()
        if norm(body) != norm(BODY):
            bad.append(("body", m["rcpt"], body[:200]))
    assert len(parsed1) == N
    assert not bad, "%d bad, first: %r" % (len(bad), bad[:2])

with tap.check("[1] Subject is RFC 2047 UTF-8 encoded-words (several), folded"):
    rs = raw_header(msgs1[0]["data"], "Subject")
    words = re.findall(r"=\?(?i:utf-8)\?[BbQq]\?[^?]*\?=", rs)
    assert len(words) >= 2, "encoded-words in Subject: %r" % rs
    assert all(ord(ch) < 128 for ch in rs), "8-bit bytes in Subject: %r" % rs
    assert "\r\n " in rs or "\r\n\t" in rs, "Subject not folded: %r" % rs

with tap.check("[1] every line <= 998 octets, CRLF only (no bare LF)"):
    worst = max(m["max_line"] for m in msgs1)
    mine = max(len(ln) for m in msgs1
               for ln in m["data"].encode("utf-8", "surrogateescape").split(b"\r\n"))
    assert worst <= 998 and mine <= 998, "longest line %d/%d octets" % (worst, mine)
    assert not any(m["bare_lf"] for m in msgs1), "bare LF in a message"
    assert not any("\n" in ln for m in msgs1 for ln in m["data"].split("\r\n")), \
        "bare LF in the data"
    tap.diag("[1] longest line %d octets" % worst)

with tap.check("[1] header lines <= 78 octets; body lines <= 76 (transfer encoding)"):
    hl = max(len(ln.encode("utf-8", "surrogateescape")) for m in msgs1
             for ln in header_block(m["data"]).split("\r\n"))
    bl = max(len(ln.encode("utf-8", "surrogateescape")) for m in msgs1
             for ln in m["data"].split("\r\n\r\n", 1)[1].split("\r\n"))
    assert hl <= 78, "longest header line %d octets" % hl
    assert bl <= 76, "longest body line %d octets" % bl

with tap.check("[1] Message-ID present, well formed and unique per recipient"):
    ids = [(m["rcpt"][0], msg["Message-ID"]) for m, msg in parsed1]
    missing = [a for a, mid in ids if not mid]
    assert not missing, "no Message-ID for %r" % missing[:3]
    badform = [mid for _, mid in ids if not re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(mid).strip())]
    assert not badform, "malformed: %r" % badform[:3]
    assert len({str(mid).strip() for _, mid in ids}) == N, "Message-IDs not unique"

with tap.check("[1] Date in JST (+0900), near the send time; From and To as expected"):
    for m, msg in parsed1:
        raw = raw_header(m["data"], "Date")
        assert raw.rstrip().endswith("+0900"), "Date: %r" % raw
        dt = email.utils.parsedate_to_datetime(str(msg["Date"]))
        assert dt.utcoffset() == datetime.timedelta(hours=9), str(msg["Date"])
        assert abs(dt.timestamp() - m["ts"]) < 120, "Date %s vs received %s" % (
            msg["Date"], m["ts"])
        fa = msg["From"].addresses
        assert len(fa) == 1 and fa[0].addr_spec == FROM_ADDR, "From %r" % msg["From"]
        assert fa[0].display_name == "桜高校", "From name %r" % fa[0].display_name
        assert m["mail_from"] == FROM_ADDR, m["mail_from"]
        ta = msg["To"].addresses
        assert len(ta) == 1 and "%s@%s" % (ta[0].username, ta[0].domain) == m["rcpt"][0], \
            "To %r for %s" % (str(msg["To"]), m["rcpt"][0])

with tap.check("[1] every message went over TLS after AUTH"):
    notls = [m["rcpt"] for m in msgs1 if not m["tls"]]
    noauth = [m["rcpt"] for m in msgs1 if m["auth"] != "u"]
    assert not notls, "%d without TLS" % len(notls)
    assert not noauth, "%d without AUTH" % len(noauth)
    conns = len(smtp.events("connect"))
    tap.diag("[1] %d connections, peak %d at once" % (conns, smtp.peak_connections()))

with tap.check("[1] kairanctl watch exits 0 for a fully delivered broadcast"):
    assert bid1
    cp = k.ctl("watch", bid1, timeout=30)
    assert cp.returncode == 0, "exit %d: %s%s" % (cp.returncode, cp.stdout, cp.stderr)
    assert "delivered %d" % N in cp.stdout, cp.stdout

# ---------------------------------------------------------------- [2]
with tap.check("[2] one address under two recipient ids (different case) -> one message"):
    a_low, a_up = "sibling.parent@example.jp", "Sibling.Parent@EXAMPLE.jp"
    other = "other.parent@example.jp"
    ALL_ADDRS.update([a_low, a_up, other])
    bid2 = k.submit(bcast([{"id": "r2-kid1", "email": a_low},
                           {"id": "r2-kid2", "email": a_up},
                           {"id": "r2-kid3", "email": other}], "兄弟の連絡"))
    k.wait_done(bid2, 30)
    c = k.counts(bid2).get("email", {})
    ms = [m for m in msgs_for(smtp, [a_low, other])
          if "兄弟の連絡" == str(email.message_from_bytes(
              m["data"].encode("utf-8", "surrogateescape"),
              policy=email.policy.default)["Subject"])]
    sib = [m for m in ms if m["rcpt"][0].lower() == a_low]
    assert len(sib) == 1, "%d messages to the shared address" % len(sib)
    assert len(ms) == 2, "%d messages in all" % len(ms)
    assert c.get("delivered") == 2 and c.get("total", 2) == 2, "counts %r" % c
    assert int(k.bc(bid2).get("jobs", -1)) == 2, k.bc(bid2).get("jobs")

# ---------------------------------------------------------------- [3]
bid3 = None
with tap.check("[3] 4xx twice then success -> delivered on the third attempt"):
    flaky = "flaky.parent@example.jp"
    fine = ["steady%d@example.jp" % i for i in range(3)]
    ALL_ADDRS.update([flaky] + fine)
    smtp.set_control({"rules": [{"match": flaky, "action": "4xx", "times": 2}]})
    bid3 = k.submit(bcast(rcpts([flaky] + fine, "r3"), "再送テスト"))
    h = k.wait_done(bid3, 30)
    c = k.counts(bid3).get("email", {})
    evs = rcpt_events(smtp, flaky)
    codes = [e.get("code") for e in evs]
    assert codes == [451, 451, 250], "RCPT replies for it: %r" % codes
    assert c.get("delivered") == 4 and not c.get("failed"), "counts %r" % c
    assert h.get("status") == "done", h.get("status")
    assert len(msgs_for(smtp, [flaky])) == 1, "%d messages" % len(msgs_for(smtp, [flaky]))
    assert len(msgs_for(smtp, fine)) == 3
    st = r.call("HGETALL", "kairan:bc:%s:r" % bid3)
    vals = [v.decode("utf-8", "replace") for v in st[1::2]]
    assert all(v.startswith("d|") for v in vals), "recipient states %r" % vals

with tap.check("[3] the retry reason has the code 451 and the relay's text"):
    lines = [json.loads(ln) for ln in d.stderr_text().splitlines() if ln.strip()]
    rl = [x for x in lines if x.get("msg") == "retry later" and x.get("bc") == bid3]
    assert len(rl) == 2, "retry log lines: %r" % rl
    for x in rl:
        assert "451" in x.get("reason", "") and "4.3.0" in x.get("reason", ""), \
            "reason %r" % x.get("reason")
smtp.clear_control()

# ---------------------------------------------------------------- [4]
# Two dead addresses, each answered as Postfix does: the reply text quotes
# the address (for the carrier one in its quoted wire form).
dead = "nobody.here@example.jp"
dead_c = "jiro..sato.@docomo.ne.jp"
bid4 = None
dl4 = []
with tap.check("[4] 5xx -> failed, in the DLQ, not retried"):
    ok4 = ["alive%d@example.jp" % i for i in range(2)]
    ALL_ADDRS.update([dead, dead_c] + ok4)
    # At the end of DATA: a 5xx at RCPT is a bounce (issue 18,
    # test_bounces.py), not a DLQ entry.
    smtp.set_control({"rules": [
        {"match": a, "action": "5xx", "code": 550, "stage": "data",
         "text": "5.1.1 <%s>: Recipient address rejected: User unknown" % quoted(a)}
        for a in (dead, dead_c)]})
    bid4 = k.submit(bcast(rcpts([dead, dead_c] + ok4, "r4"), "宛先不明テスト"))
    k.wait_done(bid4, 30)
    c = k.counts(bid4).get("email", {})
    assert c.get("failed") == 2 and c.get("delivered") == 2, "counts %r" % c
    for a in (dead, dead_c):
        assert len(rcpt_events(smtp, a)) == 1, "5xx was retried: %d RCPTs" % len(
            rcpt_events(smtp, a))
    cp = k.ctl("dlq", "list", "--json")
    assert cp.returncode == 0, cp.stderr
    dl4 = [e for e in json.loads(cp.stdout) if e.get("broadcast") == bid4]
    assert len(dl4) == 2, "DLQ entries for it: %r" % dl4
    assert all(e.get("channel") == "email" for e in dl4), dl4
    for e in dl4:
        tap.diag("[4] DLQ reason: %s" % e["reason"])

with tap.check("[4] DLQ reason has the reply code 550 and the relay's text"):
    assert dl4
    for e in dl4:
        assert "550" in e["reason"], "reason %r" % e["reason"]
        assert "5.1.1" in e["reason"] and "Recipient address rejected" in e["reason"], \
            "the relay's reply text is not in the reason: %r" % e["reason"]

with tap.check("[4] no address (nor a quoted carrier local part) in the DLQ listing"):
    assert dl4
    outs = k.ctl("dlq", "list", "--json").stdout + k.ctl("dlq", "list").stdout
    for a in (dead, dead_c):
        local = a.rpartition("@")[0]
        assert a not in outs and quoted(a) not in outs and local not in outs, \
            "%s visible in dlq list: %r" % (a, [e["reason"] for e in dl4])

with tap.check("[4] no plaintext address in Redis while jobs sit in the DLQ"):
    assert dl4
    with r.client() as c4:
        nkeys, blobs = redis_dump(c4)
    found = leaks(blobs, ALL_ADDRS)
    assert not found, "plaintext in Redis: %r" % found[:5]

with tap.check("[4] kairanctl watch exits 1 for a broadcast with a failure"):
    assert bid4
    cp = k.ctl("watch", bid4, timeout=30)
    assert cp.returncode == 1, "exit %d: %s%s" % (cp.returncode, cp.stdout, cp.stderr)
    assert "failed 2" in cp.stdout, cp.stdout

with tap.check("[4] fault cleared, dlq retry --all -> delivered, counts all delivered"):
    assert bid4
    smtp.clear_control()
    cp = k.ctl("dlq", "retry", "--all")
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr)
    assert "2 job" in cp.stdout, cp.stdout
    wait_for(lambda: len(msgs_for(smtp, [dead, dead_c])) >= 2, 30, what="the retried messages")
    wait_for(lambda: k.counts(bid4).get("email", {}).get("delivered") == 4
             and "done_ms" in k.bc(bid4), 30, what="broadcast 4 done again")
    c = k.counts(bid4).get("email", {})
    assert c.get("failed", 0) == 0 and c.get("delivered") == 4, "counts %r" % c
    assert k.bc(bid4).get("status") == "done", k.bc(bid4).get("status")
    for a in (dead, dead_c):
        assert len(msgs_for(smtp, [a])) == 1, "%s: %d messages" % (a, len(msgs_for(smtp, [a])))
    m = msgs_for(smtp, [dead_c])[0]
    assert m["rcpt_raw"] == [quoted(dead_c)], m["rcpt_raw"]
    cp = k.ctl("dlq", "list", "--json")
    assert not [e for e in json.loads(cp.stdout) if e.get("broadcast") == bid4], cp.stdout
    cp = k.ctl("watch", bid4, timeout=30)
    assert cp.returncode == 0, "watch after the retry: exit %d %s" % (cp.returncode, cp.stdout)

# ---------------------------------------------------------------- [7]
with tap.check("[7] kairanctl submit with the same id twice -> the same name, one set of messages"):
    idem = ["idem%d@example.jp" % i for i in range(3)]
    ALL_ADDRS.update(idem)
    key = "idem-%d" % os.getpid()   # the producer's id: its idempotency key
    b = bcast(rcpts(idem, "r7"), "一度だけ", "一度だけ届くはずです。", id=key)
    first = k.submit(b)
    b2 = dict(b, subject="二度目（届いてはいけない）")
    second = k.submit(b2)
    bid = first                     # the name is kairan's own
    assert first.startswith("b-") and second == first, \
        "printed %r then %r" % (first, second)
    k.wait_done(bid, 30)
    third = k.submit(b)                 # again after it ended
    assert third == bid, third
    # A later broadcast, to know the daemon got past any re-submission.
    sentinel = "sentinel7@example.jp"
    ALL_ADDRS.add(sentinel)
    k.wait_done(k.submit(bcast(rcpts([sentinel], "r7s"), "後続")), 30)
    ms = msgs_for(smtp, idem)
    got = collections.Counter(m["rcpt"][0] for m in ms)
    assert got == collections.Counter(idem), "per recipient: %r" % dict(got)
    subs = {str(email.message_from_bytes(m["data"].encode("utf-8", "surrogateescape"),
                                         policy=email.policy.default)["Subject"])
            for m in ms}
    assert subs == {"一度だけ"}, subs
    h = k.bc(bid)
    assert int(h.get("jobs", -1)) == 3, "jobs %r" % h.get("jobs")
    assert k.counts(bid).get("email", {}).get("delivered") == 3, k.counts(bid)

# ---------------------------------------------------------------- [5]
with tap.check("[5] no plaintext address in any Redis key or value (all types)"):
    assert len(ALL_ADDRS) >= N
    with r.client() as c5:
        nkeys, blobs = redis_dump(c5)
    tap.diag("[5] %d keys, %d values scanned for %d addresses"
             % (nkeys, len(blobs), len(ALL_ADDRS)))
    assert nkeys >= 5 and any(b.startswith(b"kairan:bc:") for b in blobs), "scan saw no state"
    found = leaks(blobs, ALL_ADDRS)
    assert not found, "plaintext in Redis: %r" % found[:5]

with tap.check("[5] no plaintext address in kairand's log"):
    log = d.stderr_text()
    assert log.strip(), "empty log"
    decoded = []
    for ln in log.splitlines():
        if ln.strip():
            rec = json.loads(ln)          # JSON lines, every one
            decoded.extend(str(v) for v in rec.values())
    blobs = [log.encode(), log.lower().encode()] + [x.encode() for x in decoded]
    found = leaks(blobs, ALL_ADDRS)
    assert not found, "in the log: %r" % found[:5]

with tap.check("[5] kairand stops cleanly on SIGTERM (exit 0)"):
    rc = d.stop(15)
    assert rc == 0, "exit %r; log tail:\n%s" % (rc, d.stderr_text()[-1500:])
smtp.stop()
r.stop()

# ====================================================================
# [6] TLS required
# ====================================================================
ca = mkca()


def tls_case(name, smtp_kw, conf_tls=None, ca_file=None):
    """One relay that must be refused: returns (counts, reasons, smtp, log)."""
    o = os.path.join(out, name)
    os.makedirs(o, exist_ok=True)
    with Redis(o) as r6, FakeSMTP(o, name="smtp-" + name, **smtp_kw) as s6:
        k6 = Kairan(o, r6, smtp=s6, name="k-" + name,
                    conf={"queue": {"max_attempts": "2", "retry_base_ms": "50",
                                    "retry_cap_ms": "100"}})
        if conf_tls:
            k6.sections["smtp"]["tls"] = conf_tls
        if ca_file:
            k6.sections["smtp"]["ca_file"] = ca_file
        k6.write_conf()
        d6 = k6.start()
        try:
            addrs = ["tls.%s.%d@example.jp" % (name, i) for i in range(2)]
            b6 = k6.submit(bcast(rcpts(addrs, "r6"), "TLS必須"))
            h = k6.wait_done(b6, 40)
            cnt = k6.counts(b6).get("email", {})
            st = r6.call("HGETALL", "kairan:bc:%s:r" % b6)
            reasons = [v.decode("utf-8", "replace") for v in st[1::2]]
            dl = json.loads(k6.ctl("dlq", "list", "--json").stdout or "[]")
            reasons += [e.get("reason", "") for e in dl]
            log = d6.stderr_text()
        finally:
            d6.stop(10)
        return h, cnt, reasons, s6, log, addrs


TLS_RE = re.compile(r"TLS|SSL|STARTTLS|certificate", re.I)

with tap.check("[6] relay without STARTTLS, smtp.tls=starttls -> nothing sent in plaintext"):
    h, cnt, reasons, s6, log, addrs = tls_case("notls", {"tls": "none"},
                                               conf_tls="starttls")
    assert len(s6.messages()) == 0, "%d messages stored in plaintext" % len(s6.messages())
    mails = s6.events("mail") + s6.events("auth") + s6.events("rcpt")
    assert not mails, "client went on in plaintext: %r" % mails[:3]
    assert len(s6.events("connect")) >= 1, "kairand never tried the relay"
    assert cnt.get("delivered", 0) == 0 and cnt.get("failed") == 2, "counts %r" % cnt
    assert any(TLS_RE.search(x) for x in reasons) or TLS_RE.search(log), \
        "no TLS reason: %r" % reasons
    tap.diag("[6] reason: %s" % next((x for x in reasons if TLS_RE.search(x)), reasons[:1]))
    assert not [a for a in addrs if a in log or any(a in x for x in reasons)], "address leaked"

for cert in ("selfsigned", "expired", "wronghost"):
    with tap.check("[6] relay with a %s certificate -> refused, 0 messages" % cert):
        h, cnt, reasons, s6, log, addrs = tls_case(
            cert, {"tls": "starttls", "cert": os.path.join(ca, cert + ".pem"),
                   "key": os.path.join(ca, cert + ".key"), "auth": "u:p"},
            ca_file=os.path.join(ca, "ca.pem"))
        assert len(s6.messages()) == 0, "%d messages accepted" % len(s6.messages())
        assert not s6.events("auth") and not s6.events("mail"), \
            "client went on after a bad certificate"
        assert any(e.get("ev") == "tls" for e in s6.events()) or s6.events("connect"), \
            "kairand never tried the relay"
        assert cnt.get("delivered", 0) == 0 and cnt.get("failed") == 2, "counts %r" % cnt
        assert any(TLS_RE.search(x) for x in reasons), "no TLS reason: %r" % reasons
        tap.diag("[6] %s reason: %s" % (cert, next(x for x in reasons if TLS_RE.search(x))))

tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
