"""ack_bench.py - what one personal link /a/<token> costs Redis at
KAIRAN_BENCH_ACK_N (default 30,000) recipients: prints figures, asserts
nothing (issue 11, item 5).

One ack broadcast to N inline recipients (outbox adapter), then R GETs of a
member's link and R of a signed non-member's link through kairand's HTTP
port.  The cost is Redis's own: INFO commandstats usec per EVALSHA call
(the ack_view script), reset before each series.  For comparison, the
check as it was before (a Lua scan of HVALS bc:<id>:r) is run R times
with EVAL on the same broadcast.

Run:  BUILD=build /usr/bin/python3 bench/ack_bench.py
"""
import os
import re
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "tests", "integration"))
from harness import (Kairan, Redis, ack_token, free_port, tmpdir,  # noqa
                     wait_for)

N = int(os.environ.get("KAIRAN_BENCH_ACK_N", "30000"))
R = int(os.environ.get("KAIRAN_BENCH_ACK_R", "200"))

OLD_SCAN = """
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  if string.match(v, '^%a|([^|]*)') == ARGV[1] then return 1 end
end
return 0
"""


def get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def script_usec(redis, cmd):
    text = redis.call("INFO", "commandstats").decode()
    m = re.search(r"cmdstat_%s:calls=(\d+),usec=(\d+)" % cmd, text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def main():
    out = tmpdir("ackbench")
    with Redis(out) as redis:
        port = free_port()
        k = Kairan(out, redis, email="outbox",
                   conf={"http": {"listen": "127.0.0.1:%d" % port,
                                  "rate": "100000",
                                  "public_url": "http://127.0.0.1:%d" % port},
                         "dispatcher": {"log_level": "warn"}})
        d = k.start()
        wait_for(lambda: get(port, "/healthz") is not None, 20,
                 what="kairand up")
        bid = k.submit({
            "tenant": "bench", "category": "emergency", "ack": True,
            "subject": "安否確認", "body": "確認してください", "channels": ["email"],
            "recipients": [{"id": "r%06d" % i,
                            "email": "guardian%06d@example.jp" % i}
                           for i in range(N)]})
        k.wait_done(bid, 900)
        print("personal links at %d recipients (%d requests each; Redis "
              "time per check, INFO commandstats):" % (N, R))
        series = [("member", ack_token(k.key_file, bid, "r%06d" % (N // 2))),
                  ("non-member", ack_token(k.key_file, bid, "x-1"))]
        for name, tok in series:
            redis.call("CONFIG", "RESETSTAT")
            t0 = time.monotonic()
            codes = {get(port, "/a/" + tok) for _ in range(R)}
            wall = (time.monotonic() - t0) / R
            calls, usec = script_usec(redis, "evalsha")
            print("  %-10s  %6.1f us in Redis per check, %.2f ms per request "
                  "(HTTP %s)" % (name, usec / max(calls, 1), wall * 1000,
                                 "/".join(str(c) for c in sorted(codes))))
        redis.call("CONFIG", "RESETSTAT")
        key = k.prefix + "bc:%s:r" % bid
        for _ in range(min(R, 20)):
            redis.call("EVAL", OLD_SCAN, 1, key, "x-1")
        calls, usec = script_usec(redis, "eval")
        print("  (before: the HVALS scan of bc:<id>:r, %.1f ms per check)"
              % (usec / max(calls, 1) / 1000.0))
        mem = redis.call("MEMORY", "USAGE", k.prefix + "bc:%s:m" % bid)
        print("  member set bc:<id>:m: %.0f bytes per recipient"
              % ((mem or 0) / N))
        d.stop()


if __name__ == "__main__":
    main()
