#!/usr/bin/python3
"""test_leaks.py - no plaintext personal data, no secret, anywhere it must
not be (issue 4, "Leaks of data", first bullet; SECURITY-PROMISES.md rows 1
and 7).

One redis-server with appendonly yes (aof-use-rdb-preamble no, so that a
rewritten AOF is commands, not an RDB image that could compress a leak out
of sight), one kairand (log_level debug: every line it can write) with
every channel on: e-mail through a fake relay (STARTTLS + AUTH), LINE
through fake_line.py, push through FakeFCM and FakeAPNs, and SendGrid as
the e-mail failover.  Recipients, each with a name, an e-mail address, a
LINE user id, an FCM and an APNs token, reach kairan four ways:

  (a) inline, through kairanctl submit;
  (b) the directory: kairanctl recipients import (CSV with the Japanese
      header), then a broadcast to the group, by kairanctl and by the API;
  (c) inline, through POST /v1/broadcasts (admin token from kairanctl
      token create);
  (d) an urgent broadcast while the relay refuses connections: the e-mail
      goes through (fake) SendGrid;
  (e) every provider refuses two recipients (the relay's 550 / 450 replies
      quote the address, LINE 400, FCM 404, APNs 400): reasons reach the
      log, the per-recipient state and the DLQ.

  [1] every fake received every address / id / token (so they did pass
      through kairan: an empty scan below means something).
  [2] no plaintext e-mail address (as given, lower-cased, quoted as on the
      SMTP wire, its local part), LINE user id (whole and a 16-character
      slice), push token (whole and a slice), recipient name (UTF-8 and
      JSON \\u-escaped) in any Redis key name or value: SCAN of every key,
      every type (string, hash fields and values, list, set, zset members,
      stream entry ids, fields and values, consumer group and consumer
      names).
  [3] none in the AOF files (<dir>/appendonlydir/*) before a rewrite, nor
      after BGREWRITEAOF.
  [4] none in kairand's log (every line must also be valid JSON), the
      audit logs (<retention.audit_dir>/*.jsonl), the output of every
      kairanctl command run here but `recipients export` (which must hold
      them: it is the one command that decrypts), nor the HTTP API answers.
      (`kairanctl report` prints recipient names by design - the drill
      report says who did not confirm - so only addresses, ids and tokens
      are checked in its output.)
  [5] secrets: the API token (whole and its secret part), the LINE channel
      token, the SendGrid API key, the SMTP password and a line of the FCM
      and APNs private keys appear in no log line, audit line, Redis key
      or value, nor AOF.
  [6] a raw producer XADD with plaintext (documented as allowed for a
      trusted producer): processed, the entry is gone from the stream
      (XLEN 0), no plaintext in Redis; the AOF before the next rewrite
      does hold it (which also proves the AOF scan can see a leak), and
      after BGREWRITEAOF it is gone from the AOF too (README: "and into
      the AOF until its next rewrite").

Run:  BUILD=build /usr/bin/python3 tests/integration/test_leaks.py
"""

import csv
import glob
import http.client
import io
import json
import os
import re
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

for _v in ("KAIRAN_REDIS_URL", "KAIRAN_OUTBOX_DIR", "KAIRAN_KEY_FILE",
           "KAIRAN_SMTP_PASSWORD", "KAIRAN_LINE_TOKEN",
           "KAIRAN_SENDGRID_API_KEY"):
    os.environ.pop(_v, None)

T0 = time.monotonic()
tap = TAP()
out = tmpdir("leaks")
PYTHON = "/usr/bin/python3"
TENANT = "sakura-hs"
LINE_TOKEN = "line-leak-token-" + secrets.token_hex(12)
SG_KEY = "SG.leakprobe-" + secrets.token_hex(16)
SMTP_PASS = "smtp-leak-pw-" + secrets.token_hex(8)
SUBJECT = "【緊急】台風接近に伴う臨時休校"
BODY = "保護者各位\n明日は臨時休校とします。"


def jsonl(path):
    if not os.path.exists(path):
        return []
    res = []
    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            if line.strip():
                try:
                    res.append(json.loads(line))
                except ValueError:
                    pass
    return res


class FakeLine:
    """tests/fakes/fake_line.py on a free port (as in test_routing.py)."""

    def __init__(self, out_dir, name, args=()):
        self.store = os.path.join(out_dir, name + "-store")
        self.control_file = os.path.join(out_dir, name + "-control.json")
        port_file = os.path.join(out_dir, name + ".port")
        self.set_control({})
        self.proc = Proc([PYTHON, os.path.join(FAKES, "fake_line.py"),
                          "--port-file", port_file, "--store", self.store,
                          "--control", self.control_file, "--token", LINE_TOKEN]
                         + list(args), out_dir, name=name)
        wait_for(lambda: os.path.exists(port_file), 10, what=name)
        self.url = "http://127.0.0.1:%d" % int(open(port_file).read())

    def set_control(self, c):
        with open(self.control_file + ".tmp", "w") as f:
            json.dump(c, f)
        os.replace(self.control_file + ".tmp", self.control_file)

    def requests(self):
        return jsonl(os.path.join(self.store, "requests.jsonl"))

    def ids(self):
        return {u for q in self.requests() for u in q["to"]}

    def stop(self):
        self.proc.stop()


class FakeSendGrid:
    """tests/fakes/fake_sendgrid.py on a free port (as in test_failover.py)."""

    def __init__(self, out_dir, token):
        self.dir = os.path.join(out_dir, "sendgrid")
        os.makedirs(self.dir, exist_ok=True)
        self.port_file = os.path.join(self.dir, "port")
        self.proc = Proc([PYTHON, os.path.join(FAKES, "fake_sendgrid.py"),
                          "--port", "0", "--port-file", self.port_file,
                          "--store", self.dir, "--token", token], out_dir,
                         name="fake-sendgrid")
        wait_for(lambda: os.path.exists(self.port_file) and
                 open(self.port_file).read().strip(), 10, what="sendgrid port")
        self.url = "http://127.0.0.1:%d" % int(open(self.port_file).read())

    def recipients(self):
        return [to["email"] for req in jsonl(os.path.join(self.dir, "requests.jsonl"))
                for p in req.get("personalizations", []) for to in p.get("to", [])]

    def stop(self):
        self.proc.stop()


# ------------------------------------------------------------------ people

class Person:
    """One recipient with every kind of contact; tag makes each findable."""

    def __init__(self, tag, i, carrier=False):
        self.id = "%s-%03d" % (tag, i)
        self.name = "山田リーク%s%d" % (tag, i)
        if carrier:
            self.email = "leak..%s%d.@docomo.ne.jp" % (tag, i)
        else:
            self.email = "leak.%s.guardian%d@example.jp" % (tag, i)
        self.line = "U%032x" % (0x1eac00000000 + 0x10000 * (sum(map(ord, tag)) % 4096)
                                + i)
        self.fcm = "fcmLeak%s%04d:APA91bH-%s_%04d-kairanLeakProbeTokenXYZ" % (
            tag, i, tag, i)
        self.apns = ("feed%s%04d" % ("".join("%x" % (ord(c) % 16) for c in tag), i)
                     ).ljust(64, "7")

    def inline(self):
        return {"id": self.id, "name": self.name, "email": self.email,
                "line": self.line,
                "push": [{"platform": "fcm", "token": self.fcm},
                         {"platform": "apns", "token": self.apns}]}


def quoted(addr):
    local, _, dom = addr.rpartition("@")
    return '"%s"@%s' % (local, dom)


def needles_of(people, names=True):
    """(needle bytes, label) pairs: what must not be found."""
    res = []
    for p in people:
        local = p.email.rpartition("@")[0]
        for s in (p.email, p.email.lower(), quoted(p.email), local):
            res.append((s.encode(), "email " + p.id))
        res.append((p.line.encode(), "LINE id " + p.id))
        res.append((p.line[9:25].encode(), "LINE id slice " + p.id))
        res.append((p.fcm.encode(), "FCM token " + p.id))
        res.append((p.fcm[:16].encode(), "FCM token slice " + p.id))
        res.append((p.apns.encode(), "APNs token " + p.id))
        res.append((p.apns[:20].encode(), "APNs token slice " + p.id))
        if names:
            res.append((p.name.encode(), "name " + p.id))
            esc = json.dumps(p.name)[1:-1]            # \u5c71... (lower hex)
            res.append((esc.encode(), "name (JSON escaped) " + p.id))
            up = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(),
                        esc)
            res.append((up.encode(), "name (JSON escaped) " + p.id))
    return res


def find(blobs, needles, where):
    """Needles found in any blob: a list of short descriptions."""
    found = []
    for b in blobs:
        for n, label in needles:
            i = b.find(n)
            if i >= 0:
                found.append("%s: %s in %r" % (where, label, b[max(0, i - 50):i + 60]))
    return found


# ------------------------------------------------------------------ Redis

def redis_blobs(r):
    """Every key name and every value of every type, as bytes."""
    c = r.client()
    blobs, nkeys, cursor = [], 0, b"0"
    types = {}
    while True:
        cursor, keys = c.call("SCAN", cursor, "COUNT", 1000)
        for key in keys:
            nkeys += 1
            blobs.append(key)
            t = c.call("TYPE", key)
            types[t] = types.get(t, 0) + 1
            if t == "string":
                vals = [c.call("GET", key)]
            elif t == "hash":
                vals = c.call("HGETALL", key)
            elif t == "list":
                vals = c.call("LRANGE", key, 0, -1)
            elif t == "set":
                vals = c.call("SMEMBERS", key)
            elif t == "zset":
                vals = c.call("ZRANGE", key, 0, -1, "WITHSCORES")
            elif t == "stream":
                vals = []
                for eid, kv in c.call("XRANGE", key, "-", "+"):
                    vals.append(eid)
                    vals.extend(kv)
                for g in c.call("XINFO", "GROUPS", key):
                    gd = dict(zip(g[::2], g[1::2]))
                    vals.extend(x for x in g if isinstance(x, bytes))
                    for cons in c.call("XINFO", "CONSUMERS", key, gd[b"name"]):
                        vals.extend(x for x in cons if isinstance(x, bytes))
            elif t == "none":
                vals = []
            else:
                raise AssertionError("unexpected type %s of %r" % (t, key))
            blobs.extend(v for v in vals if isinstance(v, bytes))
        if cursor in (b"0", 0, "0"):
            c.close()
            return nkeys, types, blobs


def aof_dir(r):
    return os.path.join(r.dir, "appendonlydir")


def aof_manifest(r):
    """[(file, type)] of the manifest (type b base, i incr, h history)."""
    res = []
    for p in glob.glob(os.path.join(aof_dir(r), "*.manifest")):
        with open(p) as f:
            for line in f:
                w = line.split()
                d = dict(zip(w[::2], w[1::2]))
                if "file" in d:
                    res.append((d["file"], d.get("type", "?")))
    return res


def aof_blobs(r):
    """The content of every file in appendonlydir (manifest included)."""
    res = []
    for p in sorted(glob.glob(os.path.join(aof_dir(r), "*"))):
        with open(p, "rb") as f:
            res.append(f.read())
    return res


def rewrite_aof(r):
    """BGREWRITEAOF, wait until it finished and the history is deleted."""
    before = aof_manifest(r)
    r.call("BGREWRITEAOF")

    def done():
        info = r.call("INFO", "persistence").decode()
        kv = dict(l.split(":", 1) for l in info.split("\r\n") if ":" in l)
        if kv.get("aof_rewrite_in_progress") != "0" or \
                kv.get("aof_rewrite_scheduled") != "0":
            return False
        m = aof_manifest(r)
        if m == before or any(t == "h" for _, t in m):
            return False
        listed = {f for f, _ in m}
        on_disk = {os.path.basename(p) for p in glob.glob(os.path.join(aof_dir(r), "*"))
                   if not p.endswith(".manifest")}
        if on_disk != listed:
            return False
        assert kv.get("aof_last_bgrewrite_status") == "ok", kv
        return True
    wait_for(done, 20, 0.05, what="BGREWRITEAOF to finish")
    return aof_manifest(r)


# ------------------------------------------------------------------ HTTP

def api(port, method, path, token=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    h = {}
    if token:
        h["Authorization"] = "Bearer " + token
    data = None
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    resp = c.getresponse()
    raw = resp.read()
    c.close()
    return resp.status, raw


def bcast(**kw):
    b = {"tenant": TENANT, "category": "emergency", "subject": SUBJECT,
         "body": BODY, "channels": ["email", "line", "push"]}
    b.update(kw)
    return b


# ====================================================================

INLINE = [Person("ki", i, carrier=(i == 0)) for i in range(4)]     # (a)
DIRECTORY = [Person("dir", i, carrier=(i == 1)) for i in range(5)]  # (b)
API = [Person("api", i, carrier=(i == 2)) for i in range(4)]        # (c)
FAILOVER = [Person("sg", i) for i in range(3)]                      # (d)
RAW = [Person("raw", i, carrier=(i == 0)) for i in range(2)]        # [6]
BAD = [Person("bad", i) for i in range(2)]                          # (e)
PEOPLE = INLINE + DIRECTORY + API + FAILOVER + BAD

CLI_OUT = []      # (label, text, names_allowed) of every kairanctl output
API_OUT = []      # bytes of every API answer

r = Redis(out, appendonly=True,
          extra_args=["--aof-use-rdb-preamble", "no"])
smtp = FakeSMTP(out, tls="starttls", auth="kairan:" + SMTP_PASS, require_tls=True)
line = FakeLine(out, "line")
fcm = FakeFCM(out)
apns = FakeAPNs(out)
sg = FakeSendGrid(out, SG_KEY)
HTTP_PORT = free_port()
k = Kairan(out, r, smtp=smtp, conf={
    "routes": {"email": "smtp", "line": "line", "push": "push"},
    "line": {"api_base": line.url, "token": LINE_TOKEN},
    "fcm": fcm.conf(connections=1), "apns": apns.conf(connections=1),
    "sendgrid": {"api_base": sg.url, "api_key": SG_KEY},
    "failover": {"mode": "emergency-only", "failures": "2",
                 "window_ms": "30s", "probe_ms": "1s"},
    "smtp": {"timeout_ms": "3000"},
    "queue": {"retry_base_ms": "100", "retry_cap_ms": "400",
              "max_attempts": "50"},
    "dispatcher": {"log_level": "debug"},
    "http": {"listen": "127.0.0.1:%d" % HTTP_PORT, "rate": "1000"},
})
AUDIT = k.sections["retention"]["audit_dir"]


def ctl(label, *args, input=None, names_allowed=False, want=0):
    cp = k.ctl(*args, input=input)
    CLI_OUT.append((label, cp.stdout + cp.stderr, names_allowed))
    assert cp.returncode == want, "kairanctl %s: exit %d: %s" % (
        " ".join(args), cp.returncode, cp.stderr)
    return cp


def wait_ended(bid, timeout=60):
    h = k.wait_done(bid, timeout)
    assert h.get("status") == "done", "%s: %r" % (bid, h)
    c = k.counts(bid)
    for ch, st in c.items():
        bad = {s: n for s, n in st.items()
               if s not in ("delivered", "total", "fallback") and n}
        assert not bad, "%s %s: %r" % (bid, ch, st)
    return c


d = k.start()
d.wait_output('"ready"', 15)
BIDS = []
BAD_BID = None

# ------------------------------------------------------------ (a) inline
with tap.check("(a) inline recipients through kairanctl submit: delivered on "
               "every channel"):
    cp = ctl("submit inline", "submit", "-",
             input=json.dumps(bcast(recipients=[p.inline() for p in INLINE]),
                              ensure_ascii=False))
    bid = cp.stdout.strip()
    BIDS.append(bid)
    c = wait_ended(bid)
    tap.diag("(a) %s: %r" % (bid, c))
    assert c["email"]["delivered"] == len(INLINE), c
    assert c["push"]["delivered"] == 2 * len(INLINE), c

# ------------------------------------------------------------ (e) refusals
# Providers that refuse (the relay's reply quoting the address, LINE 400,
# FCM 404, APNs 400): reasons reach the log, bc:<id>:r and the DLQ.
with tap.check("(e) every provider refuses two recipients: failed, in the DLQ "
               "with the providers' reasons"):
    smtp.set_control({"rules": [
        {"match": BAD[0].email, "action": "5xx", "code": 550,
         "stage": "data",  # at RCPT it would be a bounce (issue 18)
         "text": "5.1.1 <%s>: Recipient address rejected: User unknown"
                 % BAD[0].email},
        {"match": BAD[1].email, "action": "4xx", "code": 450, "times": 1,
         "text": "4.2.0 <%s>: Recipient address rejected: Greylisted"
                 % BAD[1].email}]})
    line.set_control({"rules": [{"action": "400", "match": p.line[-8:]}
                                for p in BAD]})
    fcm.set_control({"rules": [{"match": "fcmLeakbad", "action": "404"}]})
    apns.set_control({"rules": [{"match": p.apns[:12], "action": "400"}
                                for p in BAD]})
    cp = ctl("submit refused", "submit", "-",
             input=json.dumps(bcast(recipients=[p.inline() for p in BAD]),
                              ensure_ascii=False))
    bid = cp.stdout.strip()
    BIDS.append(bid)
    h = k.wait_done(bid, 60)
    c = k.counts(bid)
    tap.diag("(e) %s: %r" % (bid, c))
    assert c["email"].get("failed") == 1 and c["email"].get("delivered") == 1, c
    assert c["line"].get("failed") == 2, c
    assert c["push"].get("failed") == 4, c
    n = r.call("XLEN", "kairan:dlq")
    # (LINE: the two ids went in one multicast job, one dead letter)
    assert n >= 6, "DLQ has %d entries" % n
    BAD_BID = bid
    for x in (smtp, line, fcm, apns):
        x.set_control({})

# ------------------------------------------------------------ (b) directory
with tap.check("(b) directory import (CSV) then broadcasts to the group by "
               "kairanctl and by the API"):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["ID", "氏名", "グループ", "メールアドレス", "LINE", "FCMトークン",
                "APNsトークン"])
    for p in DIRECTORY:
        w.writerow([p.id, p.name, "2-A;leak", p.email, p.line, p.fcm, p.apns])
    path = os.path.join(out, "名簿.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write(buf.getvalue())
    ctl("recipients import", "recipients", "import", "--tenant", TENANT, path)
    ctl("groups list", "groups", "list", "--tenant", TENANT)
    cp = ctl("submit group", "submit", "-",
             input=json.dumps(bcast(audience={"groups": ["2-A"]}),
                              ensure_ascii=False))
    bid = cp.stdout.strip()
    BIDS.append(bid)
    c = wait_ended(bid)
    tap.diag("(b) %s: %r" % (bid, c))
    assert c["email"]["delivered"] == len(DIRECTORY), c

# ------------------------------------------------------------ (c) API
ADMIN = None
with tap.check("(c) POST /v1/broadcasts with an admin token: inline "
               "recipients and the directory group"):
    cp = ctl("token create", "token", "create", "--role", "admin", "--name",
             "Leak Test Admin")
    ADMIN = cp.stdout.strip()
    CLI_OUT.pop()     # its output is the token itself, printed once on purpose
    assert ADMIN.startswith("kn_") and len(ADMIN.split("_", 2)[2]) >= 43, ADMIN
    st, raw = api(HTTP_PORT, "POST", "/v1/broadcasts", ADMIN,
                  bcast(recipients=[p.inline() for p in API], priority="urgent"))
    API_OUT.append(raw)
    assert st == 202, (st, raw)
    bid = json.loads(raw)["id"]
    BIDS.append(bid)
    st, raw = api(HTTP_PORT, "POST", "/v1/broadcasts", ADMIN,
                  bcast(audience={"groups": ["leak"],
                                  "recipients": [DIRECTORY[0].id]},
                        channels=["line", "push"]))
    API_OUT.append(raw)
    assert st == 202, (st, raw)
    bid2 = json.loads(raw)["id"]
    BIDS.append(bid2)
    for b in (bid, bid2):
        c = wait_ended(b)
        tap.diag("(c) %s: %r" % (b, c))
        st, raw = api(HTTP_PORT, "GET", "/v1/broadcasts/" + b, ADMIN)
        API_OUT.append(raw)
        assert st == 200, (st, raw)
    for path in ("/v1/queues", "/v1/broadcasts?active=1", "/metrics"):
        st, raw = api(HTTP_PORT, "GET", path, ADMIN)
        API_OUT.append(raw)
        assert st == 200, (path, st, raw[:200])

# ------------------------------------------------------------ (d) SendGrid
with tap.check("(d) relay down: an urgent broadcast's e-mail goes through "
               "SendGrid"):
    smtp.set_control({"down": "refuse"})
    cp = ctl("submit failover", "submit", "-",
             input=json.dumps(bcast(recipients=[p.inline() for p in FAILOVER],
                                    priority="urgent", channels=["email"]),
                              ensure_ascii=False))
    bid = cp.stdout.strip()
    BIDS.append(bid)
    wait_for(lambda: {p.email for p in FAILOVER} <= set(sg.recipients()), 30,
             what="the failover recipients at SendGrid")
    wait_ended(bid)
    smtp.set_control({})

# ------------------------------------------------------------ [1]
with tap.check("[1] every fake got every address, id and token (they went "
               "through kairan)"):
    got_mail = {a for m in smtp.messages() for a in m["rcpt"]} | set(sg.recipients())
    want_mail = {p.email for p in PEOPLE if p is not BAD[0]}
    assert want_mail <= got_mail, "missing e-mail: %r" % sorted(want_mail - got_mail)
    got_line = line.ids()
    want_line = {p.line for p in INLINE + DIRECTORY + API}
    assert want_line <= got_line, "missing LINE: %r" % sorted(want_line - got_line)
    got_fcm = set(fcm.tokens_delivered())
    want_fcm = {p.fcm for p in INLINE + DIRECTORY + API}
    assert want_fcm <= got_fcm, "missing FCM: %r" % sorted(want_fcm - got_fcm)
    got_apns = set(apns.tokens_delivered())
    want_apns = {p.apns for p in INLINE + DIRECTORY + API}
    assert want_apns <= got_apns, "missing APNs: %r" % sorted(want_apns - got_apns)
    assert set(sg.recipients()) & {p.email for p in FAILOVER}, "no SendGrid"
    rcpt_ev = [e.get("rcpt") for e in smtp.events("rcpt")]
    assert BAD[0].email in rcpt_ev, "the refused address never reached the relay"

# operator commands whose output is checked too
for bid in BIDS:
    ctl("watch " + bid, "watch", bid, want=1 if bid == BAD_BID else 0)
    ctl("report " + bid, "report", bid, "--format", "json", names_allowed=True)
ctl("status", "status")
ctl("status --json", "status", "--json")
ctl("dlq list", "dlq", "list")
ctl("dlq list --json", "dlq", "list", "--json")
ctl("token list", "token", "list")
ctl("token list --json", "token", "list", "--json")
EXPORT = k.ctl("recipients", "export", "--tenant", TENANT)

ALL = needles_of(PEOPLE)
NO_NAMES = needles_of(PEOPLE, names=False)
ADMIN_SECRET = ADMIN.split("_", 2)[2] if ADMIN else "no-admin-token"


def key_line(path):
    """A line from the middle of a PEM private key."""
    with open(path) as f:
        lines = [l.strip() for l in f if l.strip() and not l.startswith("-----")]
    return lines[len(lines) // 2]


SECRETS = [(s.encode(), label) for s, label in (
    (ADMIN or "no-admin-token", "API token"), (ADMIN_SECRET, "API token secret"),
    (LINE_TOKEN, "LINE channel token"), (SG_KEY, "SendGrid API key"),
    (SMTP_PASS, "SMTP password"), (key_line(fcm.private_key), "FCM private key"),
    (key_line(apns.key_file), "APNs private key"))]

# ------------------------------------------------------------ [2]
with tap.check("[2] no plaintext address, LINE id, push token or name in any "
               "Redis key or value (every type)"):
    nkeys, types, blobs = redis_blobs(r)
    tap.diag("[2] %d keys %r, %d values, %d needles"
             % (nkeys, types, len(blobs), len(ALL)))
    assert nkeys > 20 and types.get("stream") and types.get("hash") and \
        types.get("set") and types.get("zset") and types.get("list"), types
    found = find(blobs, ALL, "redis")
    assert not found, "\n".join(found[:10])

with tap.check("[5] no secret (API token, LINE token, SendGrid key, SMTP "
               "password, private keys) in any Redis key or value"):
    found = find(blobs, SECRETS, "redis")
    assert not found, "\n".join(found[:10])

# ------------------------------------------------------------ [3]
with tap.check("[3] none in the AOF before a rewrite"):
    files = aof_blobs(r)
    tap.diag("[3] AOF files: %r (%d bytes)"
             % (aof_manifest(r), sum(len(b) for b in files)))
    assert sum(len(b) for b in files) > 10000, "AOF nearly empty"
    assert any(b"EXEC" in b or b"XADD" in b for b in files), "not an AOF"
    found = find(files, ALL + SECRETS, "aof")
    assert not found, "\n".join(found[:10])

with tap.check("[3] none in the AOF after BGREWRITEAOF"):
    m = rewrite_aof(r)
    files = aof_blobs(r)
    tap.diag("[3] after rewrite: %r" % (m,))
    assert any(b.startswith(b"*") and b"kairan:" in b for b in files), \
        "rewritten AOF is not commands (rdb preamble?)"
    found = find(files, ALL + SECRETS, "aof")
    assert not found, "\n".join(found[:10])

# ------------------------------------------------------------ [4]
with tap.check("[4] kairand's log: valid JSON lines, no address, id, token, "
               "name or secret"):
    raw = open(d.stderr_path, "rb").read()
    lines = [l for l in raw.split(b"\n") if l.strip()]
    bad = []
    for l in lines:
        try:
            json.loads(l.decode("utf-8"))
        except ValueError:
            bad.append(l[:200])
    tap.diag("[4] %d log lines" % len(lines))
    assert len(lines) > 20, "hardly any log (debug level?)"
    assert not bad, "lines that are not JSON: %r" % bad[:3]
    found = find(lines, ALL + SECRETS, "kairand log")
    assert not found, "\n".join(found[:10])

with tap.check("[4] audit logs: none either"):
    files = sorted(glob.glob(os.path.join(AUDIT, "*.jsonl")))
    names = [os.path.basename(f) for f in files]
    tap.diag("[4] audit files: %r" % names)
    assert "operations.jsonl" in names and "login.jsonl" in names, names
    blobs = [open(f, "rb").read() for f in files]
    assert any(b"recipients.import" in b for b in blobs), "import not audited"
    found = find(blobs, ALL + SECRETS, "audit")
    assert not found, "\n".join(found[:10])

with tap.check("[4] kairanctl output (all but recipients export) and API "
               "answers: none"):
    found = []
    for label, text, names_ok in CLI_OUT:
        found += find([text.encode()], (NO_NAMES if names_ok else ALL) + SECRETS,
                      "kairanctl " + label)
    found += find(API_OUT, ALL + SECRETS, "API answer")
    tap.diag("[4] %d kairanctl outputs, %d API answers checked"
             % (len(CLI_OUT), len(API_OUT)))
    assert not found, "\n".join(found[:10])

with tap.check("[4] recipients export does decrypt (the one command that "
               "prints them)"):
    assert EXPORT.returncode == 0, EXPORT.stderr
    for p in DIRECTORY:
        for v in (p.email, p.line, p.fcm, p.apns, p.name):
            assert v in EXPORT.stdout, "%s not exported" % v

# ------------------------------------------------------------ [6]
with tap.check("[6] raw producer XADD with plaintext: processed, entry gone "
               "(XLEN 0), nothing in Redis"):
    b = bcast(recipients=[p.inline() for p in RAW], id="raw-leak-1")
    r.call("XADD", "kairan:broadcasts", "*", "job", json.dumps(b, ensure_ascii=False))
    wait_ended(k.name_of(TENANT, "raw-leak-1"))
    wait_for(lambda: r.call("XLEN", "kairan:broadcasts") == 0, 10,
             what="the raw entry to be deleted")
    got = {a for m in smtp.messages() for a in m["rcpt"]}
    assert {p.email for p in RAW} <= got, "raw broadcast not delivered"
    _, _, blobs = redis_blobs(r)
    found = find(blobs, needles_of(RAW) + ALL + SECRETS, "redis")
    assert not found, "\n".join(found[:10])

with tap.check("[6] the AOF holds the raw plaintext until the next rewrite "
               "(the scan can see a leak), and not after it"):
    before = find(aof_blobs(r), needles_of(RAW[:1]), "aof")
    tap.diag("[6] before the rewrite: %d hits of the raw recipient" % len(before))
    assert before, "the raw XADD's plaintext is not in the AOF: is the scan blind?"
    rewrite_aof(r)
    found = find(aof_blobs(r), needles_of(RAW) + ALL + SECRETS, "aof")
    assert not found, "\n".join(found[:10])

with tap.check("[6] kairand's log after the raw broadcast: none"):
    found = find([open(d.stderr_path, "rb").read()], needles_of(RAW), "kairand log")
    assert not found, "\n".join(found[:10])

with tap.check("kairand still running, stops cleanly"):
    assert d.alive(), "kairand exited (%s)" % d.returncode
    assert d.stop(20) == 0

for x in (line, sg, fcm, apns, smtp):
    x.stop()
r.stop()
tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
