#!/usr/bin/python3
"""test_http_limits.py - kairand's HTTP server against hostile clients
(issue 11): each mechanism once, fast.  The load test is
tests/faults/test_hostile_http.py.

One redis-server, one kairand (outbox adapter) with short deadlines:
header_timeout_ms 1s, body_timeout_ms 2s, send_timeout_ms 2s,
max_conns_per_peer 8, a LINE channel secret, line.webhook_max_body 4096,
line.webhook_concurrency 2.  Clients bind their own loopback addresses
(127.0.0.3 ...), which are ordinary peers; 127.0.0.1 is the default
trusted proxy.

  [1] write deadline: a client pipelining GET /healthz and never reading
      is dropped (reset) once its answers are not taken for
      send_timeout_ms; it got fewer answers than it asked.
  [2] header deadline: a head that does not arrive whole within
      header_timeout_ms gets 408 and the connection closes; a connection
      that sends nothing is closed.
  [3] per-peer cap: 8 open connections from one address, the 9th is
      closed at once while another address is served; one closed, one
      more fits; the trusted proxy (127.0.0.1) is not held to it.
  [4] token before body: POST /v1/broadcasts announcing 9.9 MB without a
      token, or with a wrong one, gets 401 after the head alone and the
      connection closes before the body is taken; kairand's RSS stays.
  [5] body cap per route: /a/{token} and /cancel refuse 100 KB (413)
      though http.max_body is 10 MB; a chunked body growing past it too.
  [6] LINE webhook: a body over line.webhook_max_body is refused (413)
      before its signature is computed; no signature -> 401 before the
      body; a third concurrent webhook request gets 503 while two are
      being read; afterwards one is accepted (200).

Run:  BUILD=build /usr/bin/python3 tests/integration/test_http_limits.py
"""

import base64
import hashlib
import hmac
import json
import os
import select
import socket
import time
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("http-limits")
SECRET = "line-channel-secret-for-tests"
PER_PEER = 8


def conn(port, src="127.0.0.3", timeout=30):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_answer(s):
    """One HTTP answer (status, headers dict, body) from s; None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            b = b""
        if not b:
            return None
        data += b
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdr = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdr[k.strip().lower()] = v.strip()
    n = int(hdr.get("content-length", "0"))
    while len(rest) < n:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    return status, hdr, rest[:n]


def closed_by_peer(s, timeout=30):
    """True when the server closes s (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def get(port, path, src="127.0.0.3", headers=""):
    s = conn(port, src)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n"
                   % (path, headers)).encode())
        return read_answer(s)
    finally:
        s.close()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def line_sig(body):
    return base64.b64encode(hmac.new(SECRET.encode(), body,
                                     hashlib.sha256).digest()).decode()


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox", conf={
        "http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                 "header_timeout_ms": "1s", "body_timeout_ms": "2s",
                 "send_timeout_ms": "2s",
                 "max_conns_per_peer": str(PER_PEER)},
        "line": {"channel_secret": SECRET, "webhook_max_body": "4096",
                 "webhook_concurrency": "2"},
    })
    d = k.start()
    d.wait_output('"listening"', 15)

    with tap.check("/healthz answers 200 from another loopback address"):
        a = get(port, "/healthz")
        assert a is not None and a[0] == 200, a

    # ---- [1] write deadline
    with tap.check("[1] a client pipelining /healthz that never reads is dropped"):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind(("127.0.0.3", 0))
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 64
        p = select.poll()
        p.register(s, select.POLLOUT | select.POLLERR | select.POLLHUP)
        sent = 0
        dropped = False
        deadline = time.monotonic() + 90
        # Send until the server stops taking requests (it answers one at a
        # time and its answers are not read), then until it hangs up.
        while time.monotonic() < deadline:
            ev = p.poll(1000)
            if any(e & (select.POLLERR | select.POLLHUP) for _, e in ev):
                dropped = True
                break
            if not ev:
                continue
            try:
                sent += s.send(req)
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError):
                dropped = True
                break
        asked = sent // (len(req) // 64)
        s.setblocking(True)
        s.settimeout(30)
        got = 0
        data = b""
        try:
            while True:
                b = s.recv(1 << 20)
                if not b:
                    break
                data += b
        except (ConnectionResetError, BrokenPipeError):
            pass
        got = data.count(b"HTTP/1.1 200")
        s.close()
        tap.diag("asked %d answers, %d taken before the drop" % (asked, got))
        assert dropped, "not dropped within 90 s (asked %d)" % asked
        assert got < asked, (got, asked)
        a = get(port, "/healthz")
        assert a is not None and a[0] == 200, a

    # ---- [2] header deadline
    with tap.check("[2] a head not complete within header_timeout_ms: 408, closed"):
        s = conn(port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        a = read_answer(s)
        assert a is not None and a[0] == 408, a
        assert a[1].get("connection") == "close", a
        assert closed_by_peer(s)
        s.close()

    with tap.check("[2] a connection that sends nothing is closed"):
        s = conn(port)
        assert closed_by_peer(s)
        s.close()

    # ---- [3] per-peer cap
    with tap.check("[3] max_conns_per_peer: the next connection of that "
                   "address is closed, another address is served"):
        held = []
        for _ in range(PER_PEER):
            c = conn(port, "127.0.0.5")
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            a = read_answer(c)
            assert a is not None and a[0] == 200, a
            held.append(c)
        extra = conn(port, "127.0.0.5")
        try:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError):
            pass
        assert read_answer(extra) is None
        extra.close()
        a = get(port, "/healthz", src="127.0.0.6")
        assert a is not None and a[0] == 200, a
        held.pop().close()

        def one_more():
            c = conn(port, "127.0.0.5")
            try:
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
                a = read_answer(c)
            except (ConnectionResetError, BrokenPipeError):
                a = None
            c.close()
            return a is not None and a[0] == 200
        wait_for(one_more, 30, 0.2, "a slot of 127.0.0.5 to free")
        for c in held:
            c.close()

    with tap.check("[3] the trusted proxy (127.0.0.1) is not held to the cap"):
        held = []
        for _ in range(PER_PEER + 4):
            c = conn(port, "127.0.0.1")
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            a = read_answer(c)
            assert a is not None and a[0] == 200, a
            held.append(c)
        for c in held:
            c.close()

    # ---- [4] token before body
    BIG = 9_900_000

    def unauth_post(authz):
        s = conn(port, "127.0.0.7")
        s.sendall(("POST /v1/broadcasts HTTP/1.1\r\nHost: x\r\n"
                   "Content-Type: application/json\r\n%s"
                   "Content-Length: %d\r\n\r\n" % (authz, BIG)).encode()
                  + b"{" + b" " * 1000)
        a = read_answer(s)
        assert a is not None and a[0] == 401, a
        assert a[1].get("connection") == "close", a
        # The rest is never taken whole: the server hangs up.
        sent = 1001
        chunk = b" " * 65536
        try:
            while sent < BIG:
                sent += s.send(chunk)
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            pass
        s.close()
        return sent

    with tap.check("[4] 9.9 MB POST without a token: 401 after the head, "
                   "closed before the body is taken"):
        sent = unauth_post("")
        assert sent < BIG, sent

    with tap.check("[4] ... and with a wrong token: the same"):
        sent = unauth_post("Authorization: Bearer kn_0123456789abcdef_"
                           + "A" * 43 + "\r\n")
        assert sent < BIG, sent

    with tap.check("[4] 20 more such POSTs: kairand's RSS grows by less than 20 MB"):
        before = rss_kb(d.pid)
        for _ in range(20):
            unauth_post("")
        after = rss_kb(d.pid)
        tap.diag("RSS %d kB -> %d kB" % (before, after))
        assert after - before < 20_000, (before, after)

    # ---- [5] per-route caps
    def post_head(path, length, extra=""):
        s = conn(port, "127.0.0.8")
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\n%s"
                   "Content-Length: %d\r\n\r\n" % (path, extra, length)).encode())
        a = read_answer(s)
        s.close()
        return a

    with tap.check("[5] /a/{token} refuses a 100 KB body with 413 (http.max_body is 10 MB)"):
        a = post_head("/a/abc", 100_000)
        assert a is not None and a[0] == 413, a

    with tap.check("[5] /v1/broadcasts/{id}/cancel refuses 100 KB with 413"):
        a = post_head("/v1/broadcasts/x/cancel", 100_000,
                      "Content-Type: application/json\r\n")
        assert a is not None and a[0] == 413, a

    with tap.check("[5] a chunked body growing past the route's cap: 413"):
        s = conn(port, "127.0.0.8")
        s.sendall(b"POST /a/abc HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        a = None
        try:
            for _ in range(40):
                s.sendall(b"1000\r\n" + b"x" * 4096 + b"\r\n")
        except (ConnectionResetError, BrokenPipeError):
            pass
        a = read_answer(s)
        s.close()
        assert a is not None and a[0] == 413, a

    # ---- [6] LINE webhook
    def hook_head(length, sig=True):
        s = conn(port, "127.0.0.9")
        h = "X-Line-Signature: %s\r\n" % line_sig(b"x") if sig else ""
        s.sendall(("POST /line/webhook HTTP/1.1\r\nHost: x\r\n"
                   "Content-Type: application/json\r\n%s"
                   "Content-Length: %d\r\n\r\n" % (h, length)).encode())
        return s

    with tap.check("[6] webhook over line.webhook_max_body: 413 before its HMAC"):
        s = hook_head(5000)
        a = read_answer(s)
        s.close()
        assert a is not None and a[0] == 413, a
        assert "bad signature" not in d.stderr_text()

    with tap.check("[6] webhook without X-Line-Signature: 401 before the body"):
        s = hook_head(4000, sig=False)
        a = read_answer(s)
        s.close()
        assert a is not None and a[0] == 401, a

    with tap.check("[6] heads alone hold no webhook slot: while two "
                   "connections sit on their heads a signed request is "
                   "accepted (the slots are taken once a signature holds)"):
        slow = [hook_head(1000), hook_head(1000)]
        ev_body = json.dumps({"destination": "U0", "events": []}).encode()

        def signed(b, src="127.0.0.9"):
            s = conn(port, src)
            s.sendall(("POST /line/webhook HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\n"
                       "X-Line-Signature: %s\r\nContent-Length: %d\r\n"
                       "Connection: close\r\n\r\n"
                       % (line_sig(b), len(b))).encode() + b)
            return s
        s = signed(ev_body)
        a = read_answer(s)
        s.close()
        assert a is not None and a[0] == 200, a
        for x in slow:
            x.close()

    with tap.check("[6] a third signed webhook request while two are being "
                   "worked on gets 503 (line.webhook_concurrency = 2)"):
        # Two follow events whose Redis work cannot finish while Redis is
        # paused: they hold the two slots.
        def follow(n):
            return json.dumps({"destination": "U0", "events": [{
                "type": "follow", "mode": "active",
                "timestamp": int(time.time() * 1000),
                "source": {"type": "user", "userId": "U%032x" % n},
                "webhookEventId": "01H%023d" % n,
                "deliveryContext": {"isRedelivery": False},
                "replyToken": "r%d" % n}]}).encode()
        redis.call("CLIENT", "PAUSE", "15000", "WRITE")
        try:
            held = [signed(follow(1)), signed(follow(2))]

            def third():
                x = signed(ev_body)
                a = read_answer(x)
                x.close()
                return a if a and a[0] == 503 else None
            a = wait_for(third, 15, 0.05, "a 503 for the third request")
            assert "retry-after" in a[1], a
        finally:
            redis.call("CLIENT", "UNPAUSE")
        for x in held:
            a = read_answer(x)
            x.close()
            assert a is not None and a[0] == 200, a

    with tap.check("kairand is still up and serving"):
        assert d.alive()
        a = get(port, "/healthz")
        assert a is not None and a[0] == 200, a
    d.stop()

tap.done()
