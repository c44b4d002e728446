#!/usr/bin/python3
"""test_multicast_record.py - a LINE multicast that LINE accepted is recorded
once (docs/multicast-record.md): one field "@<group>" instead of a record
per member, and every reader still sees each child as before.  Real
redis-server, the fake LINE API over HTTP, children from the directory.

  Two broadcasts to N children in one group, one LINE id each, except a
  pair of siblings sharing one (one message) and a blocked id (dead:line,
  no job); in the first one multicast is answered 500 after LINE stored it
  (retried with the same retry key: 409, delivered), in the second one is
  refused with 400 (failed, DLQ).
  [1] counts exact, every accepted id got one message.
  [2] the hash: a group delivered at the first try is one "@" field
      ("d|<ms>|<members>|<detail>") and its members stay "q|<rcpt>|<group>";
      the retried and the failed groups are marked "-" and their members
      have records of their own.
  [3] GET /v1/broadcasts/{id}/recipients (pages) and its CSV: every
      child's state as its multicast's fate says (delivered, failed,
      reached via the sibling, the blocked one not reached).
  [4] kairanctl report --format json: the same children reached.
  [5] kairanctl dlq retry --all, the fault gone: the failed group is sent
      again (its job names the group, whose record is marked: recorded
      member by member), counted once; nobody got a second message.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_multicast_record.py
"""

import collections
import csv
import io
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

T0 = time.monotonic()
tap = TAP()
out = tmpdir("mcrec")
TENANT = "mcrec-hs"
TOKEN = "mcrec-line-token"
N = 1600   # four multicasts (pages of 500): small enough for any scale
P = "kairan:"


def cid(i):
    return "c-%04d" % i


def luid(i):
    return "U%032x" % (0x7000 + i)


# children 0 and 1 are siblings: one guardian, one LINE id
uid_of = {cid(i): luid(0 if i == 1 else i) for i in range(N)}
BLOCKED = cid(2)
SLOW = cid(300)      # its multicast: 500 after LINE stored it, then 409
REFUSED = cid(700)   # its multicast: 400, failed

line = FakeLine(out, "line", ["--token", TOKEN])
r = Redis(out)
port = free_port()
k = Kairan(out, r, email="outbox", conf={
    "routes": {"line": "line"},
    "line": {"api_base": line.url, "token": TOKEN, "timeout_ms": "2s"},
    "queue": {"retry_base_ms": "100", "retry_cap_ms": "300",
              "max_attempts": "6"},
    "http": {"listen": "127.0.0.1:%d" % port},
})
rows = ["id,name,groups,line"]
for i in range(N):
    rows.append("%s,生徒%d,2-B,%s" % (cid(i), i, uid_of[cid(i)]))
path = os.path.join(out, "roster.csv")
with open(path, "w", encoding="utf-8") as f:
    f.write("\r\n".join(rows) + "\r\n")
cp = k.ctl("recipients", "import", "--tenant", TENANT, path)
assert cp.returncode == 0, cp.stderr
d = k.start()


def api(path, tok):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 headers={"Authorization": "Bearer " + tok})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# dead:line holds blind indexes: kairan's own, from a first broadcast to
# the blocked child alone (its record's field), then marked dead
bid0 = k.submit({"tenant": TENANT, "subject": "前", "body": "本文",
                 "channels": ["line"], "audience": {"recipients": [BLOCKED]}})
k.wait_done(bid0, 60)
f0 = list(bc_states(r, bid0))
assert len(f0) == 1 and f0[0].startswith("line:"), f0
r.call("SADD", P + "dead:line", f0[0][len("line:"):])
tok = k.ctl("token", "create", "--role", "limited_admin", "--tenant", TENANT,
            "--name", "担任").stdout.strip()
distinct = set(uid_of.values()) - {uid_of[BLOCKED]}


def send(rule):
    """One broadcast to the group with one fault rule; returns (bid, its
    bc hash, user id -> statuses of the requests that carried it, in
    order, the accepted ids and how often)."""
    line.set_control({"rules": [rule]})
    n0 = len(line.events("request"))
    a0 = collections.Counter(u for q in line.requests() for u in q["to"])
    bid = k.submit({"tenant": TENANT, "subject": "一斉", "body": "本文です",
                    "channels": ["line"], "audience": {"groups": ["2-B"]}})
    h = k.wait_done(bid, 120)
    fate = collections.defaultdict(list)
    evs = line.events("request")[n0:]
    for e in evs:
        for u in e.get("to") or []:
            fate[u].append(str(e["status"]))
    got = collections.Counter(u for q in line.requests() for u in q["to"]) - a0
    return bid, h, fate, evs, got


def hash_of(bid):
    raw = r.call("HGETALL", P + "bc:%s:r" % bid)
    return {raw[i].decode(): raw[i + 1].decode() for i in range(0, len(raw), 2)}


def check(tag, bid, h, fate, evs, got, odd):
    """odd: the statuses of the one multicast the rule hit."""
    hit = [e for e in evs if str(e["status"]) != "200"]
    hit_ids = set(hit[0]["to"])
    failed = hit_ids if odd == ["400"] else set()
    with tap.check("[1%s] counts exact; every accepted id once; the hit "
                   "multicast %s" % (tag, odd)):
        assert sorted(fate) == sorted(distinct), len(set(fate) ^ distinct)
        assert all(v in (["200"], odd) for v in fate.values()), collections.Counter(
            tuple(v) for v in fate.values())
        assert len({tuple(e["to"]) for e in hit}) == 1, len(hit)
        assert set(got) == distinct - failed, len(set(got) ^ (distinct - failed))
        assert all(v == 1 for v in got.values()), "a second message"
        assert h["status"] == "done", h
        assert int(h["n:line:delivered"]) == len(distinct - failed), h
        assert int(h.get("n:line:failed", 0)) == len(failed), h
        assert int(h["n:line:dead"]) == 1, h
        assert int(h["final"]) == int(h["jobs"]) == len(distinct), h

    with tap.check("[2%s] one '@' field per multicast delivered at once; the "
                   "hit one marked, its members recorded" % tag):
        raw = hash_of(bid)
        groups = {f: v for f, v in raw.items() if f.startswith("@")}
        fast = [e for e in evs if str(e["status"]) == "200" and
                not set(e["to"]) & hit_ids]
        done = [v for v in groups.values() if v.startswith("d|")]
        assert len(fast) >= 2 and len(done) == len(fast), (len(fast), groups)
        assert len(groups) == len(fast) + 1, groups
        assert [v for v in groups.values() if not v.startswith("d|")] == ["-"]
        assert sorted(int(v.split("|")[2]) for v in done) == sorted(
            len(e["to"]) for e in fast), done
        members = [v for f, v in raw.items() if not f.startswith("@")]
        queued = [v for v in members if v.startswith("q|")]
        assert len(queued) == sum(len(e["to"]) for e in fast), len(queued)
        assert {v.split("|")[2] for v in queued} == {g[1:] for g, v in
                                                    groups.items() if v != "-"}
        codes = collections.Counter(v[0] for v in members
                                    if not v.startswith("q|"))
        want = {"d" if odd != ["400"] else "f": len(hit_ids), "x": 1}
        assert codes == want, codes
        st = bc_states(r, bid)
        assert collections.Counter(v[0] for v in st.values()) == (
            {"d": len(distinct - failed), "f": len(failed), "x": 1}
            if failed else {"d": len(distinct), "x": 1}), st

    def want_state(c):
        u = uid_of[c]
        if c == BLOCKED:
            return "expired"
        return "failed" if u in failed else "delivered"

    with tap.check("[3%s] the recipients view and its CSV: every child as its "
                   "multicast's fate says" % tag):
        rows, cursor = [], None
        while True:
            q = "?limit=500" + ("&cursor=" + urllib.parse.quote(cursor)
                                if cursor else "")
            st, body = api("/v1/broadcasts/%s/recipients%s" % (bid, q), tok)
            assert st == 200, (st, body[:300])
            j = json.loads(body)
            rows += j["recipients"]
            cursor = j["next_cursor"]
            if cursor is None:
                break
        by = {x["recipient"]: x for x in rows}
        assert sorted(by) == sorted(uid_of), len(by)
        # the siblings: one has the job, the other is reached through it
        sib = sorted(x["state"] for x in (by[cid(0)], by[cid(1)]))
        shared = want_state(cid(0))
        assert sib == (["delivered", "reached_via_sibling"]
                       if shared == "delivered" else ["failed", "not_reached"]
                       ), sib
        wrong = [(c, x["state"], want_state(c)) for c, x in by.items()
                 if c not in (cid(0), cid(1)) and x["state"] != want_state(c)]
        assert not wrong, (len(wrong), wrong[:3])
        assert all(x["reached_at"] for c, x in by.items()
                   if x["state"] == "delivered"), "delivered without a time"
        st, body = api("/v1/broadcasts/%s/recipients.csv" % bid, tok)
        assert st == 200, st
        rd = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
        col = rd[0].index("state")
        states = collections.Counter(x[col] for x in rd[1:])
        assert states == collections.Counter(x["state"] for x in rows), states

    with tap.check("[4%s] kairanctl report: the same children reached" % tag):
        cp = k.ctl("report", bid, "--format", "json")
        assert cp.returncode == 0, cp.stderr
        ch = json.loads(cp.stdout)["children"]
        reached = sum(1 for c in uid_of if c != BLOCKED and
                      uid_of[c] not in failed)
        assert ch["reached"] + ch["reached_via_sibling"] == reached, ch
        assert ch["reached_via_sibling"] == (0 if uid_of[cid(0)] in failed
                                             else 1), ch
        assert ch["not_reached"] == len(uid_of) - reached, ch
    return failed


bid1, h1, fate1, evs1, got1 = send(
    {"action": "500-accepted", "match": uid_of[SLOW], "times": 1})
check("a", bid1, h1, fate1, evs1, got1, ["500", "409"])
bid2, h2, fate2, evs2, got2 = send({"action": "400", "match": uid_of[REFUSED]})
failed = check("b", bid2, h2, fate2, evs2, got2, ["400"])

with tap.check("[5] dlq retry: the failed multicast sent again, counted "
               "once, nobody twice"):
    line.set_control({})
    a0 = collections.Counter(u for q in line.requests() for u in q["to"])
    d.stop()   # so that the job dlq retry queues can be read
    cp = k.ctl("dlq", "retry", "--all")
    assert cp.returncode == 0, cp.stderr
    # queued again as a first attempt recorded member by member: its
    # members are "q|<rcpt>" now, naming no group (no "gr")
    ents = r.call("XRANGE", P + "q:line:normal", "-", "+")
    jobs = [json.loads(dict(zip(e[1][::2], e[1][1::2]))[b"j"]) for e in ents]
    jobs = [j for j in jobs if j["b"] == bid2]
    assert len(jobs) == 1 and "gr" not in jobs[0] and jobs[0]["n"] == 0, [
        sorted(j) for j in jobs]
    # every failed child's address once (of the siblings, either one)
    rs = set(jobs[0]["r"])
    assert len(rs) == len(failed) and all(uid_of[c] in failed for c in rs), (
        len(rs), len(failed))
    d = k.start()
    h = wait_for(lambda: (lambda x: x if x.get("status") == "done" and
                          int(x.get("n:line:failed", "0")) == 0 else None)(
        k.bc(bid2)), 60, what="the retried multicast delivered")
    got = collections.Counter(u for q in line.requests() for u in q["to"]) - a0
    assert set(got) == failed and all(v == 1 for v in got.values()), len(got)
    assert int(h["n:line:delivered"]) == len(distinct), h
    assert int(h["final"]) == int(h["jobs"]) == len(distinct), h
    st = bc_states(r, bid2)
    assert collections.Counter(v[0] for v in st.values()) == {
        "d": len(distinct), "x": 1}, collections.Counter(
            v[0] for v in st.values())

d.stop()
line.stop()
r.stop()
tap.diag("runtime %.1fs" % (time.monotonic() - T0))
tap.done()
