#!/usr/bin/python3
"""test_submit_large.py - a large inline audience (KN_SUBMIT_STAGE_MIN,
1,000 entries, or more) goes to Redis as one MULTI ... EXEC transaction:
RPUSH pages to bc:<id>:aud_in, then the submit script, which renames the
list to bc:<id>:aud (queue/submit.h).

  [1] kairanctl submit, 2,345 recipients: bc:aud holds every entry in
      order, sealed (no address in Redis); no staging list left; every
      e-mail delivered once; inline_n right.
  [2] POST /v1/broadcasts, 1,500 recipients: 202; the same; submitting
      again with the same id gives the same name and leaves nothing behind.
  [3] 999 recipients go the old way (audience in the script's arguments):
      the same result (no MULTI in Redis' statistics for it).
  [4] the transaction is all or nothing: the connection cut when Redis
      has queued all of it but EXEC (a relay holds EXEC back) leaves no
      key at all, and kairanctl says the connection was lost.
  [5] Redis out of memory (maxmemory reached): POST answers 503 with
      Retry-After and stores nothing, kairanctl says so and exits 1; the
      same id afterwards is stored once.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_submit_large.py
"""

import http.client
import json
import os
import re
import socket
import subprocess
import threading
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("submit-large")


def bcast(n, tag, **kw):
    b = {"tenant": "sakura", "category": "notice", "subject": "大量 %s" % tag,
         "body": "本文", "channels": ["email"],
         "recipients": [{"id": "%s-%05d" % (tag, i),
                         "email": "%s%05d@example.jp" % (tag, i)}
                        for i in range(n)]}
    b.update(kw)
    return b


def request(port, method, path, token, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = json.dumps(body, ensure_ascii=False).encode()
    c.request(method, path, body=data,
              headers={"Authorization": "Bearer " + token,
                       "Content-Type": "application/json"})
    r = c.getresponse()
    st, text = r.status, r.read()
    request.headers = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return st, json.loads(text) if text else None


def cmdstat(r, cmd):
    info = r.call("INFO", "commandstats").decode()
    m = re.search(r"cmdstat_%s:calls=(\d+)" % cmd, info)
    return int(m.group(1)) if m else 0


class Relay:
    """One client to 127.0.0.1:upstream, forwarded until it sends EXEC
    (which is held back); cut() then closes both sides."""
    EXEC = b"*1\r\n$4\r\nEXEC\r\n"

    def __init__(self, upstream):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.up = upstream
        self.seen_exec = threading.Event()
        self.socks = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        c, _ = self.lsock.accept()
        u = socket.create_connection(("127.0.0.1", self.up))
        self.socks = [c, u]

        def back():
            try:
                while True:
                    data = u.recv(65536)
                    if not data:
                        return
                    c.sendall(data)
            except OSError:
                return
        threading.Thread(target=back, daemon=True).start()
        pending = b""
        try:
            while not self.seen_exec.is_set():
                data = c.recv(65536)
                if not data:
                    return
                pending += data
                i = pending.find(self.EXEC)
                if i >= 0:
                    u.sendall(pending[:i])
                    self.seen_exec.set()
                else:
                    keep = len(self.EXEC) - 1
                    u.sendall(pending[:-keep])
                    pending = pending[-keep:]
        except OSError:
            return

    def cut(self):
        for x in self.socks + [self.lsock]:
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()


def check_stored(r, k, bid, n, tag):
    P = k.prefix
    aud = r.call("LRANGE", P + "bc:%s:aud" % bid, 0, -1)
    assert len(aud) == n, "bc:aud holds %d of %d" % (len(aud), n)
    ids = [json.loads(e.decode()[2:])["id"] for e in aud]
    assert ids == ["%s-%05d" % (tag, i) for i in range(n)], ids[:3]
    assert r.call("EXISTS", P + "bc:%s:aud_in" % bid) == 0
    assert r.call("TTL", P + "bc:%s:aud" % bid) == -1
    assert k.bc(bid)["inline_n"] == str(n), k.bc(bid)
    blob = b"".join(aud)
    assert b"@example.jp" not in blob, "an address in clear in Redis"


def delivered(k, bid, n):
    h = k.wait_done(bid, 120)
    c = k.counts(bid).get("email", {})
    assert c.get("delivered") == n and c.get("total") == n, (c, h)
    files = os.listdir(os.path.join(k.outbox, bid))
    assert len(files) == n, len(files)


with Redis(out) as r:
    port = free_port()
    k = Kairan(out, r, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "rate": "100000"}})
    P = k.prefix
    cp = k.ctl("token", "create", "--role", "admin", "--name", "本部")
    assert cp.returncode == 0, cp.stderr
    TOK = cp.stdout.strip().split()[-1]
    d = k.start()
    d.wait_output('"listening"', 15)

    def queued():
        """The most commands any client has queued in a MULTI (CLIENT
        LIST multi=N), -1 when no client is inside one."""
        ns = [int(x) for x in re.findall(rb" multi=(-?\d+)",
                                         r.call("CLIENT", "LIST"))]
        return max(ns) if ns else -1

    with tap.check("[1] kairanctl submit of 2,345 recipients: one "
                   "transaction, every entry stored in order and sealed, "
                   "delivered once each"):
        # RENAMENX: only the submit script sends it (kairand's own MULTIs
        # ack streams and would make a count of MULTI racy).
        m0 = cmdstat(r, "renamenx")
        bid = k.submit(bcast(2345, "a"))
        assert cmdstat(r, "renamenx") == m0 + 1, "not sent as a transaction"
        check_stored(r, k, bid, 2345, "a")
        delivered(k, bid, 2345)

    with tap.check("[2] POST /v1/broadcasts of 1,500 recipients: 202, "
                   "stored and delivered; the same id again gives the same "
                   "name and leaves nothing behind"):
        m0 = cmdstat(r, "renamenx")
        st, j = request(port, "POST", "/v1/broadcasts", TOK,
                        bcast(1500, "b", id="big-1"))
        assert st == 202, (st, j)
        assert cmdstat(r, "renamenx") == m0 + 1
        bid = j["id"]
        check_stored(r, k, bid, 1500, "b")
        delivered(k, bid, 1500)
        before = set(r.call("KEYS", P + "bc:*"))
        st, j2 = request(port, "POST", "/v1/broadcasts", TOK,
                         bcast(1500, "b", id="big-1"))
        assert st in (200, 202) and j2["id"] == bid, (st, j2)
        after = set(r.call("KEYS", P + "bc:*"))
        assert after - before == set(), sorted(after - before)[:5]

    with tap.check("[3] 999 recipients: in the script's arguments, the "
                   "same result"):
        m0 = cmdstat(r, "renamenx")
        bid = k.submit(bcast(999, "c"))
        assert cmdstat(r, "renamenx") == m0, "a small audience was staged"
        check_stored(r, k, bid, 999, "c")
        delivered(k, bid, 999)

    with tap.check("[4] the connection cut with the whole transaction "
                   "queued but EXEC not sent: nothing stored, no staging "
                   "list; kairanctl says the connection was lost"):
        # A relay between kairanctl and Redis forwards everything up to
        # EXEC, waits until Redis has queued it all (CLIENT LIST multi=),
        # then closes both sides: as a kairanctl or a network that dies
        # at the worst moment.
        relay = Relay(r.port)
        conf2 = os.path.join(out, "relay.conf")
        with open(k.conf) as f:
            text = f.read()
        with open(conf2, "w") as f:
            f.write(text.replace(r.url, "redis://127.0.0.1:%d" % relay.port))
        bc0 = set(r.call("KEYS", P + "bc:*"))
        ctl = subprocess.Popen([os.path.join(BUILD, "kairanctl"), "-c",
                                conf2, "submit", "-"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        ctl.stdin.write(json.dumps(bcast(5000, "d"),
                                   ensure_ascii=False).encode())
        ctl.stdin.close()
        assert relay.seen_exec.wait(120), "kairanctl never sent EXEC"
        # MULTI, then DEL, 5 RPUSH pages and EVAL queued: 7.
        wait_for(lambda: queued() == 7, 60, what="7 commands queued")
        relay.cut()
        err = ctl.stderr.read().decode()
        assert ctl.wait(60) != 0 and "connection lost" in err, err
        wait_for(lambda: queued() < 0, 30, what="the transaction dropped")
        new = set(r.call("KEYS", P + "bc:*")) - bc0
        assert new == set(), sorted(new)[:5]

    with tap.check("[5] Redis out of memory: the HTTP API answers 503 with "
                   "Retry-After and stores nothing; kairanctl says so; the "
                   "same id later is stored once"):
        before = set(r.call("KEYS", P + "bc:*"))
        r.call("CONFIG", "SET", "maxmemory", "1")
        try:
            for n in (1500, 5):
                st, j = request(port, "POST", "/v1/broadcasts", TOK,
                                bcast(n, "e", id="oom-%d" % n))
                assert st == 503 and "submit again" in j["error"], (st, j)
                assert request.headers.get("retry-after") == "5", \
                    request.headers
            cp = k.ctl("submit", "-", input=json.dumps(bcast(1200, "f"),
                                                        ensure_ascii=False))
            assert cp.returncode != 0 and "out of memory" in cp.stderr, \
                cp.stderr
            assert set(r.call("KEYS", P + "bc:*")) == before
        finally:
            r.call("CONFIG", "SET", "maxmemory", "0")
        st, j = request(port, "POST", "/v1/broadcasts", TOK,
                        bcast(1500, "e", id="oom-1500"))
        assert st == 202, (st, j)
        check_stored(r, k, j["id"], 1500, "e")

    d.stop()

tap.diag("test_submit_large.py took %.1fs" % (time.monotonic() - T0))
tap.done()
