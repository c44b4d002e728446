"""LINE benchmark (part of make bench): recipients/s through LINE multicast
(up to 500 user ids per request) into a fast local HTTP sink, and the
sink's own capacity measured with wrk, so it is clear which side limits.
Figures only; nothing is asserted."""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
from harness import BUILD, Redis, Kairan, Proc, tmpdir, wait_for  # noqa

# 200,000 (issue 20's figure): at [line] rate 200 the bucket's burst (one
# second's worth, 100,000 recipients) goes at once, so a smaller run
# would measure the burst, not the rate.
N = int(os.environ.get("KAIRAN_BENCH_LINE_N", "200000"))
# KAIRAN_BENCH_LINE_DIR=1: the recipients come from the directory (a
# group), not inline in the broadcast.
DIRECTORY = os.environ.get("KAIRAN_BENCH_LINE_DIR") == "1"
TOKEN = "bench-line-token"
out = tmpdir("line-bench")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def commandstats(r):
    """{command: (calls, usec)} from INFO commandstats."""
    out = {}
    info = r.call("INFO", "commandstats")
    for line in (info.decode() if isinstance(info, bytes) else info).split("\n"):
        m = re.match(r"cmdstat_([^:]+):calls=(\d+),usec=(\d+)", line)
        if m:
            out[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return out


def minflt(pid):
    """Minor page faults of a process so far (first touches of memory)."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


port_file = os.path.join(out, "sink.port")
sink = Proc(["node", os.path.join(os.path.dirname(__file__), "line_sink.js"),
             port_file], out, name="line-sink")
wait_for(lambda: os.path.exists(port_file), 10, what="sink")
port = int(open(port_file).read())
url = "http://127.0.0.1:%d" % port

# The sink's own capacity: wrk POSTing a 500-id multicast body.
body = '{"to":[%s],"messages":[{"type":"text","text":"x"}]}' % ",".join(
    '"U%032x"' % i for i in range(500))
lua = os.path.join(out, "post.lua")
with open(lua, "w") as f:
    f.write('wrk.method = "POST"\nwrk.body = \'%s\'\n'
            'wrk.headers["Content-Type"] = "application/json"\n' % body)
cp = subprocess.run(["wrk", "-t1", "-c8", "-d5s", "-s", lua,
                     url + "/v2/bot/message/multicast"],
                    capture_output=True, text=True)
m = re.search(r"Requests/sec:\s+([\d.]+)", cp.stdout)
sink_rps = float(m.group(1)) if m else 0.0



def run(rate, ahead=None):
    """One broadcast of N LINE recipients at [line] rate; returns
    (recipients/s from submit to the last request, seconds, peak RSS MB)."""
    conf = {"routes": {"line": "line"},
            "line": {"api_base": url, "token": TOKEN, "rate": str(rate),
                     "connections": "8"},
            "dispatcher": {"max_recipients": str(max(N, 100000))},
            "redis": {"timeout_ms": "60s"},
            "http": {"listen": ""}}
    if os.environ.get("KAIRAN_BENCH_PAGE"):  # else kairand's default
        conf["dispatcher"]["expand_page"] = os.environ["KAIRAN_BENCH_PAGE"]
    if ahead:
        conf["queue"] = {"expand_ahead_ms": ahead}
    os.makedirs(os.path.join(out, "r%d" % rate), exist_ok=True)
    with Redis(os.path.join(out, "r%d" % rate)) as r:
        k = Kairan(os.path.join(out, "r%d" % rate), r, email="outbox",
                   conf=conf)
        d = k.start()
        wait_for(lambda: '"msg":"ready"' in d.stderr_text(), 15, what="kairand ready")
        rc = [{"id": "r%06d" % i, "line": "U%032x" % i} for i in range(N)]
        audience = None
        if DIRECTORY:
            # The recipients in the directory (kairanctl recipients
            # import), the broadcast to their group: the expander reads
            # each one's record.
            csvp = os.path.join(out, "r%d" % rate, "roster.csv")
            with open(csvp, "w") as f:
                f.write("id,name,groups,line\r\n")
                for x in rc:
                    f.write("%s,x,bench,%s\r\n" % (x["id"], x["line"]))
            cp = subprocess.run([os.path.join(BUILD, "kairanctl"), "-c",
                                 k.conf, "recipients", "import", "--tenant",
                                 "bench", csvp], capture_output=True,
                                text=True, timeout=900)
            assert cp.returncode == 0, cp.stderr[-2000:]
            rc, audience = None, {"groups": ["bench"]}
        perf = None
        if os.environ.get("KAIRAN_BENCH_PERF"):
            cg = os.environ.get("KAIRAN_BENCH_PERF_CG", "fp")
            perf = subprocess.Popen(["perf", "record", "--call-graph", cg,
                                     "-o",
                                     os.environ["KAIRAN_BENCH_PERF"] + str(rate),
                                     "-p", str(d.pid)],
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        stats0 = commandstats(r)
        cpu0, rcpu0 = cpu_s(d.pid), cpu_s(r.proc.pid)
        flt0, rflt0 = minflt(d.pid), minflt(r.proc.pid)
        bc = {"tenant": "bench", "priority": "urgent",
              "subject": "ベンチ", "body": "本文", "channels": ["line"]}
        if audience:
            bc["audience"] = audience
        else:
            bc["recipients"] = rc
        bid = k.submit(bc)
        h = k.wait_done(bid, 600)
        cpu, rcpu = cpu_s(d.pid) - cpu0, cpu_s(r.proc.pid) - rcpu0
        run.faults = (minflt(d.pid) - flt0, minflt(r.proc.pid) - rflt0)
        stats = commandstats(r)
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        secs = (int(h["last_ms"]) - int(h["created_ms"])) / 1000.0
        first = (int(h["first_ms"]) - int(h["created_ms"])) / 1000.0
        rss = peak_rss_mb(d.pid)
        d.stop()
    calls = {c: n[0] - stats0.get(c, (0, 0))[0] for c, n in stats.items()
             if n[0] - stats0.get(c, (0, 0))[0] > 0}
    usec = {c: n[1] - stats0.get(c, (0, 0))[1] for c, n in stats.items()
            if n[0] - stats0.get(c, (0, 0))[0] > 0}
    return N / secs, secs, rss, cpu, rcpu, calls, usec, first


reqs = (N + 499) // 500
print("line_bench: %d LINE recipients%s, multicast of <= 500 ids (load %s)"
      % (N, " from the directory" if DIRECTORY else "",
         open("/proc/loadavg").read().split()[0]))
best = 0.0
RATES = ((200, "LINE's own limit, one channel"),
         (100000, "raised, as several channels allow"))
if os.environ.get("KAIRAN_BENCH_LINE_RATES"):
    # e.g. KAIRAN_BENCH_LINE_RATES=100000: only those runs
    RATES = tuple(r for r in RATES if str(r[0]) in
                  os.environ["KAIRAN_BENCH_LINE_RATES"].split(","))
for rate, what in RATES:
    rps, secs, rss, cpu, rcpu, calls, usec, first = run(rate,
                                           os.environ.get("KAIRAN_BENCH_AHEAD"))
    best = max(best, rps)
    print("  kairand, [line] rate %d (%s): %.0f recipients/s (%d requests "
          "in %.2f s from submit, the first delivered at %.2f s, %.0f/s "
          "after it), peak RSS %.1f MB"
          % (rate, what, rps, reqs, secs, first,
             N / (secs - first) if secs > first else 0, rss))
    print("    CPU per recipient: kairand %.2f us, redis-server %.2f us; "
          "Redis commands per recipient %.4f (per request %.1f: %s)"
          % (cpu / N * 1e6, rcpu / N * 1e6, sum(calls.values()) / N,
             sum(calls.values()) / reqs,
             ", ".join("%s %d" % kv for kv in sorted(calls.items(),
                                                     key=lambda kv: -kv[1]))))
    # Which process limits: the share of the run each kept a core busy
    # (from submit to the last request; a process near 100 % is the limit).
    print("    busy: kairand %.0f %%, redis-server %.0f %% of one core"
          % (cpu / secs * 100, rcpu / secs * 100))
    # A first touch of memory costs the kernel a page fault (about 5 us
    # each in this VM): Redis' new memory for the audience and records.
    print("    minor page faults per 1,000 recipients: kairand %.1f, "
          "redis-server %.1f" % (run.faults[0] * 1000.0 / N,
                                 run.faults[1] * 1000.0 / N))
    print("    Redis time per recipient by command (us): %s"
          % ", ".join("%s %.2f" % (c, u / N) for c, u in
                      sorted(usec.items(), key=lambda kv: -kv[1])[:6]))
sink.stop()
print("  sink capacity (wrk, 8 connections, 500-id bodies): %.0f requests/s "
      "= %.0f recipients/s" % (sink_rps, sink_rps * 500))
print("  bottleneck: %s" % ("kairan (kairand and redis-server: see busy)"
                             if best < sink_rps * 500 * 0.8 else "the sink"))
