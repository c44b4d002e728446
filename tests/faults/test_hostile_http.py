#!/usr/bin/python3
"""test_hostile_http.py - kairand's HTTP port under ~1,000 hostile
connections from one address (issue 11, "The HTTP server under hostile
clients").

One redis-server, one kairand (outbox adapter, default HTTP limits, but
http.trusted_proxies empty: the attacker is 127.0.0.1, which is otherwise
the trusted local proxy).  For 40 s (x KAIRAN_TEST_SCALE, at least 6 s) a
separate process keeps, from 127.0.0.1, ~200 (scaled) connections of
each kind, each reopened 1 s after the server closes it
(about 1,000 connects a second):

  pipeline   pipelines GET /healthz and never reads an answer
  slowloris  sends a request head one byte a second
  slowbody   POST /a/x with a 16,000-byte body, one byte a second
  bigpost    POST /v1/broadcasts, Content-Length 9.9 MB, no token, the
             body as fast as it is taken
  idle       connects and sends nothing

Meanwhile an honest client on 127.0.0.2 opens a new connection for each
GET /healthz, ten a second: every one must be answered 200 within
100 ms.  kairand's RSS (sampled every 0.25 s) must stay under 100 MB.  A
broadcast submitted over HTTP by the honest client in the middle of the
attack must be delivered (its .eml files in the outbox).

Printed: healthz latency max/median/p99, peak RSS, the attacker's
connects and the server's hang-ups.
"""

import errno
import json
import os
import random
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: E402,F401,F403

KINDS = ("pipeline", "slowloris", "slowbody", "bigpost", "idle")
BIG = 9_900_000
REOPEN_S = 1.0  # an attacker's socket is reopened this long after a hang-up


# ------------------------------------------------------------- the attacker

def attacker(port, per_kind, seconds, src="127.0.0.1"):
    """Run in a child process: keep per_kind connections of every kind for
    seconds; print one JSON line of counts at the end."""
    sel = selectors.DefaultSelector()
    pipe_req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 32
    zeros = b" " * 65536
    stats = {"connects": 0, "hangups": 0, "refused": 0}
    reopen = []  # (time, kind)
    end = time.monotonic() + seconds

    class C:
        pass

    def open_one(kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        if kind == "pipeline":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            s.bind((src, 0))
            rc = s.connect_ex(("127.0.0.1", port))
        except OSError:
            s.close()
            reopen.append((time.monotonic() + REOPEN_S, kind))
            return
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            stats["refused"] += 1
            reopen.append((time.monotonic() + REOPEN_S, kind))
            return
        c = C()
        c.s, c.kind, c.up, c.sent, c.next = s, kind, False, 0, 0.0
        stats["connects"] += 1
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, c)

    def drop(c, by_server=True):
        try:
            sel.unregister(c.s)
        except (KeyError, ValueError):
            pass
        c.s.close()
        if by_server:
            stats["hangups"] += 1
        reopen.append((time.monotonic() + REOPEN_S, c.kind))

    def send(c, data):
        try:
            n = c.s.send(data)
            c.sent += n
            return n
        except BlockingIOError:
            return 0
        except OSError:
            drop(c)
            return -1

    def started(c):
        c.up = True
        head = {
            "pipeline": b"",
            "slowloris": b"G",
            "slowbody": b"POST /a/x HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 16000\r\n\r\n",
            "bigpost": b"POST /v1/broadcasts HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % BIG,
            "idle": b"",
        }[c.kind]
        if head and send(c, head) < 0:
            return
        c.next = time.monotonic() + 1.0
        want = selectors.EVENT_READ
        if c.kind in ("pipeline", "bigpost"):
            want |= selectors.EVENT_WRITE
        sel.modify(c.s, want, c)

    for kind in KINDS:
        for _ in range(per_kind):
            open_one(kind)
    print("started", flush=True)
    slow_line = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000
    while time.monotonic() < end:
        now = time.monotonic()
        for key, ev in sel.select(0.05):
            c = key.data
            if not c.up:
                if c.s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    drop(c)
                    continue
                started(c)
                continue
            if ev & selectors.EVENT_READ:
                if c.kind == "pipeline":
                    # Readable only as a hang-up matters: peek, never read.
                    try:
                        b = c.s.recv(1, socket.MSG_PEEK)
                    except BlockingIOError:
                        b = b"x"
                    except OSError:
                        b = b""
                    if not b:
                        drop(c)
                        continue
                    # Answers are waiting unread: stop polling for them.
                    sel.modify(c.s, selectors.EVENT_WRITE, c)
                else:
                    try:
                        b = c.s.recv(65536)
                    except BlockingIOError:
                        b = b"x"
                    except OSError:
                        b = b""
                    if not b:
                        drop(c)
                        continue
            if ev & selectors.EVENT_WRITE:
                if c.kind == "pipeline":
                    send(c, pipe_req)
                elif c.kind == "bigpost" and c.sent < BIG:
                    send(c, zeros)
        # The slow ones: a byte a second.
        for key in list(sel.get_map().values()):
            c = key.data
            if c.up and c.kind in ("slowloris", "slowbody") and now >= c.next:
                c.next = now + 1.0
                if c.kind == "slowloris":
                    i = c.sent
                    send(c, slow_line[i:i + 1] if i < len(slow_line) else b"a")
                else:
                    send(c, b"x")
        while reopen and reopen[0][0] <= now:
            _, kind = reopen.pop(0)
            open_one(kind)
        reopen.sort()
    stats["open_at_end"] = len(sel.get_map())
    for key in list(sel.get_map().values()):
        key.data.s.close()
    print(json.dumps(stats), flush=True)


if len(sys.argv) > 1 and sys.argv[1] == "--attack":
    # A real attacker runs on its own machines; here it shares kairand's
    # two cores, so it yields them (nice 19): what is measured is kairand
    # under the attack's traffic, not kairand starved of CPU by the
    # attacker's own Python.
    os.nice(19)
    attacker(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    sys.exit(0)


# ------------------------------------------------------------- the test

T0 = time.monotonic()
tap = TAP()
out = tmpdir("hostile-http")
f = float(os.environ.get("KAIRAN_TEST_SCALE", "1") or 1)
SECONDS = max(6.0, 40.0 * f)
PER_KIND = scale(200, minimum=20)
NRCPT = 20
CONNECT = []  # seconds each honest connect took


def healthz(port):
    """Seconds for one GET /healthz on a new connection from 127.0.0.2, or
    None when it failed."""
    t = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        CONNECT.append(time.monotonic() - t)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
        if not data.startswith(b"HTTP/1.1 200"):
            return None
        return time.monotonic() - t
    except OSError:
        return None
    finally:
        s.close()


def submit(port, token, bc):
    body = json.dumps(bc, ensure_ascii=False).encode()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(30)
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    s.sendall(("POST /v1/broadcasts HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\nConnection: close\r\n\r\n"
               % (token, len(body))).encode() + body)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


def emls(path):
    n = 0
    for _, _, fs in os.walk(path):
        n += sum(1 for x in fs if x.endswith(".eml"))
    return n


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox", conf={
        "http": {"listen": "127.0.0.1:%d" % port, "trusted_proxies": ""},
    })
    cp = k.ctl("token", "create", "--role", "admin", "--name", "honest")
    assert cp.returncode == 0, cp.stderr
    token = cp.stdout.strip()
    d = k.start()
    d.wait_output('"listening"', 15)
    base_rss = vmrss_kb(d.pid)

    lat, failed, rss = [], 0, []
    stop = threading.Event()

    def sample_rss():
        while not stop.is_set():
            v = vmrss_kb(d.pid)
            if v:
                rss.append(v)
            stop.wait(0.25)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    atk = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--attack",
                            str(port), str(PER_KIND), str(SECONDS)],
                           stdout=subprocess.PIPE, text=True)
    # The measurement starts once every hostile connection was opened
    # (a line from the attacker) and kairand is refusing the surplus.
    assert atk.stdout.readline().strip() == "started"
    tap.diag("attack: %d connections of each of %d kinds from 127.0.0.1 for %gs"
             % (PER_KIND, len(KINDS), SECONDS))
    bc_status, bc_body = None, b""
    t_end = time.monotonic() + SECONDS
    t_submit = time.monotonic() + SECONDS / 2
    # Let the attack take hold before the first measurement.
    wait_for(lambda: (d.stderr_text().count("http.max_conns_per_peer") > 0
                      or atk.poll() is not None),
             30, 0.05, "the attack to reach the per-peer cap")
    while time.monotonic() < t_end and atk.poll() is None:
        t = healthz(port)
        if t is None:
            failed += 1
        else:
            lat.append(t)
        if bc_status is None and time.monotonic() >= t_submit:
            bc_status, bc_body = submit(port, token, {
                "id": "hostile-1", "tenant": "sakura", "category": "notice",
                "subject": "攻撃中のお知らせ", "body": "本文",
                "channels": ["email"],
                "recipients": [{"id": "r-%d" % i,
                                "email": "guardian%d@example.jp" % i}
                               for i in range(NRCPT)]})
        time.sleep(0.1)  # the probe's own pace: ten a second
    atk_out, _ = atk.communicate(timeout=60)
    stop.set()
    sampler.join(5)
    counts = json.loads(atk_out.strip().splitlines()[-1]) if atk_out.strip() else {}

    lat_ms = sorted(x * 1000 for x in lat)
    peak = max(rss) if rss else 0
    if lat_ms:
        tap.diag("honest /healthz from 127.0.0.2: %d answered, %d failed; "
                 "median %.1f ms, p99 %.1f ms, max %.1f ms"
                 % (len(lat_ms), failed, statistics.median(lat_ms),
                    lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * 0.99))],
                    lat_ms[-1]))
    if CONNECT:
        tap.diag("of which connect: max %.1f ms" % (max(CONNECT) * 1000))
    slow = [(round(x * 1000), i) for i, x in enumerate(lat) if x > 0.05]
    if slow:
        tap.diag("probes over 50 ms (ms, index): %s" % slow[:20])
    tap.diag("kairand RSS: %.1f MB at start, peak %.1f MB"
             % (base_rss / 1024, peak / 1024))
    tap.diag("attacker: %s" % json.dumps(counts))

    with tap.check("the attacker ran and was hung up on"):
        assert counts.get("connects", 0) >= PER_KIND * len(KINDS), counts
        assert counts.get("hangups", 0) > 0, counts

    with tap.check("every honest /healthz answered 200 within 100 ms"):
        assert lat_ms, "no measurement"
        assert failed == 0, "%d failed" % failed
        assert lat_ms[-1] < 100, "max %.1f ms" % lat_ms[-1]

    with tap.check("kairand's RSS stayed under 100 MB"):
        assert peak < 100 * 1024, peak

    with tap.check("a broadcast submitted during the attack is delivered"):
        assert bc_status in (200, 202), (bc_status, bc_body)
        wait_for(lambda: emls(k.outbox) >= NRCPT, 60, 0.2,
                 "%d messages in the outbox" % NRCPT)

    with tap.check("kairand is still up"):
        assert d.alive()
        assert healthz(port) is not None
    d.stop()

tap.diag("took %s" % elapsed(T0))
tap.done()
