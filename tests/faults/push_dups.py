#!/usr/bin/python3
"""push_dups.py - where the duplicate pushes of a kill matrix run come from.

    tests/faults/push_dups.py DIR      (DIR: a kept faults-kill-* directory;
                                        KAIRAN_KEEP_TMP=1 keeps it)

test_kill_matrix.py imports breakdown() and prints it.  For every extra
copy of a push (the fake FCM's requests.jsonl: one line per push it acted
on, with its time and HTTP/2 session), the copy before it is looked at:

  (a) in flight at a kill: the session of the earlier copy belonged to a
      kairand killed after it (the session closed within a second after a
      kill) and the fake acted on it less than IN_AIR_MS before that kill:
      its answer was still on its way, or unread, when the process died;
  (b) answered, not recorded: the same, but acted on IN_AIR_MS or more
      before the kill: kairand had time to read the answer; the result had
      not reached Redis (XACK) when it died;
  (c) taken over while the owner was alive: the earlier copy's session
      was not killed, and no retry of the job was logged between the two
      copies (another kairand took the job over, XAUTOCLAIM);
  (d) a retry whose first attempt did arrive: a "retry later" line for
      the recipient between the two copies (a timeout, a lost connection);
  (e) anything else (no session seen for the earlier copy, say).

The gaps (kill time - the earlier copy's time) of (a) and (b) are printed
as a histogram, so that the IN_AIR_MS line can be checked by eye.
"""

import bisect
import collections
import datetime
import json
import os
import re
import sys

IN_AIR_MS = 50
KILL_CLOSE_S = 1.5
CLASSES = ("a", "b", "c", "d", "e")
NAMES = {
    "a": "in flight at a kill",
    "b": "answered, not recorded at a kill",
    "c": "taken over while the owner was alive",
    "d": "retry whose first attempt arrived",
    "e": "other",
}


def _jsonl(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a line cut short by a kill
    return out


def _log_time(s):
    return datetime.datetime.fromisoformat(s).timestamp()


def _retries(kdir):
    """{rcpt: [(time, reason)]} from every kairand log in kdir."""
    out = collections.defaultdict(list)
    for name in os.listdir(kdir):
        if not name.endswith(".stderr"):
            continue
        with open(os.path.join(kdir, name), encoding="utf-8",
                  errors="replace") as f:
            for line in f:
                if '"retry later"' not in line or '"push"' not in line:
                    continue
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                out[e.get("rcpt")].append((_log_time(e["time"]),
                                           e.get("reason", "")))
    return out


def _rcpt_of(token):
    m = re.match(r"c[a-z]+(\d{6}):", token or "")
    return "r-%05d" % int(m.group(1)) if m else None


def breakdown(out_dir, fcm_store=None, kairan_dir=None):
    """Returns (counts {class: n}, gaps_ms [(class, gap)], reasons Counter)."""
    fcm_store = fcm_store or os.path.join(out_dir, "fcm-store")
    kairan_dir = kairan_dir or os.path.join(out_dir, "kairan")
    kills = []
    kp = os.path.join(out_dir, "kills.json")
    if os.path.exists(kp):
        with open(kp) as f:
            kills = sorted(k["ts"] for k in json.load(f))
    closed = {}
    for e in _jsonl(os.path.join(fcm_store, "events.jsonl")):
        if e.get("ev") == "session_close":
            closed[e["session"]] = e["ts"]
    retries = _retries(kairan_dir) if os.path.isdir(kairan_dir) else {}
    copies = collections.defaultdict(list)
    for r in _jsonl(os.path.join(fcm_store, "requests.jsonl")):
        copies[r["token"]].append((r["ts"], r.get("session")))
    counts = dict.fromkeys(CLASSES, 0)
    gaps = []
    reasons = collections.Counter()
    others = []
    for token, cs in copies.items():
        cs.sort(key=lambda c: c[0])
        for (t0, s0), (t1, _s1) in zip(cs, cs[1:]):
            cls = None
            # A transport error of the first attempt, logged before the
            # second: a retry (a takeover's "retry later" says nothing).
            rs = [why for t, why in retries.get(_rcpt_of(token), ())
                  if t0 - 0.01 <= t <= t1 + 0.01 and
                  why.startswith("fcm transport")]
            # The kill that closed the earlier copy's session, if any.
            tc = closed.get(s0)
            k = None
            if tc is not None:
                i = bisect.bisect_right(kills, tc) - 1
                if i >= 0 and tc - kills[i] <= KILL_CLOSE_S and \
                        t0 <= tc and kills[i] < t1:
                    k = kills[i]
            if rs:
                cls = "d"
                reasons.update(re.sub(r"\d+", "N", why)[:90] for why in rs)
            elif k is not None:
                gap = (k - t0) * 1000
                cls = "a" if gap < IN_AIR_MS else "b"
                gaps.append((cls, gap))
            elif s0 is not None:
                cls = "c"
                others.append((token, t0, s0, tc, t1, _s1))
            else:
                cls = "e"
            counts[cls] += 1
    breakdown.others = others
    return counts, gaps, reasons


def report(out_dir, total=None):
    """Lines that say where the duplicates came from."""
    counts, gaps, reasons = breakdown(out_dir)
    n = sum(counts.values())
    lines = ["duplicate pushes: %d%s" % (
        n, " for %d tokens (%.2f %%)" % (total, 100.0 * n / total)
        if total else "")]
    for c in CLASSES:
        lines.append("  (%s) %-40s %d" % (c, NAMES[c], counts[c]))
    edges = (5, 20, 50, 200, 1000, 5000)
    for cls in ("a", "b"):
        h = collections.Counter()
        for c, g in gaps:
            if c == cls:
                h[next((e for e in edges if g < e), "more")] += 1
        if h:
            lines.append("  (%s) acted on this long before the kill: %s" % (
                cls, ", ".join("<%s ms: %d" % (e, h[e])
                               for e in edges + ("more",) if h[e])))
    for why, k in reasons.most_common(5):
        lines.append("  (d) %d: %s" % (k, why))
    return lines


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: push_dups.py FAULTS-KILL-DIR")
    print("\n".join(report(sys.argv[1])))
