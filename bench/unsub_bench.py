"""What the guardians' choices cost an e-mail broadcast (issue 16): a
directory of N children (one guardian, one e-mail address each; every
tenth guardian has a "pf" with an opt-out of another category), one
broadcast of the tenant's category 行事 to all of them through the outbox
adapter with http.public_url https:// (so every mail gets its
List-Unsubscribe token), and kairand's CPU per delivery and the wall time
from submit to the last delivery.  Run it with BUILD=<an older build> for
the figure before.  Figures only; nothing is asserted.

  KAIRAN_BENCH_UNSUB_N=10000 BUILD=build python3 bench/unsub_bench.py
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
from harness import BUILD, Redis, Kairan, tmpdir, wait_for  # noqa

N = int(os.environ.get("KAIRAN_BENCH_UNSUB_N", "10000"))
out = tmpdir("unsub-bench")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


print("unsub_bench: %d e-mail recipients from the directory, %s (load %s)"
      % (N, BUILD, open("/proc/loadavg").read().split()[0]))
with Redis(out) as r:
    k = Kairan(out, r, email="outbox", conf={
        "dispatcher": {"max_recipients": str(max(N, 100000))},
        "http": {"listen": "", "public_url": "https://kairan.example.jp"}})
    k.ctl("category", "add", "--tenant", "bench", "行事")
    k.ctl("category", "add", "--tenant", "bench", "部活")
    path = os.path.join(out, "all.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("ID,氏名,グループ,メール\r\n")
        for i in range(N):
            f.write("c%06d,子%d,all,g%06d@example.jp\r\n" % (i, i, i))
    cp = k.ctl("recipients", "import", "--tenant", "bench", path, timeout=600)
    assert cp.returncode == 0, cp.stderr
    # every tenth guardian opted out of another category: the expander
    # reads its "pf" and still sends
    for i in range(0, N, 10):
        key = "kairan:rcpt:bench:c%06d" % i
        c = json.loads(r.call("HGET", key, "c"))
        c["pf"] = {"ox": ["部活"], "at": 1}
        r.call("HSET", key, "c", json.dumps(c, ensure_ascii=False))
    p = k.start()
    wait_for(lambda: '"msg":"ready"' in p.stderr_text(), 15, what="kairand ready")
    k0 = cpu_s(p.pid)
    bid = k.submit({"tenant": "bench", "category": "行事", "subject": "件名",
                    "body": "本文", "channels": ["email"],
                    "audience": {"groups": ["all"]}})
    h = k.wait_done(bid, 900)
    k1 = cpu_s(p.pid)
    secs = (int(h["last_ms"]) - int(h["created_ms"])) / 1000.0
    p.stop()
print("  %d delivered in %.2f s (%.0f/s); kairand %.1f us CPU per delivery"
      % (int(h.get("n:email:delivered", 0)), secs, N / secs,
         (k1 - k0) / N * 1e6))
