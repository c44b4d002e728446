#!/usr/bin/python3
"""test_drill.py - drills with confirmation, the LINE webhook, tenant close
and purge (issue 6: "Drills and confirmation", "Audit and retention").

  [1] kairanctl drill to 500 inline recipients (outbox adapter): every .eml
      carries a personal link; exactly 300 are confirmed by POSTing to it;
      kairanctl report --format json: recipients 500, reached 500,
      confirmed 300, unconfirmed = the other 200 ids with their names.
  [2] the link: GET shows the message (escaped, 【訓練】, a form) and records
      nothing; a forged token, an altered one (one character flipped) -> 404,
      nothing recorded; a second POST -> 200, nothing new.
  [3] report --format html is well-formed XML-ish and has an <svg>;
      text names "not proof of reading".
  [4] LINE webhook: a good signature on "unfollow" puts the user in
      dead:line (next broadcast: n:line:dead 1, no LINE job); a bad or
      missing signature changes nothing; "follow" takes them out again.
  [5] tenant close: the tenant's token gets 403 at once (login log line
      "tenant_closed"); another tenant's token still works.
  [6] purge with a fixed clock (--now): fiscal-year window (June rule),
      delivery records, audit lines, closed tenant erased after
      retention.closed_tenant_days; exactly those keys go.
  [7] operation log: kairanctl drill/submit and cancel wrote lines without
      addresses.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_drill.py
"""

import base64
import email
import email.policy
import glob
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.dom.minidom

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("drill")
N = 500
NCONF = 300
SECRET = "line-channel-secret-for-tests"
AUDIT = os.path.join(out, "audit")


def http(port, method, path, body=None, headers=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)


def links_of(outbox, bid):
    """{recipient address: link} from the .eml files of a broadcast."""
    res = {}
    for path in glob.glob(os.path.join(outbox, bid, "*.eml")):
        with open(path, "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.default)
        body = msg.get_body(("plain",)).get_content()
        m = re.search(r"(https?://\S+/a/[A-Za-z0-9_.-]+)", body)
        res[str(msg["To"])] = (m.group(1) if m else None, str(msg["Subject"]))
    return res


def jsonl(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(x) for x in f if x.strip()]
    except FileNotFoundError:
        return []


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port},
                     "line": {"channel_secret": SECRET},
                     # 60 + 10 days of backups: the 70 days of row 9
                     "retention": {"audit_dir": AUDIT,
                                   "closed_tenant_days": "60",
                                   "backup_days": "10"}})
    P = k.prefix
    d = k.start()
    d.wait_output('"listening"', 15)

    rcpts = [{"id": "s-%04d" % i, "name": "生徒 %d <b>" % i,
              "email": "p%04d@docomo.ne.jp" % i} for i in range(N)]
    by_addr = {r["email"]: r for r in rcpts}
    drill = {"tenant": "sakura", "category": "emergency",
             "subject": "地震発生 <script>",
             "body": "避難してください & 安否を確認します。",
             "channels": ["email"], "recipients": rcpts}
    cp = k.ctl("drill", "-", input=json.dumps(drill, ensure_ascii=False))
    bid = cp.stdout.strip()
    tap.ok(cp.returncode == 0 and bid, "kairanctl drill prints an id",
           cp.stderr)
    if not bid:
        tap.done()
        sys.exit(1)
    h = k.wait_done(bid, 60)
    tap.eq((h.get("drill"), h.get("ack")), ("1", "1"),
           "the drill is stored with drill and ack on")

    links = {}
    with tap.check("[1] every message has 【訓練】 and a personal link"):
        links = wait_for(lambda: (lambda L: L if len(L) == N else None)(
            links_of(k.outbox, bid)), 30, 0.2, what="500 .eml files")
        assert all(v[0] for v in links.values()), "a message without a link"
        assert all(v[1].startswith("【訓練】") for v in links.values())
        assert len({v[0] for v in links.values()}) == N, "links not unique"

    addrs = sorted(links)
    confirm = addrs[:NCONF]
    with tap.check("[2] GET shows the message, escaped, with a form; records nothing"):
        url = links[confirm[0]][0]
        path = url[len("http://127.0.0.1:%d" % port):]
        st, body, hdr = http(port, "GET", path)
        assert st == 200, st
        assert "【訓練】" in body and "&lt;script&gt;" in body
        assert "<script>" not in body
        assert "避難してください &amp; 安否" in body
        assert '<form method="post">' in body and "確認しました" in body
        assert "default-src 'none'" in hdr.get("Content-Security-Policy", "")
        assert redis.call("HLEN", P + "bc:%s:ack" % bid) == 0

    with tap.check("[1] exactly 300 confirmed through the links (POST 200)"):
        for a in confirm:
            path = links[a][0][len("http://127.0.0.1:%d" % port):]
            st, body, _ = http(port, "POST", path, b"",
                               {"Content-Type": "application/x-www-form-urlencoded"})
            assert st == 200 and "ありがとうございました" in body, (st, body[:200])
        assert redis.call("HLEN", P + "bc:%s:ack" % bid) == NCONF

    with tap.check("[2] a reused link: 200 and nothing new"):
        path = links[confirm[0]][0][len("http://127.0.0.1:%d" % port):]
        before = redis.call("HGET", P + "bc:%s:ack" % bid,
                            by_addr[confirm[0]]["id"])
        st, body, _ = http(port, "POST", path, b"")
        assert st == 200, st
        assert redis.call("HGET", P + "bc:%s:ack" % bid,
                          by_addr[confirm[0]]["id"]) == before
        assert int(k.bc(bid)["acked"]) == NCONF

    with tap.check("[2] forged and altered links: 404, nothing recorded"):
        other = links[addrs[NCONF]][0][len("http://127.0.0.1:%d" % port):]
        tok = other[len("/a/"):]
        flip = tok[:-3] + ("0" if tok[-3] != "0" else "1") + tok[-2:]
        payload = tok.split(".")[0]
        forged = (base64.urlsafe_b64encode(("%s|s-9999" % bid).encode())
                  .decode().rstrip("=") + "." + "ab" * 16)
        swapped = (base64.urlsafe_b64encode(("%s|%s" % (bid, by_addr[confirm[1]]["id"]))
                                            .encode()).decode().rstrip("=")
                   + "." + tok.split(".")[1])
        for bad in (flip, forged, swapped, payload, "x", payload + ".zz"):
            for m in ("GET", "POST"):
                st, body, _ = http(port, m, "/a/" + bad, b"" if m == "POST" else None)
                assert st == 404, (m, bad, st)
        assert redis.call("HLEN", P + "bc:%s:ack" % bid) == NCONF
        assert int(k.bc(bid)["acked"]) == NCONF

    with tap.check("[1] report --format json: 500 / 500 / 300 and the 200 others by name"):
        cp = k.ctl("report", bid, "--format", "json")
        assert cp.returncode == 0, cp.stderr
        rep = json.loads(cp.stdout)
        assert rep["recipients"] == N, rep["recipients"]
        assert rep["reached"] == N, rep["reached"]
        assert rep["confirmed"] == NCONF, rep["confirmed"]
        assert set(rep["reached_within_s"]) == {"60", "300", "900"}
        assert rep["reached_within_s"]["900"] == N
        assert rep["confirm_p50_s"] is not None and rep["confirm_p90_s"] >= rep["confirm_p50_s"]
        want = {by_addr[a]["id"]: by_addr[a]["name"] for a in addrs[NCONF:]}
        got = {u["id"]: u["name"] for u in rep["unconfirmed"]}
        assert got == want, (len(got), len(want))
        u0 = rep["unconfirmed"][0]
        assert u0["addresses"] and "***@docomo.ne.jp" in u0["addresses"][0], u0
        assert "p0" not in json.dumps(rep["unconfirmed"]), "an unmasked address"
        assert rep["channels"]["email"]["reached"] == N

    with tap.check("[3] report --format html is well-formed and has an <svg>; text says not proof"):
        cp = k.ctl("report", bid, "--format", "html")
        assert cp.returncode == 0, cp.stderr
        html = cp.stdout
        assert "<svg" in html and "<polyline" in html
        xml.dom.minidom.parseString(html.replace("<!doctype html>", ""))
        cp = k.ctl("report", bid)
        assert cp.returncode == 0 and "not proof of reading" in cp.stdout
        assert k.ctl("report", "no-such-bc").returncode == 3

    # ---- LINE webhook
    uid = "U" + "4af4980629a1b2c3d4e5f60718293a4b"

    def hook(events, sig=None, good=True):
        body = json.dumps({"destination": "Uxxx", "events": events}).encode()
        s = base64.b64encode(hmac.new((SECRET if good else "wrong").encode(),
                                      body, hashlib.sha256).digest()).decode()
        hdr = {"Content-Type": "application/json"}
        if sig is not False:
            hdr["X-Line-Signature"] = s
        return http(port, "POST", "/line/webhook", body, hdr)[0]

    ev = lambda t: [{"type": t, "mode": "active", "timestamp": 1,
                     "source": {"type": "user", "userId": uid},
                     "webhookEventId": "01H", "deliveryContext": {"isRedelivery": False}}]
    with tap.check("[4] bad or missing X-Line-Signature: 403/401, nothing changes"):
        assert hook(ev("unfollow"), good=False) == 403
        assert hook(ev("unfollow"), sig=False) == 401
        assert redis.call("SCARD", P + "dead:line") == 0

    with tap.check("[4] good signature on unfollow: the next broadcast makes no LINE job"):
        assert hook(ev("unfollow")) == 200
        assert redis.call("SCARD", P + "dead:line") == 1
        b2 = k.submit({"tenant": "sakura", "subject": "s", "body": "b",
                       "channels": ["line"],
                       "recipients": [{"id": "L1", "line": uid}]})
        h2 = k.wait_done(b2, 30)
        assert h2.get("n:line:dead") == "1", h2
        assert "n:line:total" not in h2 or h2["n:line:total"] == "0", h2

    with tap.check("[4] follow takes the user out of dead:line"):
        assert hook(ev("follow")) == 200
        assert redis.call("SCARD", P + "dead:line") == 0

    # ---- tenant close
    def token(role, name, tenant=None):
        args = ["token", "create", "--role", role, "--name", name]
        if tenant:
            args += ["--tenant", tenant]
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.strip()

    with tap.check("[5] tenant close: its token gets 403 at once, others still work"):
        t_s = token("limited_admin", "ume office", "ume")
        t_m = token("limited_admin", "momo office", "momo")
        auth = lambda t: {"Authorization": "Bearer " + t}
        st, body, _ = http(port, "GET", "/v1/broadcasts?active=1", None, auth(t_s))
        assert st == 200, (st, body)
        cp = k.ctl("tenant", "close", "ume")
        assert cp.returncode == 0, cp.stderr
        st, body, _ = http(port, "GET", "/v1/broadcasts?active=1", None, auth(t_s))
        assert st == 403 and "closed" in body, (st, body)
        assert http(port, "GET", "/v1/broadcasts?active=1", None, auth(t_m))[0] == 200
        log = jsonl(os.path.join(AUDIT, "login.jsonl"))
        assert any(x.get("result") == "tenant_closed" and x.get("status") == 403
                   for x in log), log[-3:]

    d.stop()

    with tap.check("[7] the operation log has drill/submit lines and no address"):
        ops = jsonl(os.path.join(AUDIT, "operations.jsonl"))
        subs = [o for o in ops if o.get("op") == "broadcast.submit"]
        assert any(o.get("broadcast") == bid and o.get("tenant") == "sakura"
                   for o in subs), ops[:3]
        raw = open(os.path.join(AUDIT, "operations.jsonl"), encoding="utf-8").read()
        assert "@docomo" not in raw and uid not in raw
        assert all(re.search(r"\+09:00$", o["time"]) for o in ops)


    # ---- purge with a fixed clock
    def ms(iso):
        import datetime
        return int(datetime.datetime.fromisoformat(iso).timestamp() * 1000)

    def forge_bc(bid_, tenant, created_iso):
        c = ms(created_iso)
        redis.call("HSET", P + "bc:" + bid_, "tenant", tenant, "status", "done",
                   "created_ms", c, "ack", 1)
        redis.call("HSET", P + "bc:%s:r" % bid_, "email:00ff", "d|x1|%d|250 ok" % c)
        redis.call("RPUSH", P + "bc:%s:aud" % bid_, "d:x1")
        redis.call("HSET", P + "bc:%s:ack" % bid_, "x1", c + 1000)
        redis.call("SADD", P + "bc:%s:m" % bid_, "x1")
        redis.call("HSET", P + "bc:%s:gs" % bid_, "x1", "0@%d" % c)
        redis.call("ZADD", P + "bcs", c, bid_)

    def keys_of(bid_):
        # (:gs, whom a next_guardian broadcast went to, goes with :r)
        ks = [x for x in ("", ":r", ":aud", ":ack", ":gs")
              if redis.call("EXISTS", P + "bc:" + bid_ + x)]
        assert (":r" in ks) == (":gs" in ks), (bid_, ks)
        return [x for x in ks if x != ":gs"]

    forge_bc("bc-a", "momo", "2023-03-31T23:59:00+09:00")   # FY2022
    forge_bc("bc-b", "momo", "2023-04-01T00:00:00+09:00")   # FY2023
    forge_bc("bc-c", "momo", "2024-04-01T00:00:00+09:00")   # FY2024
    forge_bc("bc-d", "momo", "2027-01-10T09:00:00+09:00")   # recent
    # kaede: a directory, a group, an index, a token, a broadcast.
    redis.call("HSET", P + "rcpt:kaede:k1", "name", "sealed",
               "c", json.dumps({"id": "k1", "e": "sealed", "ei": "ab12",
                                "p": [{"k": "fcm", "t": "s", "ti": "cd34"}]}))
    redis.call("SADD", P + "rcpts:kaede", "k1")
    redis.call("SADD", P + "grp:kaede:2-A", "k1")
    redis.call("SADD", P + "groups:kaede", "2-A")
    redis.call("SADD", P + "bidx:kaede:email:ab12", "k1")
    redis.call("SADD", P + "bidx:kaede:push:cd34", "k1")
    redis.call("SADD", P + "tenants", "kaede", "momo")
    t_k = token("limited_admin", "kaede office", "kaede")
    forge_bc("bc-k", "kaede", "2027-03-01T09:00:00+09:00")
    kaede_keys = ["rcpt:kaede:k1", "rcpts:kaede", "grp:kaede:2-A", "groups:kaede",
                  "bidx:kaede:email:ab12", "bidx:kaede:push:cd34",
                  "token:" + t_k.split("_")[1], "bc:bc-k"]
    audit_old = [
        {"time": "2022-05-15T11:59:00.000+09:00", "op": "old-drop"},
        {"time": "2022-05-15T12:01:00.000+09:00", "op": "old-keep"},
    ]
    with open(os.path.join(AUDIT, "operations.jsonl"), encoding="utf-8") as f:
        cur_ops = f.read()
    with open(os.path.join(AUDIT, "operations.jsonl"), "w", encoding="utf-8") as f:
        for a in audit_old:
            f.write(json.dumps(a) + "\n")
        f.write("not json\n")
        f.write(cur_ops)

    with tap.check("[6] tenant close --now, purge refuses while another holds the lock"):
        cp = k.ctl("tenant", "close", "kaede", "--now", "2027-04-01T00:00:00+09:00")
        assert cp.returncode == 0, cp.stderr
        redis.call("SET", P + "lock:purge", "someone", "PX", 60000)
        cp = k.ctl("purge", "--now", "2027-05-15T12:00:00+09:00")
        assert cp.returncode == 1 and "another purge" in cp.stderr, (cp.returncode, cp.stderr)
        assert keys_of("bc-a") == ["", ":r", ":aud", ":ack"]
        redis.call("DEL", P + "lock:purge")

    with tap.check("[6] purge in May 2027 (FY2027): FY2022 gone, FY2023 kept until June; old :r gone; audit cut at 5 years"):
        with open(os.path.join(AUDIT, "operations.jsonl"), encoding="utf-8") as f:
            n_ops = len(f.read().splitlines())
        cp = k.ctl("purge", "--now", "2027-05-15T12:00:00+09:00")
        assert cp.returncode == 0, cp.stderr
        assert keys_of("bc-a") == [], keys_of("bc-a")
        assert redis.call("ZSCORE", P + "bcs", "bc-a") is None
        assert keys_of("bc-b") == ["", ":aud", ":ack"], keys_of("bc-b")
        assert keys_of("bc-c") == ["", ":aud", ":ack"], keys_of("bc-c")
        assert keys_of("bc-d") == ["", ":r", ":aud", ":ack"], keys_of("bc-d")
        assert [redis.call("EXISTS", P + "bc:%s:m" % b) for b in
                ("bc-a", "bc-b", "bc-c", "bc-d")] == [0, 0, 0, 1], \
            "the link member set goes with the delivery records"
        assert redis.call("EXISTS", P + "bc:%s:r" % bid) == 1, "the drill's records"
        ops = open(os.path.join(AUDIT, "operations.jsonl"), encoding="utf-8").read()
        assert "old-drop" not in ops and "old-keep" in ops and "not json" in ops
        assert len(ops.splitlines()) == n_ops - 1, (len(ops.splitlines()), n_ops)
        # ume was closed in [5] (real clock, 2026-11): > 60 days ago -> erased.
        assert redis.call("EXISTS", P + "token:" + t_s.split("_")[1]) == 0
        assert redis.call("EXISTS", P + "token:" + t_m.split("_")[1]) == 1
        # kaede: closed 44 days ago -> untouched.
        assert all(redis.call("EXISTS", P + x) for x in kaede_keys), \
            [x for x in kaede_keys if not redis.call("EXISTS", P + x)]

    with tap.check("[6] 59.99 days after close: kaede still there"):
        cp = k.ctl("purge", "--now", "2027-05-30T23:59:00+09:00")
        assert cp.returncode == 0, cp.stderr
        assert all(redis.call("EXISTS", P + x) for x in kaede_keys)
        assert keys_of("bc-b") == ["", ":aud", ":ack"]

    with tap.check("[6] June 1 2027: FY2023 gone, FY2024 kept; kaede erased, momo kept"):
        cp = k.ctl("purge", "--now", "2027-06-01T00:00:00+09:00")
        assert cp.returncode == 0, cp.stderr
        assert keys_of("bc-b") == [], keys_of("bc-b")
        assert keys_of("bc-c") == ["", ":aud", ":ack"]
        assert keys_of("bc-d") == ["", ":r", ":aud", ":ack"]
        left = [x for x in kaede_keys if redis.call("EXISTS", P + x)]
        assert left == [], left
        assert redis.call("SISMEMBER", P + "tenants", "kaede") == 0
        assert redis.call("SISMEMBER", P + "tenants", "momo") == 1
        assert redis.call("HGET", P + "tenant:kaede", "erased_ms") is not None
        assert redis.call("EXISTS", P + "bc:" + bid) == 1
        assert redis.call("EXISTS", P + "lock:purge") == 0

    with tap.check("a configuration that keeps a closed school's data past "
                   "70 days (closed_tenant_days 60 + 30 days of backups): "
                   "kairand --check warns naming it (exit 0: the units run "
                   "it before every start); kairand still runs (the notices "
                   "must not stop after an upgrade) and logs the error"):
        k2 = Kairan(out, redis, email="outbox", name="promise",
                    conf={"retention": {"audit_dir": AUDIT,
                                        "closed_tenant_days": "60"}})
        cp = subprocess.run([os.path.join(BUILD, "kairand"), "-c", k2.conf,
                             "--check"], capture_output=True, text=True,
                            timeout=30)
        assert cp.returncode == 0 and "warning: this breaks a security " \
            "promise: retention.closed_tenant_days (60) + " \
            "retention.backup_days (30) = 90 days" in cp.stderr, cp
        # An https public_url whose one-click link e-mail cannot carry
        # (a comma ends it in List-Unsubscribe): a note, not a failure.
        k3 = Kairan(out, redis, email="outbox", name="comma",
                    conf={"http": {"public_url": "https://k.example.jp/a,b"},
                          "retention": {"audit_dir": AUDIT}})
        cp = subprocess.run([os.path.join(BUILD, "kairand"), "-c", k3.conf,
                             "--check"], capture_output=True, text=True,
                            timeout=30)
        assert cp.returncode == 0 and "note: http.public_url holds a " \
            "character that List-Unsubscribe cannot carry" in cp.stdout, cp
        d2 = k2.start()
        d2.wait_output('"msg":"ready"', 15)
        assert "breaks a security promise" in d2.stderr_text() and \
            "retention.backup_days (30)" in d2.stderr_text()
        d2.stop()

tap.diag("runtime %.1f s" % (time.monotonic() - T0))
tap.done()
