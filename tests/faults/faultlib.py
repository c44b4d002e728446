"""faultlib.py - what the fault tests (tests/faults/test_*.py, soak.py) share
on top of tests/integration/harness.py: the fake LINE wrapper, incremental
readers of the fakes' JSONL stores, per-channel accounting and the "nothing
left pending" check over every q:* stream.

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from faultlib import *          # also re-exports harness.*

Python 3 stdlib only.
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from harness import *  # noqa: E402,F401,F403
from harness import FAKES, Proc, RedisError, wait_for  # noqa: E402

PYTHON = "/usr/bin/python3"
LINE_TOKEN = "line-static-token-for-fault-tests"
CHANNELS = ("email", "line", "push")
END_STATES = ("delivered", "failed", "cancelled", "expired")

# The environment must not redirect kairand elsewhere than our config says.
for _v in ("KAIRAN_REDIS_URL", "KAIRAN_OUTBOX_DIR", "KAIRAN_KEY_FILE",
           "KAIRAN_SMTP_PASSWORD", "KAIRAN_LINE_TOKEN"):
    os.environ.pop(_v, None)


def jsonl(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    res = []
    for line in raw.split(b"\n"):
        if line.strip():
            try:
                res.append(json.loads(line))
            except ValueError:
                pass
    return res


# FakeHTTP, FakeSendGrid: from harness.


class FakeLine(FakeHTTP):
    """tests/fakes/fake_line.py with a static token (LINE_TOKEN)."""

    script = "fake_line.py"

    def __init__(self, out_dir, name="line", args=()):
        super().__init__(out_dir, name, ["--token", LINE_TOKEN] + list(args))

    def conf(self, **kw):
        c = {"api_base": self.url, "token": LINE_TOKEN, "timeout_ms": "1000"}
        c.update({k: str(v) for k, v in kw.items()})
        return c


class Tally:
    """Reads a fake's JSONL file incrementally (re-parsing 50,000 lines on
    every poll would be too slow) and counts, per address, how many
    accepted messages carried it.  keys(obj) gives the addresses of one line:
    e-mail "rcpt", LINE "to", FCM ["token"]."""

    def __init__(self, path, keys):
        self.path = path
        self.keys = keys
        self.off = 0
        self.count = 0          # addresses seen, duplicates included
        self.per = {}

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return self.count
        end = data.rfind(b"\n")
        if end < 0:
            return self.count
        self.off += end + 1
        for line in data[:end].split(b"\n"):
            if not line.strip():
                continue
            for a in self.keys(json.loads(line)):
                self.count += 1
                self.per[a] = self.per.get(a, 0) + 1
        return self.count

    def duplicates(self):
        """Messages beyond the first per address."""
        self.poll()
        return sum(c - 1 for c in self.per.values() if c > 1)

    def dup_addresses(self):
        return sum(1 for c in self.per.values() if c > 1)

    def got(self):
        self.poll()
        return set(self.per)


def email_tally(smtp):
    return Tally(smtp.messages_path, lambda m: m["rcpt"])


def line_tally(line):
    return Tally(line.requests_path, lambda m: m["to"])


def fcm_tally(fcm):
    return Tally(fcm.requests_path, lambda m: [m["token"]])


def uid(i, tag=0xabc):
    """A LINE user id (U + 32 hex digits)."""
    return "U%08x%024x" % (tag, i)


def fcm_token(tag, i):
    """An FCM registration token (the shape of real ones)."""
    return "c%s%06d:APA91bH-%s_%06d-kairanFaultToken" % (tag, i, tag, i)


def xpending(r, stream, group="kairand"):
    try:
        v = r.call("XPENDING", stream, group)
    except RedisError as e:
        if "NOGROUP" in str(e) or "no such key" in str(e).lower():
            return 0
        raise
    return int(v[0])


def streams(r, prefix="kairan:"):
    """Every q:* stream key (SCAN, so it finds channels a test did not
    name) plus the broadcasts stream."""
    found = set()
    cur = b"0"
    while True:
        cur, keys = r.call("SCAN", cur, "MATCH", prefix + "q:*", "COUNT", 1000)
        found.update(k.decode() for k in keys)
        if cur in (b"0", "0", 0):
            break
    return sorted(found) + [prefix + "broadcasts"]


def leftovers(r, prefix="kairan:"):
    """{stream: pending} for every stream with pending entries, plus the
    retry zset size under "retry" when not empty."""
    out = {}
    for s in streams(r, prefix):
        n = xpending(r, s)
        if n:
            out[s] = n
    n = int(r.call("ZCARD", prefix + "retry"))
    if n:
        out["retry"] = n
    return out


def wait_nothing_pending(r, timeout=20, prefix="kairan:"):
    """Eventually XPENDING 0 on every stream and an empty retry zset."""
    try:
        wait_for(lambda: not leftovers(r, prefix), timeout, 0.2,
                 what="nothing pending")
    except AssertionError:
        raise AssertionError("still pending: %r" % (leftovers(r, prefix),)) from None


def account(k, bid):
    """{channel: (total, delivered, failed, cancelled, expired, sum of ends)}"""
    out = {}
    for ch, c in k.counts(bid).items():
        ends = [c.get(s, 0) for s in END_STATES]
        out[ch] = (c.get("total", 0),) + tuple(ends) + (sum(ends),)
    return out


def dlq_entries(r, prefix="kairan:"):
    """The DLQ stream as a list of {field: value} dicts (str)."""
    res = []
    for eid, kv in r.call("XRANGE", prefix + "dlq", "-", "+"):
        d = {"_id": eid.decode()}
        for i in range(0, len(kv), 2):
            d[kv[i].decode()] = kv[i + 1].decode("utf-8", "replace")
        res.append(d)
    return res


def vmrss_kb(pid):
    """VmRSS of a process in kB (None once it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def elapsed(t0):
    return "%.1fs" % (time.monotonic() - t0)
