"""push_bench.py - FCM sends per second through kairand over one HTTP/2
connection versus four, with kairand's peak RSS.  Prints figures and
asserts nothing.

Each run: a private redis-server, tests/fakes/fake_fcm.js (HTTP/2 + TLS,
answering at once), and a kairand with routes.push = push and
fcm.connections = 1 or 4, delivering one urgent N-token broadcast
(kairanctl submit).  sends/s is measured on the fake's clock from its first
to its last accepted request.  The CPU each side used over the run (share
of one core) tells which side is the bottleneck: the fake is one Node.js
thread, so a fake near 100 % means the figure is the sink's ceiling, not
kairand's.
Duplicate pushes (tokens the fake got more than once) must be 0: kairan
sends at most fcm.requests_per_connection (900) requests on a connection,
below the 1,000 stream resets after which Node's nghttp2 (>= 1.57, the
rapid-reset defence) sends GOAWAY, and never lets libcurl re-send a
written request by itself.  A third run answers without content-length,
so that Debian's libcurl 7.88 resets every stream after its answer (the
worst case for the reset limit); connections that carried pushes: at
least N / 900.
Environment: KAIRAN_BENCH_PUSH_N (default 20000), KAIRAN_BENCH_LOG (warn).

Run:  BUILD=build /usr/bin/python3 bench/push_bench.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
from harness import FakeFCM, Kairan, Redis, tmpdir, wait_for  # noqa: E402

N = int(os.environ.get("KAIRAN_BENCH_PUSH_N", "20000"))
HZ = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def peak_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run(out, r, conns, no_cl=False):
    tag = "%d%s" % (conns, "-nocl" if no_cl else "")
    fcm = FakeFCM(out, name="fcm-" + tag, max_streams=100,
                  extra_args=("--no-content-length",) if no_cl else ())
    k = Kairan(out, r, name="kairan-" + tag, conf={
        "routes": {"push": "push"},
        "fcm": fcm.conf(connections=conns),
        "http": {"listen": ""},
        "dispatcher": {"log_level": os.environ.get("KAIRAN_BENCH_LOG", "warn")},
    })
    d = k.start()
    time.sleep(0.3)
    recipients = [{"id": "r%d" % i, "push": [
        {"platform": "fcm", "token": "bench%06d:APA91bH-kairanBenchToken" % i}]}
        for i in range(N)]
    bc = {"tenant": "bench", "category": "emergency", "priority": "urgent",
          "subject": "【緊急】台風接近に伴う臨時休校", "body": "明日は臨時休校とします。",
          "channels": ["push"], "recipients": recipients}
    c0k, c0f = cpu_s(d.pid), cpu_s(fcm.proc.pid)
    t0 = time.time()
    bid = k.submit(bc)
    k.wait_done(bid, 900)
    wall = time.time() - t0
    c1k, c1f = cpu_s(d.pid), cpu_s(fcm.proc.pid)
    rss = peak_rss_kb(d.pid)
    msgs = wait_for(lambda: (lambda m: m if len(m) >= N else None)(fcm.messages()),
                    30, what="the fake's store")
    ts = [m["ts"] for m in msgs]
    span = max(ts) - min(ts) or 1e-9
    sessions = {m["session"] for m in msgs}
    dups = len(msgs) - len({m["token"] for m in msgs})
    delivered = k.counts(bid).get("push", {}).get("delivered", 0)
    d.stop()
    fcm.stop()
    return {"conns": conns, "sends_per_s": N / span, "wall": wall,
            "delivered": delivered, "sessions": len(sessions), "dups": dups,
            "rss_mb": rss / 1024.0,
            "kairand_cpu": (c1k - c0k) / wall, "fake_cpu": (c1f - c0f) / wall,
            "kairand_us_per_send": (c1k - c0k) / N * 1e6}


def main():
    out = tmpdir("push-bench")
    print("push_bench: %d FCM sends per run (fake_fcm.js, HTTP/2 over TLS)" % N)
    with Redis(out) as r:
        for conns, no_cl in ((1, False), (4, False), (1, True)):
            x = run(out, r, conns, no_cl)
            print("  fcm.connections=%d%s: %7.0f sends/s  (%d delivered in "
                  "%.2fs from submit; %d connection%s opened; duplicate "
                  "pushes: %d)"
                  % (x["conns"], " (no content-length)" if no_cl else "",
                     x["sends_per_s"], x["delivered"], x["wall"],
                     x["sessions"], "" if x["sessions"] == 1 else "s",
                     x["dups"]))
            print("      kairand: peak RSS %.1f MB, CPU %.0f%% of a core, %.0f us "
                  "per send; fake: CPU %.0f%% of a core%s"
                  % (x["rss_mb"], 100 * x["kairand_cpu"], x["kairand_us_per_send"],
                     100 * x["fake_cpu"],
                     "  <- the fake is the bottleneck" if x["fake_cpu"] > 0.85 else ""))


if __name__ == "__main__":
    main()
