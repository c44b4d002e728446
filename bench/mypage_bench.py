"""The my-page link's cost (issue 16): a directory group of N recipients
(default 10,000) by e-mail into smtp-sink, kairand's CPU per message and
the throughput, R runs.  Run it once with BUILD set to a build without the
link and once with it (README, "Benchmark"): every e-mail of a directory
child costs one more HMAC (kn_gtoken_make) and ~150 bytes of body.
Environment: KAIRAN_BENCH_N (10000), KAIRAN_BENCH_RUNS (3).  Figures
printed, never asserted.
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
from harness import BUILD, Redis, tmpdir  # noqa: E402

N = int(os.environ.get("KAIRAN_BENCH_N", "10000"))
RUNS = int(os.environ.get("KAIRAN_BENCH_RUNS", "3"))


def main():
    out = tmpdir("mypage-bench")
    res = []
    with Redis(out) as r:
        for i in range(RUNS):
            sink, port = run.start_sink(out, "sink-%d" % i)
            res.append(run.run_kairand(out, r, N, "mp%d" % i, sink_port=port,
                                       group=True))
            sink.stop()
    cpu = [x["cpu_us_per_msg"] for x in res]
    rate = [x["msg_per_s"] for x in res]
    print("BUILD=%s: directory group of %d by e-mail, %d runs: CPU %s us/msg "
          "(median %.1f), %s msg/s (median %.0f)"
          % (BUILD, N, RUNS, " ".join("%.1f" % c for c in cpu),
             statistics.median(cpu), " ".join("%.0f" % x for x in rate),
             statistics.median(rate)))


if __name__ == "__main__":
    main()
