"""harness.py - tiny stdlib-only library for kairan's integration tests.

    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from harness import *

    tap = TAP()
    out = tmpdir("queue")
    with Redis(out) as r, FakeSMTP(out, tls="starttls", auth="u:p") as smtp:
        with tap.check("message delivered"):
            ...
            wait_for(lambda: len(smtp.messages()) == 1, 10, what="1 message")
    tap.done()          # prints the plan, exits 0/1

Every process started here is killed at interpreter exit if still running.
"""

import atexit
import contextlib
import http.client
import json
import os
import shutil
import signal
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

__all__ = [
    "ROOT", "BUILD", "FAKES", "free_port", "scale", "wait_for", "tmpdir", "mkca",
    "Proc", "Redis", "RedisError", "RespClient", "FakeSMTP", "TAP", "Kairan",
    "resolve_states", "bc_states", "hosts_env", "pipeline_conf",
    "line_broadcast", "FreezeProxy",
]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
FAKES = os.path.join(ROOT, "tests", "fakes")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

_procs = []       # every Proc started, for cleanup at exit
_tmpdirs = []     # removed by TAP.done() when everything passed


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scale(n, minimum=1):
    """n scaled by KAIRAN_TEST_SCALE (default 1): shrinks big counts."""
    f = float(os.environ.get("KAIRAN_TEST_SCALE", "1") or 1)
    return max(minimum, int(n * f))


def hosts_env(out_dir, tag, name, addrs):
    """The environment that makes a process resolve name to addrs, in that
    order, from a hosts file of the test's own (nss_wrapper, preloaded
    into that process only: /etc/hosts is never touched).  Debian's
    libnss-wrapper (scripts/deps.sh)."""
    lib = None
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
              "/usr/lib"):
        if os.path.exists(os.path.join(d, "libnss_wrapper.so")):
            lib = os.path.join(d, "libnss_wrapper.so")
            break
    if lib is None:
        raise SystemExit("libnss-wrapper is not installed (scripts/deps.sh)")
    path = os.path.join(out_dir, "hosts-" + tag)
    with open(path, "w") as f:
        for a in addrs:
            f.write("%s %s\n" % (a, name))
    # The sanitizers' runtime wants to be first among the libraries and
    # refuses dlopen's RTLD_DEEPBIND, nss_wrapper's way to reach libc
    # (google/sanitizers#611); nss_wrapper intercepts only the resolver,
    # so neither matters here, and a plain build ignores both.
    return {"LD_PRELOAD": lib, "NSS_WRAPPER_HOSTS": path,
            "NSS_WRAPPER_DISABLE_DEEPBIND": "1",
            "ASAN_OPTIONS": ":".join(
                x for x in (os.environ.get("ASAN_OPTIONS"),
                            "verify_asan_link_order=0") if x)}


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Poll predicate() until it returns something truthy; return that value.

    Raises AssertionError("timed out after Ns waiting for <what>") otherwise.
    Exceptions raised by predicate propagate."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(interval)


def _test_base():
    base = os.environ.get("KAIRAN_TEST_OUT") or "/tmp"
    os.makedirs(base, exist_ok=True)
    return os.path.abspath(base)


def tmpdir(prefix="kairan"):
    """New directory under $KAIRAN_TEST_OUT (or /tmp).  TAP.done() removes it
    when every test passed and KAIRAN_KEEP_TMP is unset; kept on failure."""
    d = tempfile.mkdtemp(prefix=prefix + "-", dir=_test_base())
    _tmpdirs.append(d)
    return d


def mkca(outdir=None):
    """Run tests/tls/mkca.sh (idempotent, safe concurrently); returns the dir.

    Default dir: a shared one under the test base, reused across tests.
    Files: ca.pem ca.key server.pem/.key expired.pem/.key wronghost.pem/.key
    selfsigned.pem/.key."""
    if outdir is None:
        outdir = os.path.join(_test_base(), "kairan-test-ca")
    subprocess.run(["bash", os.path.join(ROOT, "tests", "tls", "mkca.sh"), outdir],
                   check=True)
    return outdir


# ------------------------------------------------------------------ processes

class Proc:
    """A subprocess with stdout/stderr in files  out_dir/<name>.stdout/.stderr."""

    def __init__(self, args, out_dir, name=None, env=None, cwd=None, extra_env=None,
                 stdin=subprocess.DEVNULL):
        self.args = [str(a) for a in args]
        self.name = name or os.path.basename(self.args[0])
        os.makedirs(out_dir, exist_ok=True)
        self.stdout_path = os.path.join(out_dir, self.name + ".stdout")
        self.stderr_path = os.path.join(out_dir, self.name + ".stderr")
        e = dict(os.environ if env is None else env)
        if extra_env:
            e.update({k: str(v) for k, v in extra_env.items()})
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        self.p = subprocess.Popen(self.args, stdout=self._out, stderr=self._err,
                                  stdin=stdin, env=e, cwd=cwd)
        _procs.append(self)

    @property
    def pid(self):
        return self.p.pid

    @property
    def returncode(self):
        """None while running; negative = killed by that signal."""
        return self.p.poll()

    def alive(self):
        return self.p.poll() is None

    def kill(self, sig=signal.SIGTERM):
        if self.alive():
            try:
                self.p.send_signal(sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout=10.0):
        """Wait for exit; returns the exit status; raises AssertionError on timeout."""
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s (pid %d) still running after %gs"
                                 % (self.name, self.p.pid, timeout)) from None
        self._show_sanitizer()
        return rc

    def _show_sanitizer(self):
        """A sanitizer's report, if the process ended with one, as TAP
        comment lines (once): the test's log then says why the exit status
        was not 0, where a CI log keeps it."""
        if getattr(self, "_shown", False) or self.p.returncode in (0, None):
            return
        self._shown = True
        try:
            text = self.stderr_text()
        except OSError:
            return
        at = text.find("==ERROR: ")
        if at < 0:
            at = text.find("runtime error: ")
        if at < 0:
            return
        start = text.rfind("\n", 0, at) + 1
        lines = text[start:].splitlines()[:60]
        sys.stdout.write("".join("# %s: %s\n" % (self.name, ln) for ln in lines))
        sys.stdout.flush()

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """sig, wait up to timeout, then SIGKILL.  Returns the exit status."""
        if self.alive():
            self.kill(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._close_files()
        self._show_sanitizer()
        return self.p.returncode

    def _close_files(self):
        for f in (self._out, self._err):
            try:
                f.close()
            except Exception:
                pass

    def stdout_text(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_output(self, needle, timeout=10.0, stream="stderr"):
        """Wait until needle (str) appears in the stream's file; fails early
        when the process exits without printing it."""
        get = self.stderr_text if stream == "stderr" else self.stdout_text

        def seen():
            if needle in get():
                return True
            if not self.alive():
                if needle in get():
                    return True
                raise AssertionError("%s exited (%s) without printing %r; %s:\n%s"
                                     % (self.name, self.returncode, needle, stream,
                                        get()[-2000:]))
            return False
        return wait_for(seen, timeout, what="%r in %s of %s" % (needle, stream, self.name))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@atexit.register
def _kill_leftovers():
    for p in _procs:
        try:
            if p.alive():
                p.p.kill()
                p.p.wait(5)
        except Exception:
            pass


# ------------------------------------------------------------------ redis

class RedisError(Exception):
    """A '-ERR ...' reply."""


class RespClient:
    """Minimal blocking RESP2 client.

    call("SET", "k", 1) -> "OK"; bulk strings -> bytes; integers -> int;
    arrays -> list; nil -> None; error replies raise RedisError.
    Arguments: str (UTF-8), bytes, int, float."""

    def __init__(self, host="127.0.0.1", port=6379, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    @staticmethod
    def _arg(a):
        if isinstance(a, bytes):
            return a
        if isinstance(a, str):
            return a.encode("utf-8")
        if isinstance(a, bool):
            return b"1" if a else b"0"
        if isinstance(a, (int, float)):
            return repr(a).encode()
        raise TypeError("unsupported Redis argument %r" % (a,))

    @classmethod
    def encode(cls, args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            b = cls._arg(a)
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(parts)

    def _read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("redis connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode("utf-8", "replace")
        if t == b"-":
            return RedisError(rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("redis connection closed")
            return data[:-2]
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read() for _ in range(n)]
        raise ConnectionError("bad RESP reply %r" % line)

    @staticmethod
    def _raise_nested(v):
        if isinstance(v, RedisError):
            raise v
        return v

    def call(self, *args):
        self.sock.sendall(self.encode(args))
        return self._raise_nested(self._read())

    def pipeline(self, commands, raise_on_error=True):
        """Send every command (each a list/tuple) in one write, return the
        replies in order.  An error reply raises RedisError (after reading all
        replies) or, with raise_on_error=False, appears as a RedisError object."""
        if not commands:
            return []
        self.sock.sendall(b"".join(self.encode(list(c)) for c in commands))
        res = [self._read() for _ in commands]
        if raise_on_error:
            for v in res:
                self._raise_nested(v)
        return res

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Redis:
    """A private redis-server on a free port (data dir under out_dir).

        with Redis(out) as r:
            r.client().call("PING")      # or r.call("PING")
            r.url                        # "redis://127.0.0.1:PORT"
    """

    def __init__(self, out_dir, port=None, appendonly=False, extra_args=(),
                 binary=None, start=True):
        self.out_dir = out_dir
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = list(extra_args)
        self.binary = binary or shutil.which("redis-server") or "/usr/bin/redis-server"
        self.dir = os.path.join(out_dir, "redis-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self._client = None
        if start:
            self.start()

    @property
    def host(self):
        return "127.0.0.1"

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self, timeout=10.0):
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "",
                "--appendonly", "yes" if self.appendonly else "no",
                "--daemonize", "no", "--protected-mode", "no"] + self.extra_args
        self.proc = Proc(args, self.out_dir, name="redis-%d" % self.port)

        def up():
            if not self.proc.alive():
                raise AssertionError("redis-server exited (%s):\n%s" % (
                    self.proc.returncode, self.proc.stdout_text()[-2000:]))
            try:
                with RespClient("127.0.0.1", self.port, timeout=1) as c:
                    return c.call("PING") == "PONG"
            except (OSError, RedisError):
                return False
        wait_for(up, timeout, what="redis-server on port %d" % self.port)
        return self

    def client(self, timeout=10.0):
        """A new RespClient (caller closes it)."""
        return RespClient("127.0.0.1", self.port, timeout=timeout)

    def call(self, *args):
        """One command on a shared connection (reconnects after restarts)."""
        for attempt in (0, 1):
            try:
                if self._client is None:
                    self._client = self.client()
                return self._client.call(*args)
            except (OSError, ConnectionError):
                if self._client:
                    self._client.close()
                self._client = None
                if attempt:
                    raise

    def _drop_client(self):
        if self._client:
            self._client.close()
            self._client = None

    def stop(self, timeout=10.0):
        """SIGTERM (redis saves nothing with --save '', but flushes the AOF)."""
        self._drop_client()
        if self.proc:
            self.proc.stop(timeout)

    def kill(self):
        """SIGKILL: a crash."""
        self._drop_client()
        if self.proc:
            self.proc.kill(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self, timeout=10.0, kill=False):
        """Stop (or SIGKILL with kill=True) and start again on the same port
        and dir (with appendonly the data survives)."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def alive(self):
        return bool(self.proc and self.proc.alive())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class FreezeProxy:
    """TCP proxy to Redis: the connection on which a client sends bytes
    matching the regular expression `pattern` (bytes) gets no more answers
    (its requests still reach Redis); what it sends afterwards is kept in
    `after`.  `frozen` is set then.  Point kairand's redis.url at
    127.0.0.1:listen_port: a command left unanswered on purpose, nothing
    left to timing (test_expand_stop_frozen, test_worker_stop_frozen)."""

    def __init__(self, port, pattern):
        self.port = port
        self.pattern = re.compile(pattern)
        self.frozen = threading.Event()
        self.after = b""
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.listen_port = self.ls.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.port))
            self.socks += [c, s]
            mine = {"frozen": False}
            threading.Thread(target=self._up, args=(c, s, mine),
                             daemon=True).start()
            threading.Thread(target=self._down, args=(s, c, mine),
                             daemon=True).start()

    def _up(self, c, s, mine):
        tail = b""  # (a command may arrive in two reads)
        while True:
            try:
                b = c.recv(65536)
            except OSError:
                return
            if not b:
                return
            if mine["frozen"]:
                self.after += b
            elif not self.frozen.is_set():
                m = self.pattern.search(tail + b)
                if m:
                    mine["frozen"] = True
                    self.after = (tail + b)[m.end():]
                    self.frozen.set()
                tail = (tail + b)[-4096:]
            try:
                s.sendall(b)
            except OSError:
                return

    def _down(self, s, c, mine):
        while True:
            try:
                b = s.recv(65536)
            except OSError:
                return
            if not b:
                return
            if mine["frozen"]:
                continue  # Redis answered; the client never hears it
            try:
                c.sendall(b)
            except OSError:
                return

    def sent_after(self, pattern):
        """Whether the frozen connection sent `pattern` after freezing."""
        return re.search(pattern, self.after) is not None

    def close(self):
        self.ls.close()
        for x in self.socks:
            try:
                x.close()
            except OSError:
                pass


def pipeline_conf(page, max_recipients=100000, **queue):
    """A kairand configuration whose expander may pipeline its page commits
    freely (dispatcher/expand_page.c): pages of `page`, no depth limit in
    the way (queue.* in `queue` added or replaced), LINE into the outbox,
    no HTTP listener."""
    q = {"expand_ahead_ms": "1m", "max_depth": "1000000"}
    q.update(queue)
    return {"dispatcher": {"expand_page": str(page),
                           "max_recipients": str(max_recipients)},
            "queue": q, "routes": {"line": "outbox"},
            "http": {"listen": ""}}


def line_broadcast(tenant, subject, n, prefix, base=0, **extra):
    """A normal LINE broadcast of tenant's to n inline recipients: ids
    prefix000000, prefix000001, ..., LINE ids U<32 hex> counted from
    base; fields in extra added or replaced."""
    b = {"tenant": tenant, "priority": "normal", "subject": subject,
         "body": "本文", "channels": ["line"],
         "recipients": [{"id": "%s%06d" % (prefix, i),
                         "line": "U%032x" % (base + i)} for i in range(n)]}
    b.update(extra)
    return b


def resolve_states(per):
    """A bc:<id>:r hash (HGETALL's flat reply or a dict) as each recipient's
    record, the way kairan's readers see it (docs/multicast-record.md): a
    member of a LINE multicast recorded once, "q|<rcpt>|<gid>", reads
    "d|<rcpt>|<ms>|<detail>" when the field "@<gid>" says delivered
    ("d|<ms>|<members>|<detail>"), else "q|<rcpt>"; the "@" fields are
    left out.  Returns {field: value} as str."""
    if isinstance(per, dict):
        items = list(per.items())
    else:
        items = [(per[i], per[i + 1]) for i in range(0, len(per), 2)]
    items = [(f.decode() if isinstance(f, bytes) else f,
              v.decode() if isinstance(v, bytes) else v) for f, v in items]
    groups = {f[1:]: v for f, v in items if f.startswith("@")}
    out = {}
    for f, v in items:
        if f.startswith("@"):
            continue
        m = re.match(r"^q\|([^|]*)\|(.+)$", v, re.S)
        if m:
            g = re.match(r"^d\|(\d+)\|\d+\|(.*)$", groups.get(m.group(2), ""),
                         re.S)
            v = ("d|%s|%s|%s" % (m.group(1), g.group(1), g.group(2)) if g
                 else "q|" + m.group(1))
        out[f] = v
    return out


def bc_states(r, bid, prefix="kairan"):
    """resolve_states of broadcast bid's bc:<id>:r, read from Redis r."""
    return resolve_states(r.call("HGETALL", "%s:bc:%s:r" % (prefix, bid)))


# ------------------------------------------------------------------ fake SMTP

class FakeSMTP:
    """tests/fakes/fake_smtp.py on a free port.

    FakeSMTP(out_dir, tls="none"|"starttls"|"implicit", cert=None, key=None,
             require_tls=False, auth="user:pass" or list, max_rcpt=0,
             extra_args=(), control=None, name="smtp", host="127.0.0.1")
    With tls != "none" and no cert/key, the server cert of mkca() is used
    (self.ca = path of ca.pem).
    """

    def __init__(self, out_dir, tls="none", cert=None, key=None, require_tls=False,
                 auth=None, max_rcpt=0, extra_args=(), control=None, name="smtp",
                 port=0, start=True, host="127.0.0.1"):
        self.out_dir = out_dir
        self.name = name
        self.host = host
        self.tls = tls
        self.ca = None
        if tls != "none" and (cert is None or key is None):
            d = mkca()
            cert = cert or os.path.join(d, "server.pem")
            key = key or os.path.join(d, "server.key")
            self.ca = os.path.join(d, "ca.pem")
        self.cert, self.key = cert, key
        self.store_dir = os.path.join(out_dir, name + "-store")
        os.makedirs(self.store_dir, exist_ok=True)
        self.control_file = os.path.join(out_dir, name + "-control.json")
        self.port_file = os.path.join(out_dir, name + ".port")
        self.messages_path = os.path.join(self.store_dir, "messages.jsonl")
        self.events_path = os.path.join(self.store_dir, "events.jsonl")
        self.require_tls = require_tls
        if isinstance(auth, str):
            auth = [auth]
        self.auth = list(auth or [])
        self.max_rcpt = max_rcpt
        self.extra_args = list(extra_args)
        self.port = port
        self.proc = None
        if control is not None:
            self.set_control(control)
        if start:
            self.start()

    @property
    def user(self):
        return self.auth[0].split(":", 1)[0] if self.auth else None

    @property
    def password(self):
        return self.auth[0].split(":", 1)[1] if self.auth else None

    @property
    def url(self):
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % (scheme, host, self.port)

    def start(self, timeout=10.0):
        """Start (or restart after stop(): same port when it had one)."""
        try:
            os.unlink(self.port_file)
        except FileNotFoundError:
            pass
        args = [PYTHON, os.path.join(FAKES, "fake_smtp.py"),
                "--host", self.host,
                "--port", str(self.port), "--port-file", self.port_file,
                "--tls", self.tls, "--store", self.store_dir,
                "--control", self.control_file, "--stats"]
        if self.cert:
            args += ["--cert", self.cert, "--key", self.key]
        if self.require_tls:
            args.append("--require-tls")
        for a in self.auth:
            args += ["--auth", a]
        if self.max_rcpt:
            args += ["--max-rcpt", str(self.max_rcpt)]
        args += self.extra_args
        self.proc = Proc(args, self.out_dir, name=self.name)

        def ready():
            if not self.proc.alive():
                raise AssertionError("fake_smtp exited (%s):\n%s" % (
                    self.proc.returncode, self.proc.stderr_text()[-2000:]))
            return os.path.exists(self.port_file)
        wait_for(ready, timeout, what="fake_smtp %s to listen" % self.name)
        with open(self.port_file) as f:
            self.port = int(f.read())
        return self

    def stop(self, timeout=10.0):
        if self.proc:
            return self.proc.stop(timeout)

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return bool(self.proc and self.proc.alive())

    @staticmethod
    def _jsonl(path):
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in raw.split(b"\n"):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass   # a line being written right now
        return out

    def messages(self):
        """Accepted messages so far (dicts; see fake_smtp.py's docstring)."""
        return self._jsonl(self.messages_path)

    def events(self, ev=None):
        """Events so far, optionally only one kind ("rcpt", "connect", ...)."""
        evs = self._jsonl(self.events_path)
        return [e for e in evs if e.get("ev") == ev] if ev else evs

    def delivered_rcpts(self):
        """Every accepted (message, recipient) as a list of unquoted addresses."""
        return [r for m in self.messages() for r in m["rcpt"]]

    def wait_messages(self, n, timeout=10.0):
        """Wait until at least n messages are stored; returns them."""
        return wait_for(lambda: (lambda m: m if len(m) >= n else None)(self.messages()),
                        timeout, what="%d messages at fake smtp %s" % (n, self.name))

    def peak_connections(self):
        return max((e.get("active", 0) for e in self.events("connect")), default=0)

    def set_control(self, control):
        """Atomically replace the control file (temp + rename).  The fake sees
        it at its next connection/MAIL/RCPT/DATA or within 50 ms."""
        tmp = self.control_file + ".tmp%d" % os.getpid()
        with open(tmp, "w") as f:
            json.dump(control, f)
        os.replace(tmp, self.control_file)

    def clear_control(self):
        self.set_control({})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ------------------------------------------------------------------ TAP

class TAP:
    """TAP producer.  Lines are printed (and flushed) as results come in; the
    plan "1..N" comes last from done(), which exits 1 when anything failed."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.n = 0
        self.failed = 0

    def _emit(self, s):
        self.out.write(s + "\n")
        self.out.flush()

    def diag(self, msg):
        for ln in str(msg).splitlines() or [""]:
            self._emit("# " + ln)

    def ok(self, cond, name, detail=""):
        self.n += 1
        name = str(name).replace("\n", " ").replace("#", "\\#")
        if cond:
            self._emit("ok %d - %s" % (self.n, name))
        else:
            self.failed += 1
            self._emit("not ok %d - %s" % (self.n, name))
            if detail:
                self.diag(detail)
        return bool(cond)

    def eq(self, got, want, name):
        """ok(got == want) with both shown on failure."""
        return self.ok(got == want, name, "got:  %r\nwant: %r" % (got, want))

    def skip(self, name, reason):
        self.n += 1
        self._emit("ok %d - %s # SKIP %s" % (self.n, name, reason))

    @contextlib.contextmanager
    def check(self, name):
        """with tap.check("name"): ...   -> ok when the block completes, not ok
        (with the traceback as # lines) when it raises.  Never propagates
        Exception (KeyboardInterrupt/SystemExit do propagate)."""
        try:
            yield self
        except Exception as e:
            tb = traceback.format_exc()
            msg = "%s: %s" % (type(e).__name__, e)
            self.ok(False, name, msg + "\n" + tb)
        else:
            self.ok(True, name)

    def done(self):
        """Print the plan; remove tmpdir()s when all passed; exit."""
        self._emit("1..%d" % self.n)
        if self.failed:
            self.diag("%d of %d failed" % (self.failed, self.n))
        elif not os.environ.get("KAIRAN_KEEP_TMP"):
            for p in _procs:        # stop everything before deleting its files
                if p.alive():
                    p.stop(5)
            for d in _tmpdirs:
                shutil.rmtree(d, ignore_errors=True)
        sys.stdout.flush()
        sys.exit(1 if self.failed or self.n == 0 else 0)


class Kairan:
    """A kairan installation for one test: key file, config, and helpers to
    run kairanctl and kairand against the given Redis (and fake SMTP).

        k = Kairan(out, redis, smtp=smtp)             # email via smtp
        k = Kairan(out, redis, email="outbox")         # email as .eml files
        k = Kairan(out, redis, smtp=smtp, conf={"queue": {"retry_base_ms": "50"}})
        bid = k.submit({...broadcast...})             # kairanctl submit -
        d = k.start()                                  # a kairand Proc
        k.wait_done(bid, 60)                           # bc hash as a dict
    """

    def __init__(self, out_dir, redis, smtp=None, email=None, conf=None,
                 name="kairan"):
        self.dir = os.path.join(out_dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.redis = redis
        self.smtp = smtp
        self.key_file = os.path.join(self.dir, "key")
        if not os.path.exists(self.key_file):
            subprocess.run([os.path.join(BUILD, "kairanctl"), "keygen",
                            self.key_file], check=True)
        self.outbox = os.path.join(self.dir, "outbox")
        self.prefix = "kairan:"
        sections = {
            "redis": {"url": redis.url},
            "routes": {"email": email or ("smtp" if smtp else "outbox"),
                       "line": "outbox", "push": "outbox"},
            "outbox": {"dir": self.outbox},
            "security": {"key_file": self.key_file},
            "smtp": {"from": "桜高校 <noreply@sakura.example.jp>",
                     "timeout_ms": "10000",
                     # The RFC 5321 reply waits (minutes by default).
                     **dict.fromkeys((
                         "greeting_timeout_ms", "mail_timeout_ms",
                         "rcpt_timeout_ms", "data_init_timeout_ms",
                         "data_xfer_timeout_ms", "data_done_timeout_ms"),
                         "10000")},
            "queue": {"retry_base_ms": "100", "retry_cap_ms": "1000",
                      "claim_idle_ms": "30000"},
            "dispatcher": {"drain_ms": "5000", "log_level": "info"},
            # Every test installation gets its own HTTP port and audit dir.
            "http": {"listen": "127.0.0.1:%d" % free_port()},
            "retention": {"audit_dir": os.path.join(self.dir, "audit")},
        }
        if smtp is not None:
            sections["smtp"]["url"] = smtp.url
            if getattr(smtp, "tls", "none") == "none":
                sections["smtp"]["tls"] = "none"
            elif smtp.tls == "implicit":
                sections["smtp"]["tls"] = "implicit"
            if getattr(smtp, "ca", None):
                sections["smtp"]["ca_file"] = smtp.ca
            if getattr(smtp, "user", None):
                sections["smtp"]["username"] = smtp.user
                sections["smtp"]["password"] = smtp.password
        for sec, kv in (conf or {}).items():
            sections.setdefault(sec, {}).update(kv)
        self.sections = sections
        self.conf = os.path.join(self.dir, "kairan.conf")
        self.write_conf()
        self._n = 0

    def write_conf(self):
        with open(self.conf, "w") as f:
            for sec, kv in self.sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))

    def ctl(self, *args, input=None, timeout=60):
        """Run kairanctl -c CONF ARGS; returns CompletedProcess (text)."""
        return subprocess.run([os.path.join(BUILD, "kairanctl"), "-c", self.conf]
                              + [str(a) for a in args], input=input,
                              capture_output=True, text=True, timeout=timeout)

    def submit(self, bc):
        """Submit a broadcast (dict or JSON text); returns its id."""
        text = bc if isinstance(bc, str) else json.dumps(bc, ensure_ascii=False)
        cp = self.ctl("submit", "-", input=text)
        if cp.returncode != 0:
            raise AssertionError("kairanctl submit failed (%d): %s"
                                 % (cp.returncode, cp.stderr))
        return cp.stdout.strip()

    def start(self, name=None, extra_env=None):
        """Start a kairand; returns its Proc (stderr has the JSON log)."""
        self._n += 1
        return Proc([os.path.join(BUILD, "kairand"), "-c", self.conf], self.dir,
                    name=name or "kairand-%d" % self._n, extra_env=extra_env)

    def bc(self, bid):
        """The broadcast hash as a dict of str (empty if unknown)."""
        v = self.redis.call("HGETALL", self.prefix + "bc:" + bid) or []
        return {v[i].decode(): v[i + 1].decode("utf-8", "replace")
                for i in range(0, len(v), 2)}

    def name_of(self, tenant, key, timeout=30):
        """The name kairan gave to tenant's broadcast submitted with
        "id": key (its idempotency key), waiting until it is stored (a raw
        XADD is stored by the expander)."""
        def look():
            v = self.redis.call("HGET", self.prefix + "idem:" + tenant, key)
            return v.decode() if v else None
        return wait_for(look, timeout, 0.05,
                        what="broadcast %s of %s stored" % (key, tenant))

    def counts(self, bid):
        """{"email": {"delivered": n, ...}, ...} from the broadcast hash."""
        out = {}
        for k, v in self.bc(bid).items():
            if k.startswith("n:"):
                _, ch, st = k.split(":", 2)
                out.setdefault(ch, {})[st] = int(v)
        return out

    def wait_done(self, bid, timeout=60):
        """Wait until the broadcast has ended; returns its hash."""
        def done():
            h = self.bc(bid)
            return h if ("done_ms" in h or h.get("status") == "rejected") else None
        return wait_for(done, timeout, 0.1, what="broadcast %s to end" % bid)


# ------------------------------------------------------------------ fake FCM / APNs

NODE = "/usr/bin/node" if os.path.exists("/usr/bin/node") else (shutil.which("node") or "node")


def _keypair(out_dir, name, algorithm):
    """A private key (PEM, mode 0600) and its public part made with the
    openssl CLI: algorithm "RSA" (2048 bits) or "EC" (P-256).  Returns
    (private path, public path); reuses the files when they exist."""
    priv = os.path.join(out_dir, name + ".pem")
    pub = os.path.join(out_dir, name + ".pub.pem")
    if not (os.path.exists(priv) and os.path.exists(pub)):
        opts = (["-pkeyopt", "rsa_keygen_bits:2048"] if algorithm == "RSA"
                else ["-pkeyopt", "ec_paramgen_curve:P-256"])
        subprocess.run(["openssl", "genpkey", "-algorithm", algorithm] + opts
                       + ["-out", priv], check=True, capture_output=True)
        os.chmod(priv, 0o600)
        subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub],
                       check=True, capture_output=True)
    return priv, pub


class _FakeNode:
    """What FakeFCM and FakeAPNs share (the API of FakeSMTP): a node
    process on a free port with the mkca() server certificate (self.ca =
    the CA to trust), a store dir, a control file, and readers."""

    script = None

    def __init__(self, out_dir, name, extra_args=(), control=None, port=0,
                 cert=None, key=None):
        self.out_dir = out_dir
        self.name = name
        d = mkca()
        self.ca = os.path.join(d, "ca.pem")
        self.cert = cert or os.path.join(d, "server.pem")
        self.key = key or os.path.join(d, "server.key")
        self.store_dir = os.path.join(out_dir, name + "-store")
        os.makedirs(self.store_dir, exist_ok=True)
        self.control_file = os.path.join(out_dir, name + "-control.json")
        self.port_file = os.path.join(out_dir, name + ".port")
        self.requests_path = os.path.join(self.store_dir, "requests.jsonl")
        self.events_path = os.path.join(self.store_dir, "events.jsonl")
        self.extra_args = list(extra_args)
        self.port = port
        self.proc = None
        if control is not None:
            self.set_control(control)

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def _args(self):
        raise NotImplementedError

    def start(self, timeout=10.0):
        """Start (or restart after stop(): same port when it had one)."""
        try:
            os.unlink(self.port_file)
        except FileNotFoundError:
            pass
        args = [NODE, os.path.join(FAKES, self.script),
                "--port", str(self.port), "--port-file", self.port_file,
                "--cert", self.cert, "--key", self.key,
                "--store", self.store_dir, "--control", self.control_file,
                "--stats"] + self._args() + self.extra_args
        self.proc = Proc(args, self.out_dir, name=self.name)

        def ready():
            if not self.proc.alive():
                raise AssertionError("%s exited (%s):\n%s" % (
                    self.script, self.proc.returncode, self.proc.stderr_text()[-2000:]))
            return os.path.exists(self.port_file)
        wait_for(ready, timeout, what="%s %s to listen" % (self.script, self.name))
        with open(self.port_file) as f:
            self.port = int(f.read())
        return self

    def stop(self, timeout=10.0):
        if self.proc:
            return self.proc.stop(timeout)

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return bool(self.proc and self.proc.alive())

    def messages(self):
        """Accepted notifications so far (dicts; see the fake's docstring)."""
        return FakeSMTP._jsonl(self.requests_path)

    def events(self, ev=None):
        """Events so far, optionally only one kind ("send", "session", ...)."""
        evs = FakeSMTP._jsonl(self.events_path)
        return [e for e in evs if e.get("ev") == ev] if ev else evs

    def tokens_delivered(self):
        """The device token of every accepted notification, in order."""
        return [m["token"] for m in self.messages()]

    def wait_messages(self, n, timeout=10.0):
        """Wait until at least n notifications are stored; returns them."""
        return wait_for(lambda: (lambda m: m if len(m) >= n else None)(self.messages()),
                        timeout, what="%d notifications at %s" % (n, self.name))

    def sessions(self):
        """Connections (TLS sessions) accepted so far."""
        return self.events("session")

    def set_control(self, control):
        """Atomically replace the control file (temp + rename); the fake
        sees it at its next request or within 50 ms."""
        tmp = self.control_file + ".tmp%d" % os.getpid()
        with open(tmp, "w") as f:
            json.dump(control, f)
        os.replace(tmp, self.control_file)

    def clear_control(self):
        self.set_control({})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class FakeFCM(_FakeNode):
    """tests/fakes/fake_fcm.js (FCM HTTP v1 + its OAuth token endpoint).

    FakeFCM(out_dir, project="kairan-test", token_ttl=3600,
            token_lifetime=None, max_streams=100, extra_args=(),
            control=None, name="fcm")
    Makes a service account (RSA key via the openssl CLI) in out_dir:
    self.service_account is its JSON file; conf() gives the [fcm] section
    for Kairan(conf=...).  token_lifetime < token_ttl makes the fake refuse
    its access tokens before the expiry it announced (a token "expiring
    mid-broadcast" as the client sees it)."""

    script = "fake_fcm.js"

    def __init__(self, out_dir, project="kairan-test", token_ttl=3600,
                 token_lifetime=None, max_streams=100, extra_args=(),
                 control=None, name="fcm", port=0, start=True):
        super().__init__(out_dir, name, extra_args, control, port)
        self.project = project
        self.token_ttl = token_ttl
        self.token_lifetime = token_lifetime
        self.max_streams = max_streams
        self.client_email = "kairan-sender@%s.iam.gserviceaccount.com" % project
        self.key_id = "3f2a9c0d1e4b5a6978877665544332211aabbccd"
        self.private_key, self.public_key = _keypair(out_dir, name + "-sa", "RSA")
        self.service_account = os.path.join(out_dir, name + "-service-account.json")
        if start:
            self.start()

    def _write_account(self):
        with open(self.private_key) as f:
            pem = f.read()
        sa = {"type": "service_account", "project_id": self.project,
              "private_key_id": self.key_id, "private_key": pem,
              "client_email": self.client_email, "client_id": "1234567890",
              "token_uri": self.url + "/token"}
        with open(self.service_account, "w") as f:
            json.dump(sa, f)
        os.chmod(self.service_account, 0o600)

    def _args(self):
        a = ["--public-key", self.public_key, "--kid", self.key_id,
             "--client-email", self.client_email, "--project", self.project,
             "--token-ttl", str(self.token_ttl),
             "--max-streams", str(self.max_streams)]
        if self.token_lifetime is not None:
            a += ["--token-lifetime", str(self.token_lifetime)]
        return a

    def start(self, timeout=10.0):
        super().start(timeout)
        self._write_account()
        return self

    def conf(self, **kw):
        """The [fcm] section pointing at this fake (kw adds or overrides)."""
        c = {"api_base": self.url, "token_url": self.url + "/token",
             "project_id": self.project,
             "service_account_file": self.service_account, "ca_file": self.ca,
             "timeout_ms": "10000"}
        c.update({k: str(v) for k, v in kw.items()})
        return c

    def token_events(self):
        """Access tokens issued (one event each)."""
        return self.events("token")

    def sends(self):
        """Every send answered or not ({"ev":"send", "status", "code", ...})."""
        return self.events("send")


class FakeAPNs(_FakeNode):
    """tests/fakes/fake_apns.js (APNs provider API, HTTP/2 only).

    FakeAPNs(out_dir, topic="jp.example.sakura.app", key_id="ABC123DEFG",
             team_id="DEF123GHIJ", token_window_s=1200,
             token_max_age_s=3600, max_streams=1000, extra_args=(),
             control=None, name="apns")
    Makes the .p8 key (EC P-256 via the openssl CLI) in out_dir:
    self.key_file; conf() gives the [apns] section."""

    script = "fake_apns.js"

    def __init__(self, out_dir, topic="jp.example.sakura.app", key_id="ABC123DEFG",
                 team_id="DEF123GHIJ", token_window_s=1200, token_max_age_s=3600,
                 max_streams=1000, extra_args=(), control=None, name="apns",
                 port=0, start=True):
        super().__init__(out_dir, name, extra_args, control, port)
        self.topic = topic
        self.key_id = key_id
        self.team_id = team_id
        self.token_window_s = token_window_s
        self.token_max_age_s = token_max_age_s
        self.max_streams = max_streams
        self.key_file, self.public_key = _keypair(out_dir, name + "-AuthKey", "EC")
        if start:
            self.start()

    def _args(self):
        return ["--public-key", self.public_key, "--key-id", self.key_id,
                "--team-id", self.team_id, "--topic", self.topic,
                "--token-window-s", str(self.token_window_s),
                "--token-max-age-s", str(self.token_max_age_s),
                "--max-streams", str(self.max_streams)]

    def conf(self, **kw):
        """The [apns] section pointing at this fake (kw adds or overrides)."""
        c = {"api_base": self.url, "key_file": self.key_file,
             "key_id": self.key_id, "team_id": self.team_id,
             "topic": self.topic, "ca_file": self.ca, "timeout_ms": "10000"}
        c.update({k: str(v) for k, v in kw.items()})
        return c

    def jwts(self):
        """New provider tokens seen (one event each)."""
        return self.events("jwt")

    def sends(self):
        return self.events("send")


__all__ += ["NODE", "FakeFCM", "FakeAPNs"]


def _jsonl(path):
    """The JSON lines of a fake's store, passing over one being written
    right now (a long line reaches the file in more than one write)."""
    return FakeSMTP._jsonl(path)


class FakeHTTP:
    """A fake HTTP provider (tests/fakes/fake_line.py, fake_sendgrid.py) on
    a free port, with its store and control file under out_dir."""

    script = None

    def __init__(self, out_dir, name, args=()):
        self.out_dir = out_dir
        self.name = name
        self.store = os.path.join(out_dir, name + "-store")
        self.control_file = os.path.join(out_dir, name + "-control.json")
        self.port_file = os.path.join(out_dir, name + ".port")
        self.requests_path = os.path.join(self.store, "requests.jsonl")
        self.events_path = os.path.join(self.store, "events.jsonl")
        self.set_control({})
        self.proc = Proc([PYTHON, os.path.join(FAKES, self.script),
                          "--port-file", self.port_file, "--store", self.store,
                          "--control", self.control_file, "--stats"] + list(args),
                         out_dir, name=name)

        def ready():
            if not self.proc.alive():
                raise AssertionError("%s exited:\n%s" % (
                    name, self.proc.stderr_text()[-2000:]))
            return os.path.exists(self.port_file)
        wait_for(ready, 10, what=name + " to listen")
        with open(self.port_file) as f:
            self.port = int(f.read())
        self.url = "http://127.0.0.1:%d" % self.port

    def set_control(self, control):
        tmp = self.control_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(control, f)
        os.replace(tmp, self.control_file)

    def clear_control(self):
        self.set_control({})

    def requests(self):
        return _jsonl(self.requests_path)

    def events(self, ev=None):
        return [e for e in _jsonl(self.events_path)
                if ev is None or e.get("ev") == ev]

    def stop(self):
        self.proc.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class FakeLine(FakeHTTP):
    """tests/fakes/fake_line.py (give "--token", T in args)."""
    script = "fake_line.py"


class FakeSendGrid(FakeHTTP):
    """tests/fakes/fake_sendgrid.py (give "--token", KEY in args)."""
    script = "fake_sendgrid.py"

    def recipients(self):
        """Every "to" address of every accepted request, in order."""
        return [to["email"] for q in self.requests()
                for p in q.get("personalizations", []) for to in p.get("to", [])]


__all__ += ["FakeHTTP", "FakeLine", "FakeSendGrid"]


# ------------------------------------------------------------------ personal links

def index_key(key_file):
    """The blind-index key of a kairan key file (common/seal.c): its
    "index:" line, or HKDF-SHA256 (no salt, info "kairan blind index v1")
    of the lowest kid's key."""
    import hashlib
    import hmac
    keys, index = {}, None
    with open(key_file) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kid, hexkey = line.split(":", 1)
            if kid == "index":
                index = bytes.fromhex(hexkey)
            else:
                keys[int(kid)] = bytes.fromhex(hexkey)
    if index is not None:
        return index
    prk = hmac.new(b"\0" * 32, keys[min(keys)], hashlib.sha256).digest()
    return hmac.new(prk, b"kairan blind index v1\x01", hashlib.sha256).digest()


def ack_token(key_file, bcast, rcpt):
    """A personal link's token for (broadcast, recipient), made as kairand
    makes it (kn_ack_token): base64url("bcast|rcpt") "." 32 hex digits of
    HMAC-SHA256(index key, "ack\\0bcast|rcpt")."""
    import base64
    import hashlib
    import hmac
    plain = ("%s|%s" % (bcast, rcpt)).encode()
    mac = hmac.new(index_key(key_file), b"ack\0" + plain,
                   hashlib.sha256).hexdigest()[:32]
    return base64.urlsafe_b64encode(plain).decode().rstrip("=") + "." + mac


__all__ += ["index_key", "ack_token"]


# ------------------------------------------------------------------ browser drivers

def browser_driver(tap, script, args, timeout=180):
    """Run tests/browser/<script> with node in Debian's headless Chromium
    (skipping the whole test, tap.done(), when /usr/bin/chromium is
    missing; npm ci from the lock file when playwright-core or axe-core
    is): returns the last JSON line it printed, or None (the tap check
    "the driver ran to the end" says why)."""
    bdir = os.path.join(ROOT, "tests", "browser")
    if not os.access("/usr/bin/chromium", os.X_OK):
        tap.skip(script, "chromium is not installed (apt-get install "
                 "chromium; scripts/deps.sh)")
        tap.done()
    with tap.check("playwright-core and axe-core are installed in "
                   "tests/browser (npm ci from the lock file)"):
        if not all(os.path.exists(os.path.join(bdir, "node_modules", m,
                                               "package.json"))
                   for m in ("playwright-core", "axe-core")):
            cp = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"],
                                cwd=bdir, capture_output=True, text=True,
                                timeout=60)
            assert cp.returncode == 0, cp.stderr[-2000:]
    cp = subprocess.run(["node", os.path.join(bdir, script)]
                        + [str(a) for a in args], cwd=bdir,
                        capture_output=True, text=True, timeout=timeout)
    res = None
    for line in cp.stdout.splitlines():
        try:
            res = json.loads(line)
        except ValueError:
            pass
    with tap.check("the driver %s ran to the end" % script):
        assert res is not None and res.get("event") == "done", \
            (cp.returncode, cp.stdout[-3000:], cp.stderr[-2000:])
    return res if res is not None and res.get("event") == "done" else None


__all__ += ["browser_driver"]


# ------------------------------------------------------------------ HTTP clients

class HttpResp:
    """One answer of kairand's HTTP listener.

    status   the status code (int);
    headers  lower-case header name -> list of its values, in the order
             sent (a repeated header, e.g. Set-Cookie, keeps them all);
    raw      the body as bytes;
    body     the body as text (UTF-8, undecodable bytes replaced);
    json     the body parsed as JSON, or None (empty or not JSON).
    """

    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.body = raw.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.body) if self.body else None
        except ValueError:
            self.json = None

    def h(self, name):
        """The first value of header `name` (any case), or None."""
        return (self.headers.get(name.lower()) or [None])[0]

    def __repr__(self):
        return "<%d %s>" % (self.status, self.body[:600])


def http_request(port, method, path, body=None, headers=None, token=None,
                 ctype=None, timeout=30):
    """One request to 127.0.0.1:`port` on a connection of its own; returns
    an HttpResp.

    body     None: no body.  bytes or str: sent as they are (str as UTF-8),
             with Content-Type `ctype` when given (else only what
             `headers` says).  Anything else: sent as JSON (UTF-8, not
             ASCII-escaped) with Content-Type `ctype`, or the one in
             `headers`, or application/json.
    headers  extra request headers (a dict; not changed).
    token    an API token: "Authorization: Bearer <token>".
    """
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    data = body
    if body is not None and not isinstance(body, (bytes, str)):
        data = json.dumps(body, ensure_ascii=False)
        if not ctype and not any(k.lower() == "content-type" for k in h):
            ctype = "application/json"
    if isinstance(data, str):
        data = data.encode("utf-8")
    if data is not None and ctype:
        h["Content-Type"] = ctype
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        hdrs = {}
        for name, value in r.getheaders():
            hdrs.setdefault(name.lower(), []).append(value)
    finally:
        c.close()
    return HttpResp(r.status, hdrs, raw)


DEVICE_COOKIE = "kairan_device_"


class StaffSession:
    """A browser-like client of the staff API (what the console does): it
    keeps cookies and the CSRF token across calls and sends our Origin.

    StaffSession(port, ip=None, keep_devices=False, timeout=30)

    Cookies are kept in `jar` (name -> value, in the order first set; a
    test may edit it) and sent back in that order as one Cookie header.
    A Set-Cookie with an empty value or Max-Age=0 (logout) removes its
    cookie.  Two kinds of client:
      keep_devices=False  keeps ONE cookie, as a script would: each
                     Set-Cookie replaces the jar.  kairand sends a login's
                     device cookie (kairan_device_*, model/device.h) first
                     and the session's last, so this client keeps the
                     session and is never a known browser;
      keep_devices=True   keeps every cookie, as a browser does: the device
                     cookies too, so a later login is from a known browser
                     (device() lists them; a test may copy them into
                     another session's jar).
    After each call: `set_cookies` is that answer's Set-Cookie values (a
    list, maybe empty); `set_cookie` the last one that was not a device
    cookie, kept until another comes (None before).

    The CSRF token is taken from any JSON answer with a "csrf" member (a
    login) and sent as X-CSRF-Token; `csrf` may be set or cleared by the
    test.  `origin` is sent as Origin; `ip`, when set, as X-Real-IP (the
    address kairand sees behind its proxy; change it between calls to
    move the browser).
    """

    def __init__(self, port, ip=None, keep_devices=False, timeout=30):
        self.port = port
        self.ip = ip
        self.keep_devices = keep_devices
        self.timeout = timeout
        self.origin = "http://127.0.0.1:%d" % port
        self.jar = {}
        self.csrf = None
        self.set_cookies = []
        self.set_cookie = None

    @property
    def cookie(self):
        """The session cookie as "name=value" (the jar's first cookie that
        is not a device cookie), or None."""
        for name, value in self.jar.items():
            if not name.startswith(DEVICE_COOKIE):
                return "%s=%s" % (name, value)
        return None

    @cookie.setter
    def cookie(self, nv):
        """Replace the session cookie with "name=value" (None: drop it);
        the device cookies stay."""
        for name in [n for n in self.jar if not n.startswith(DEVICE_COOKIE)]:
            del self.jar[name]
        if nv:
            name, value = nv.split("=", 1)
            self.jar[name] = value

    def device(self):
        """The jar's device cookies: name -> value."""
        return {k: v for k, v in self.jar.items() if k.startswith(DEVICE_COOKIE)}

    def call(self, method, path, body=None, token=None, headers=None,
             ctype=None, origin=True, csrf=True):
        """One request (body, ctype as http_request).  With `token`: sent
        as a bearer token instead of the cookies and the CSRF token.
        origin: True sends ours, a string sends that one, False none.
        csrf=False leaves out the CSRF token.  `headers` are sent too
        (ours win)."""
        h = dict(headers or {})
        if origin:
            h["Origin"] = self.origin if origin is True else origin
        if token:
            h["Authorization"] = "Bearer " + token
        else:
            if self.jar:
                h["Cookie"] = "; ".join("%s=%s" % kv for kv in self.jar.items())
            if csrf and self.csrf:
                h["X-CSRF-Token"] = self.csrf
        if self.ip:
            h["X-Real-IP"] = self.ip
        r = http_request(self.port, method, path, body, h, ctype=ctype,
                         timeout=self.timeout)
        self.set_cookies = r.headers.get("set-cookie", [])
        for sc in self.set_cookies:
            name, value = sc.split(";", 1)[0].split("=", 1)
            if not self.keep_devices:
                self.jar.clear()
            if value and "Max-Age=0" not in sc:
                self.jar[name] = value
            else:
                self.jar.pop(name, None)
            if not name.startswith(DEVICE_COOKIE):
                self.set_cookie = sc
        if isinstance(r.json, dict) and r.json.get("csrf"):
            self.csrf = r.json["csrf"]
        return r

    def login(self, tenant, login, password, totp=None):
        """POST /v1/session (with "totp" when given); returns the answer."""
        b = {"tenant": tenant, "login": login, "password": password}
        if totp is not None:
            b["totp"] = totp
        return self.call("POST", "/v1/session", b)


__all__ += ["HttpResp", "http_request", "StaffSession"]
