"""LINE benchmark (part of make bench): recipients/s through LINE multicast
(up to 500 user ids per request) into a fast local HTTP sink, and the
sink's own capacity measured with wrk, so it is clear which side limits.
Figures only; nothing is asserted."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
from harness import Redis, Kairan, Proc, tmpdir, wait_for  # noqa

N = int(os.environ.get("KAIRAN_BENCH_LINE_N", "100000"))
TOKEN = "bench-line-token"
out = tmpdir("line-bench")


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

with Redis(out) as r:
    k = Kairan(out, r, email="outbox", conf={
        "routes": {"line": "line"},
        "line": {"api_base": url, "token": TOKEN, "rate": "100000",
                 "connections": "8"},
        "http": {"listen": ""}})
    d = k.start()
    wait_for(lambda: "ready" in d.stderr_text(), 15, what="kairand ready")
    rc = [{"id": "r%06d" % i, "line": "U%032x" % i} for i in range(N)]
    bid = k.submit({"tenant": "bench", "priority": "urgent",
                    "subject": "ベンチ", "body": "本文", "channels": ["line"],
                    "recipients": rc})
    h = k.wait_done(bid, 600)
    secs = (int(h["last_ms"]) - int(h["created_ms"])) / 1000.0
    rss = peak_rss_mb(d.pid)
    d.stop()
sink.stop()
reqs = (N + 499) // 500
print("line_bench: %d LINE recipients, multicast of <= 500 ids" % N)
print("  kairand: %.0f recipients/s (%d requests in %.2f s from submit), "
      "peak RSS %.1f MB" % (N / secs, reqs, secs, rss))
print("  sink capacity (wrk, 8 connections, 500-id bodies): %.0f requests/s "
      "= %.0f recipients/s" % (sink_rps, sink_rps * 500))
print("  bottleneck: %s" % ("kairand" if N / secs < sink_rps * 500 * 0.8
                             else "the sink"))
