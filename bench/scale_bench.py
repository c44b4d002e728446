"""Redis' share of a delivery, per channel (part of make bench; README,
"Scale on paper"): one broadcast of N recipients on one channel through
the outbox adapter (the provider side costs nothing, so what is measured
is kairan's queue path: submit, expansion, read, results), with the
commands Redis ran (INFO commandstats deltas), Redis' CPU and kairand's
CPU per delivery.  LINE recipients go 500 to a multicast job.  The
providers' own cost (SMTP, HTTP/2) is in bench/run.py and push_bench.py.
Figures only; nothing is asserted."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
from harness import Redis, Kairan, tmpdir, wait_for  # noqa

N = int(os.environ.get("KAIRAN_BENCH_SCALE_N", "20000"))
out = tmpdir("scale-bench")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def calls(r):
    info = r.call("INFO", "commandstats")
    info = info.decode() if isinstance(info, bytes) else info
    return sum(int(m) for m in re.findall(r"calls=(\d+)", info))


def recipient(ch, i):
    if ch == "email":
        return {"id": "r%06d" % i, "email": "g%06d@example.jp" % i}
    if ch == "line":
        return {"id": "r%06d" % i, "line": "U%032x" % i}
    return {"id": "r%06d" % i,
            "push": [{"platform": "fcm", "token": "tok%06d:APA91b-bench" % i}]}


print("scale_bench: %d recipients a channel, outbox adapter (load %s)"
      % (N, open("/proc/loadavg").read().split()[0]))
for ch in ("email", "line", "push"):
    d = os.path.join(out, ch)
    os.makedirs(d, exist_ok=True)
    with Redis(d) as r:
        k = Kairan(d, r, email="outbox", conf={
            "dispatcher": {"max_recipients": str(max(N, 100000))},
            "http": {"listen": ""}})
        p = k.start()
        wait_for(lambda: '"msg":"ready"' in p.stderr_text(), 15, what="kairand ready")
        c0, k0, r0 = calls(r), cpu_s(p.pid), cpu_s(r.proc.pid)
        bid = k.submit({"tenant": "bench", "subject": "件名", "body": "本文",
                        "channels": [ch],
                        "recipients": [recipient(ch, i) for i in range(N)]})
        h = k.wait_done(bid, 600)
        c1, k1, r1 = calls(r), cpu_s(p.pid), cpu_s(r.proc.pid)
        secs = (int(h["last_ms"]) - int(h["created_ms"])) / 1000.0
        p.stop()
    print("  %-5s %7.0f deliveries/s; per delivery: %.3f Redis commands, "
          "redis-server %.1f us CPU, kairand %.1f us CPU"
          % (ch, N / secs, (c1 - c0) / N, (r1 - r0) / N * 1e6,
             (k1 - k0) / N * 1e6))
