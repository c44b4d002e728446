"""sentinels.py - a private Redis Sentinel setup for tests (issue 19): a
primary, N replicas and M sentinels (Debian's redis-sentinel), all on
loopback free ports with their own directories under the test's out dir,
never the system service.  Only the processes started here are ever
killed (harness.Proc keeps their PIDs).

    from sentinels import SentinelGroup, RogueSentinel
    with SentinelGroup(out, replicas=1, sentinels=3) as g:
        g.primary            # harness.Redis of the current primary
        g.list               # "127.0.0.1:p1,127.0.0.1:p2,..." for redis.sentinels
        g.redis_conf()       # the [redis] keys kairan needs
        k = Kairan(out, g.proxy, email="outbox", conf={"redis": g.redis_conf()})
        g.kill_primary()     # kill -9; returns time.monotonic() of the kill
        g.wait_new_primary() # the sentinels promoted another one

The sentinels require a password (SENTINEL_PASSWORD, written to a file
for redis.sentinel_password_file).  RogueSentinel is a fake sentinel that
answers every AUTH and names whatever address it was given.

Python 3 stdlib only.
"""

import os
import shutil
import socket
import threading
import time

from harness import Proc, Redis, RedisError, RespClient, free_port, wait_for

MASTER = "kairan"
SENTINEL_PASSWORD = "sentinel-test-password"


class SentinelGroup:
    def __init__(self, out_dir, replicas=2, sentinels=3, down_after_ms=1000,
                 appendonly=True):
        self.out = os.path.join(out_dir, "sentinel-group")
        os.makedirs(self.out, exist_ok=True)
        self.nodes = []
        extra = ["--appendfsync", "everysec", "--repl-diskless-sync", "no"]
        self.nodes.append(Redis(self.out, appendonly=appendonly, extra_args=extra))
        p0 = self.nodes[0].port
        for _ in range(replicas):
            self.nodes.append(Redis(self.out, appendonly=appendonly,
                                    extra_args=extra + ["--replicaof", "127.0.0.1", str(p0)]))
        for n in self.nodes[1:]:
            wait_for(lambda n=n: b"master_link_status:up" in n.call("INFO", "replication"),
                     30, 0.05, what="replica %d in sync" % n.port)
        self.password_file = os.path.join(self.out, "sentinel.password")
        with open(self.password_file, "w") as f:
            f.write(SENTINEL_PASSWORD + "\n")
        os.chmod(self.password_file, 0o600)
        self.sentinels = []
        binary = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
        for i in range(sentinels):
            port = free_port()
            d = os.path.join(self.out, "sentinel-%d" % port)
            os.makedirs(d, exist_ok=True)
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\ndaemonize no\n"
                        "protected-mode no\n"
                        "requirepass %s\n"
                        "sentinel sentinel-pass %s\n"
                        "sentinel monitor %s 127.0.0.1 %d 2\n"
                        "sentinel down-after-milliseconds %s %d\n"
                        "sentinel failover-timeout %s 10000\n"
                        "sentinel parallel-syncs %s 2\n"
                        % (port, d, SENTINEL_PASSWORD, SENTINEL_PASSWORD,
                           MASTER, p0, MASTER, down_after_ms, MASTER, MASTER))
            proc = Proc([binary, conf], d, name="sentinel-%d" % port)
            self.sentinels.append((port, proc))
        for port, proc in self.sentinels:
            wait_for(lambda port=port: self._sentinel_sees(port, replicas, sentinels - 1),
                     30, 0.1, what="sentinel %d sees the replicas and the others" % port)
        self._proxy = _PrimaryProxy(self)

    # ---- sentinels

    def sentinel_call(self, port, *args):
        with RespClient("127.0.0.1", port, timeout=2) as c:
            c.call("AUTH", SENTINEL_PASSWORD)
            return c.call(*args)

    def _sentinel_sees(self, port, replicas, others):
        try:
            m = self.sentinel_call(port, "SENTINEL", "MASTER", MASTER)
        except (OSError, ConnectionError, RedisError):
            return False
        d = {m[i].decode(): m[i + 1].decode() for i in range(0, len(m), 2)}
        return (int(d.get("num-slaves", 0)) >= replicas
                and int(d.get("num-other-sentinels", 0)) >= others)

    @property
    def list(self):
        return ",".join("127.0.0.1:%d" % p for p, _ in self.sentinels)

    def redis_conf(self, **kw):
        c = {"sentinels": self.list, "master_name": MASTER,
             "sentinel_password_file": self.password_file,
             "timeout_ms": "2000"}
        c.update({k: str(v) for k, v in kw.items()})
        return c

    def named_primary(self):
        """(host, port) the first answering sentinel names, or None."""
        for port, _ in self.sentinels:
            try:
                v = self.sentinel_call(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
                if v:
                    return v[0].decode(), int(v[1])
            except (OSError, ConnectionError, RedisError):
                continue
        return None

    # ---- data nodes

    @property
    def primary(self):
        """The harness.Redis whose ROLE is master (and is alive)."""
        for n in self.nodes:
            if not n.alive():
                continue
            try:
                r = n.call("ROLE")
                if r and r[0] == b"master":
                    return n
            except (OSError, ConnectionError, RedisError):
                continue
        return None

    @property
    def proxy(self):
        """What harness.Kairan takes as its redis: .url and .call() go to
        the current primary."""
        return self._proxy

    def kill_primary(self):
        """kill -9 the current primary; returns time.monotonic() of the kill."""
        p = self.primary
        self.killed = p
        p.proc.kill(9)
        t = time.monotonic()
        p.proc.wait(10)
        p._drop_client()
        return t

    def wait_new_primary(self, timeout=60):
        """Wait until the sentinels name a live primary other than the one
        killed; returns its harness.Redis."""
        def promoted():
            a = self.named_primary()
            if a is None or a[1] == self.killed.port:
                return None
            for n in self.nodes:
                if n.port == a[1] and n.alive():
                    r = n.call("ROLE")
                    return n if r and r[0] == b"master" else None
            return None
        return wait_for(promoted, timeout, 0.05, what="a new primary")

    def restart_killed(self, primary, timeout=60):
        """Start the node killed last again, as a replica of primary (as
        the sentinels would reconfigure it), and wait until it is in sync."""
        n = self.killed
        a = n.extra_args
        if "--replicaof" in a:
            i = a.index("--replicaof")
            del a[i:i + 3]
        a += ["--replicaof", "127.0.0.1", str(primary.port)]
        n.start()
        wait_for(lambda: b"master_link_status:up" in n.call("INFO", "replication"),
                 timeout, 0.05, what="restarted node %d in sync" % n.port)
        return n

    def stop(self):
        for _, p in self.sentinels:
            if p.alive():
                p.stop(10)
        for n in self.nodes:
            if n.alive():
                n.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class _PrimaryProxy:
    def __init__(self, g):
        self.g = g

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.g.nodes[0].port

    def call(self, *args):
        """One command on the current primary (waiting through a failover)."""
        box = {}

        def attempt():
            p = self.g.primary
            if p is None:
                return False
            try:
                box["v"] = p.call(*args)
                return True
            except (OSError, ConnectionError):
                return False
        wait_for(attempt, 30, 0.05, what="a primary to answer")
        return box["v"]

    def client(self, timeout=10.0):
        return self.g.primary.client(timeout)


class RogueSentinel:
    """A fake sentinel on a free port: accepts any AUTH and names addr
    (host, port) as the primary of every name.  Counts the questions."""

    def __init__(self, addr):
        self.addr = addr
        self.asked = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(c,), daemon=True).start()

    def _client(self, c):
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line.startswith(b"*"):
                    return
                args = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    args.append(f.read(n + 2)[:-2])
                cmd = args[0].upper()
                if cmd == b"SENTINEL":
                    self.asked += 1
                    h, p = self.addr[0].encode(), str(self.addr[1]).encode()
                    c.sendall(b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(h), h, len(p), p))
                elif cmd == b"SUBSCRIBE":
                    ch = args[1]
                    c.sendall(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n" % (len(ch), ch))
                elif cmd == b"PING":
                    c.sendall(b"+PONG\r\n")
                else:
                    c.sendall(b"+OK\r\n")
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.sock.close()
