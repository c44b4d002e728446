"""kairan benchmark (make bench): prints figures, asserts nothing.

In one run, each into its own smtp-sink (Postfix's test server, plaintext on
loopback):
  1. kairand delivering an N-recipient broadcast over 10 SMTP connections
     (submit with kairanctl, Redis on a private port);
  2. bench/curl_loop: a bare libcurl multi loop with the same message bytes
     and connections (no Redis, no MIME), the first reference; and the
     same with one thread and easy handle per connection, as kairand's
     smtp.c did before kairan's own SMTP client (libcurl blocks for the
     reply to the final "." in both);
  3. smtp-source -d -s 10: Postfix's own load generator, at the same number
     of connections: the reference of kairand's own client (target 0.7x,
     at most 60 us of kairand CPU per message).
Then the same N as a directory group (first delivery from submit), and
kairand's peak RSS for 10k and 100k recipients (it should stay flat).
Environment: KAIRAN_BENCH_N (default 50000), KAIRAN_BENCH_CONN (10).
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests",
                                "integration"))
from harness import BUILD, Redis, Kairan, Proc, free_port, tmpdir, wait_for  # noqa

N = int(os.environ.get("KAIRAN_BENCH_N", "50000"))
CONN = int(os.environ.get("KAIRAN_BENCH_CONN", "10"))
HZ = os.sysconf("SC_CLK_TCK")
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"


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


def start_sink(out, name):
    port = free_port()
    p = Proc([SINK, "-u", "nobody", "127.0.0.1:%d" % port, "1024"], out,
             name=name)
    wait_for(lambda: _connectable(port), 10, what="smtp-sink")
    return p, port


def _connectable(port):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


def broadcast(n, tag):
    return {
        "tenant": "bench", "priority": "urgent", "category": "notice",
        "subject": "【お知らせ】ベンチマーク %s" % tag,
        "body": "保護者各位\n\nこれは性能測定用の配信です。\n" * 4,
        "channels": ["email"],
        "recipients": [{"id": "r%06d" % i, "email": "guardian%06d@example.jp" % i}
                       for i in range(n)],
    }


def group_broadcast(tag):
    """The same message to a directory group (what a school sends)."""
    b = broadcast(0, tag)
    del b["recipients"]
    b["audience"] = {"groups": ["bench-all"]}
    return b


def import_group(k, n):
    """n directory recipients in group bench-all (kairanctl import)."""
    path = os.path.join(k.dir, "dir-%d.csv" % n)
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,email,groups\n")
        for i in range(n):
            f.write("r%06d,guardian%06d@example.jp,bench-all\n" % (i, i))
    cp = k.ctl("recipients", "import", "--tenant", "bench", path)
    if cp.returncode != 0:
        raise AssertionError(cp.stderr)


def run_kairand(out, r, n, tag, sink_port=None, outbox=False, group=False):
    conf = {"smtp": {"connections": str(CONN), "timeout_ms": "30000",
                     "tls": "none"},
            "dispatcher": {"log_level": "info", "expand_page": "500"},
            "queue": {"claim_idle_ms": "120000"},
            "redis": {"prefix": "bench-%s:" % tag}}
    if outbox:
        k = Kairan(out, r, email="outbox", conf=conf, name="k-" + tag)
    else:
        conf["smtp"]["url"] = "smtp://127.0.0.1:%d" % sink_port
        k = Kairan(out, r, email="smtp", conf=conf, name="k-" + tag)
    k.prefix = "bench-%s:" % tag
    d = k.start(name="kairand-" + tag)
    wait_for(lambda: '"msg":"ready"' in d.stderr_text() or d.returncode is not None, 20,
             what="kairand ready")
    time.sleep(0.2)
    if group:
        import_group(k, n)
    c0 = cpu_s(d.pid)
    t_sub = time.time()
    bid = k.submit(group_broadcast(tag) if group else broadcast(n, tag))
    t_ack = time.time()
    h = k.wait_done(bid, 600)
    c1 = cpu_s(d.pid)
    rss = peak_rss_kb(d.pid)
    created = int(h["created_ms"])
    lat = []
    cursor = 0
    key = k.prefix + "bc:" + bid + ":r"
    while True:
        cursor, items = r.call("HSCAN", key, cursor, "COUNT", 5000)
        for i in range(1, len(items), 2):
            v = items[i].decode().split("|")
            if v[0] == "d":
                lat.append(int(v[2]) - created)
        cursor = int(cursor)
        if cursor == 0:
            break
    d.stop()
    lat.sort()
    delivered = len(lat)
    first = int(h.get("first_ms", created)) - created
    last = int(h.get("last_ms", created)) - created
    return {
        "messages": delivered, "seconds": last / 1000.0,
        "msg_per_s": delivered / (last / 1000.0) if last > 0 else 0,
        "cpu_us_per_msg": (c1 - c0) * 1e6 / max(delivered, 1),
        "first_ms": first, "last_ms": last,
        # from kairanctl submit's start, and from its acknowledgement (a
        # 50k-recipient inline broadcast is sealed and stored first)
        "submit_ms": (t_ack - t_sub) * 1000.0,
        "ack_first_ms": int(h.get("first_ms", created)) - t_ack * 1000.0,
        "p50_ms": lat[len(lat) // 2] if lat else 0,
        "p99_ms": lat[int(len(lat) * 0.99)] if lat else 0,
        "peak_rss_mb": rss / 1024.0, "outbox": k.outbox, "bid": bid,
    }


def main():
    out = tmpdir("bench")
    print("kairan bench: N=%d recipients, %d SMTP connections, %d cores"
          % (N, CONN, os.cpu_count()))
    with Redis(out, extra_args=("--maxmemory-policy", "noeviction")) as r:
        # The message bytes kairand sends, captured through the outbox.
        one = run_kairand(out, r, 1, "sample", outbox=True)
        eml = [os.path.join(dp, f) for dp, _, fs in os.walk(one["outbox"])
               for f in fs if f.endswith(".eml")][0]
        size = os.path.getsize(eml)

        sink1, p1 = start_sink(out, "sink-kairand")
        k = run_kairand(out, r, N, "main", sink_port=p1)
        sink1.stop()

        sink2, p2 = start_sink(out, "sink-loop")
        t0 = time.monotonic()
        cp = subprocess.run([os.path.join(BUILD, "bench", "curl_loop"),
                             "smtp://127.0.0.1:%d/bench.example.jp" % p2,
                             str(N), str(CONN), eml],
                            capture_output=True, text=True)
        loop = json.loads(cp.stdout)
        loop["msg_per_s"] = loop["messages"] / loop["seconds"]
        loop["cpu_us_per_msg"] = loop["cpu_s"] * 1e6 / loop["messages"]
        sink2.stop()

        # The same with one thread and easy handle per connection, as
        # kairand's smtp.c: the ceiling of kairand's transport as it is.
        sink2t, p2t = start_sink(out, "sink-threads")
        cp = subprocess.run([os.path.join(BUILD, "bench", "curl_loop"),
                             "smtp://127.0.0.1:%d/bench.example.jp" % p2t,
                             str(N), str(CONN), eml, "threads"],
                            capture_output=True, text=True)
        thr = json.loads(cp.stdout)
        thr["msg_per_s"] = thr["messages"] / thr["seconds"]
        thr["cpu_us_per_msg"] = thr["cpu_s"] * 1e6 / thr["messages"]
        sink2t.stop()

        sink3, p3 = start_sink(out, "sink-source")
        t0 = time.monotonic()
        p = subprocess.Popen([SOURCE, "-d", "-s", str(CONN), "-m", str(N),
                              "-l", str(size), "-f", "bench@example.jp",
                              "-t", "guardian@example.jp",
                              "127.0.0.1:%d" % p3],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.monotonic() - t0
        src = {"messages": N, "seconds": secs, "msg_per_s": N / secs,
               "cpu_us_per_msg": (ru.ru_utime + ru.ru_stime) * 1e6 / N}
        sink3.stop()

        sinkg, pg = start_sink(out, "sink-group")
        grp = run_kairand(out, r, N, "group", sink_port=pg, group=True)
        sinkg.stop()

        rss = {}
        for n in (10000, 100000):
            s, pp = start_sink(out, "sink-rss-%d" % n)
            rss[n] = run_kairand(out, r, n, "rss%d" % n, sink_port=pp)
            s.stop()

    print()
    print("message size: %d bytes (Japanese subject and body, base64)" % size)
    fmt = "%-26s %10s %10s %14s"
    print(fmt % ("", "msg/s", "seconds", "CPU us/msg"))
    for name, v in (("kairand (Redis, MIME)", k), ("bare libcurl loop", loop),
                    ("bare libcurl, threads", thr),
                    ("smtp-source -d -s %d" % CONN, src)):
        print(fmt % (name, "%.0f" % v["msg_per_s"], "%.2f" % v["seconds"],
                     "%.1f" % v["cpu_us_per_msg"]))
    print()
    print("kairand / bare loop:   %.2f x" % (k["msg_per_s"] / loop["msg_per_s"]))
    print("kairand / threads:     %.2f x" % (k["msg_per_s"] / thr["msg_per_s"]))
    print("kairand / smtp-source: %.2f x" % (k["msg_per_s"] / src["msg_per_s"]))
    print("kairand submit -> first delivery: %d ms; -> last: %d ms"
          % (k["first_ms"], k["last_ms"]))
    print("  inline recipients: kairanctl submit took %.0f ms (sealing and storing "
          "%d addresses); acknowledged -> first delivery: %.0f ms"
          % (k["submit_ms"], N, k["ack_first_ms"]))
    print("  a directory group of %d: submit took %.0f ms; -> first delivery: "
          "%d ms from created, %.0f ms from acknowledged; %.0f msg/s"
          % (N, grp["submit_ms"], grp["first_ms"], grp["ack_first_ms"],
             grp["msg_per_s"]))
    print("kairand submit -> delivery latency: p50 %d ms, p99 %d ms"
          % (k["p50_ms"], k["p99_ms"]))
    print("kairand peak RSS: %.1f MB at %d; %.1f MB at 10k; %.1f MB at 100k"
          % (k["peak_rss_mb"], N, rss[10000]["peak_rss_mb"],
             rss[100000]["peak_rss_mb"]))
    print("(100k run: %.0f msg/s)" % rss[100000]["msg_per_s"])


if __name__ == "__main__":
    main()
