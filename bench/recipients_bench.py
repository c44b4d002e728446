"""recipients_bench.py - what GET /v1/broadcasts/{id}/recipients and its
CSV cost at KAIRAN_BENCH_RCPTS_N (default 50,000) children: prints
figures, asserts nothing.

A directory of N children imported from a class list (every fifth child a
sibling sharing the LINE id of the one before; every fiftieth with no
contact, only a phone number), one LINE broadcast to the whole group
(outbox adapter: multicast jobs of 500).  Then pages of 100 and of 500
children at the start, the middle and the end of the audience (a page's
time must not grow with its position), the CSV in UTF-8 and in CP932, the
rows per state, and kairand's peak resident memory.

Run:  BUILD=build /usr/bin/python3 bench/recipients_bench.py
"""
import os
import shutil
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
from harness import Kairan, Redis, free_port, tmpdir  # noqa: E402

N = int(os.environ.get("KAIRAN_BENCH_RCPTS_N", "50000"))
T = "big"

out = tmpdir("rcptbench")
with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, conf={"http": {
        "listen": "127.0.0.1:%d" % port, "rate": "100000",
        "public_url": "http://127.0.0.1:%d" % port}})
    path = os.path.join(out, "big.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("ID,氏名,クラス,グループ,保護者氏名,電話番号,LINE\n")
        for i in range(N):
            lid = i - 1 if i % 5 == 4 else i
            line = "" if i % 50 == 7 else "U%032x" % lid
            f.write("s-%06d,生徒 %d,A,g,保護者 %d,090-0000-%04d,%s\n"
                    % (i, i, i, i % 10000, line))
    t = time.monotonic()
    cp = k.ctl("recipients", "import", "--tenant", T, path, timeout=900)
    if cp.returncode != 0:
        sys.exit("import failed: " + cp.stderr)
    print("recipients: import of %d children %.1f s" % (N, time.monotonic() - t))
    tok = k.ctl("token", "create", "--role", "admin", "--name", "bench").stdout.strip()
    d = k.start()
    d.wait_output('"listening"', 15)
    bid = k.submit({"tenant": T, "category": "emergency", "subject": "s",
                    "body": "b", "channels": ["line"],
                    "audience": {"groups": ["g"]}})
    k.wait_done(bid, 900)

    def get(p):
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (port, p),
            headers={"Authorization": "Bearer " + tok})
        t0 = time.monotonic()
        with urllib.request.urlopen(req, timeout=900) as r:
            data = r.read()
        return time.monotonic() - t0, data

    for lim in (100, 500):
        ts = []
        for pos in (0, N // 2, max(N - lim, 0)):
            dt, data = get("/v1/broadcasts/%s/recipients?limit=%d&cursor=a%d"
                           % (bid, lim, pos))
            ts.append("%.1f" % (dt * 1000))
        print("recipients: a page of %d children at the start, middle, end: "
              "%s ms" % (lim, " / ".join(ts)))
    dt, data = get("/v1/broadcasts/%s/recipients.csv" % bid)
    states = {}
    for line in data.decode("utf-8-sig").split("\r\n")[1:]:
        if line:
            s = line.split(",")[5]
            states[s] = states.get(s, 0) + 1
    print("recipients: CSV (UTF-8) %.2f s, %.1f MB, %d rows: %s"
          % (dt, len(data) / 1e6, sum(states.values()),
             ", ".join("%s %d" % kv for kv in sorted(states.items()))))
    dt, data = get("/v1/broadcasts/%s/recipients.csv?charset=cp932" % bid)
    print("recipients: CSV (CP932) %.2f s, %.1f MB" % (dt, len(data) / 1e6))
    with open("/proc/%d/status" % d.pid) as f:
        hwm = [x.split(":")[1].strip() for x in f if x.startswith("VmHWM")]
    print("recipients: kairand peak resident memory %s" % (hwm[0] if hwm else "?"))
    d.stop()
shutil.rmtree(out, ignore_errors=True)
