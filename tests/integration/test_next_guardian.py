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
import time
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


def signed(key_file, plain):
    """A token over any text, signed as kn_ack_token signs."""
    import base64
    import hashlib
    import hmac
    mac = hmac.new(index_key(key_file), b"ack\0" + plain.encode(),
                   hashlib.sha256).hexdigest()[:32]
    return (base64.urlsafe_b64encode(plain.encode()).decode().rstrip("=") +
            "." + mac)


def api(port, method, path, tok, body=None):
    hdr = {"Authorization": "Bearer " + tok}
    if body is not None:
        hdr["Content-Type"] = "application/json"
        body = json.dumps(body, ensure_ascii=False).encode()
    return http(port, method, path, body, hdr)


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
        assert st == 200 and "確認しました" in page, st
        assert redis.call("HGET", P + "bc:%s:ack" % bid, "n-1") is None
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

    FORM = {"Content-Type": "application/x-www-form-urlencoded"}
    with tap.check("[5] n-2's second guardian confirms: the report says 保護者2, when, and whom it went to"):
        t0 = time.time()
        st, page = http(port, "POST", link_of(smtp, "f2@example.jp"), b"c=", FORM)
        assert st == 200 and "確認しました。" in page, (st, page[:300])
        v = json.loads(redis.call("HGET", P + "bc:%s:ack" % bid, "n-2"))
        assert v["g"] == 1 and abs(v["t"] / 1000 - t0) < 5, v
        cp = k.ctl("report", bid, "--format", "json")
        assert cp.returncode == 0, cp.stderr
        rep = json.loads(cp.stdout)
        conf = {c["id"]: c for c in rep["confirmations"]}
        assert sorted(conf) == ["n-1", "n-2"], conf
        assert conf["n-1"]["confirmed_by"] == "高橋 母", conf["n-1"]
        assert conf["n-2"]["confirmed_by"] == "保護者2", conf["n-2"]
        assert conf["n-2"]["name"] == "田中 二郎", conf["n-2"]
        at = conf["n-2"]["confirmed_at"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+09:00", at), at
        assert [x["guardian"] for x in conf["n-2"]["sent_to"]] == ["保護者1", "保護者2"], conf["n-2"]
        assert [x["guardian"] for x in conf["n-1"]["sent_to"]] == ["高橋 母"], conf["n-1"]
        un = {u["id"]: u for u in rep["unconfirmed"]}
        assert [x["guardian"] for x in un["n-4"]["sent_to"]] == ["鈴木 父"], un["n-4"]
        assert [x["guardian"] for x in un["n-3"]["sent_to"]] == ["佐藤 母"], un["n-3"]
        text = k.ctl("report", bid).stdout
        assert re.search(r"n-2 +田中 二郎 +by 保護者2 at " + re.escape(at), text), text
        assert "sent to 保護者1 (" in text and ", 保護者2 (" in text, text
        html = k.ctl("report", bid, "--format", "html").stdout
        assert '<td class="by">保護者2</td>' in html, html[-1500:]
        for out_text in (cp.stdout, text, html):
            for a in ADDRS:
                assert a not in out_text, a

    with tap.check("[5] GET /v1/broadcasts/{id}/recipients and its CSV: confirmed_by, sent_to"):
        cp = k.ctl("token", "create", "--role", "limited_admin", "--tenant", T,
                   "--name", "担任")
        assert cp.returncode == 0, cp.stderr
        tok = cp.stdout.strip()
        st, body = api(port, "GET", "/v1/broadcasts/%s/recipients" % bid, tok)
        assert st == 200, (st, body[:300])
        rows = json.loads(body)["recipients"]
        n2 = [r for r in rows if r["recipient"] == "n-2"]
        assert n2 and all(r["confirmed_by"] == "保護者2" for r in n2), n2
        assert n2[0]["sent_to"].startswith("保護者1 (") and ", 保護者2 (" in n2[0]["sent_to"], n2
        n1 = [r for r in rows if r["recipient"] == "n-1"]
        assert n1[0]["confirmed_by"] == "高橋 母", n1
        n3 = [r for r in rows if r["recipient"] == "n-3"]
        assert n3[0]["confirmed_by"] is None, n3
        st, body = api(port, "GET", "/v1/broadcasts/%s/recipients.csv" % bid, tok)
        assert st == 200, st
        lines = body.lstrip("\ufeff").split("\r\n")
        assert lines[0].endswith(",confirmed_by,sent_to"), lines[0]
        n2 = [l for l in lines if l.startswith("n-2,")]
        assert n2 and ",保護者2," in n2[0] and "保護者1 (" in n2[0], n2
        for a in ADDRS:
            assert a not in body, a

    with tap.check("[6] a link without a guardian (made before) still confirms; a bad guardian part is refused"):
        bad = signed(k.key_file, "%s|n-3|x" % bid)
        st, _ = http(port, "POST", "/a/" + bad, b"c=", FORM)
        assert st == 404, st
        st, _ = http(port, "POST", "/a/" + ack_token(k.key_file, bid, "n-3"),
                     b"c=", FORM)
        assert st == 200, st
        v = json.loads(redis.call("HGET", P + "bc:%s:ack" % bid, "n-3"))
        assert "g" not in v, v
        rep = json.loads(k.ctl("report", bid, "--format", "json").stdout)
        conf = {c["id"]: c for c in rep["confirmations"]}
        assert conf["n-3"]["confirmed_by"] is None, conf["n-3"]

    with tap.check("[7] a bad escalate_to: 400 naming the field; kairanctl refuses it too"):
        base = {"tenant": T, "subject": "安否確認", "body": "確認を",
                "channels": ["email"], "ack": True, "escalate_after": "10m",
                "audience": {"groups": ["3年B組"]}}
        cp = k.ctl("token", "create", "--role", "admin", "--tenant", T,
                   "--name", "教頭")
        assert cp.returncode == 0, cp.stderr
        adm = cp.stdout.strip()
        for extra, what in (({"escalate_to": "next_parent"}, "next_channel"),
                            ({"escalate_to": 2}, "escalate_to"),
                            ({"escalate_to": "next_guardian", "ack": False},
                             "ack"),
                            ({"escalate_to": "next_guardian",
                              "escalate_after": None}, "escalate_after")):
            b = dict(base, **extra)
            b = {x: y for x, y in b.items() if y is not None}
            st, body = api(port, "POST", "/v1/broadcasts", adm, b)
            assert st == 400, (extra, st, body)
            j = json.loads(body)
            assert j["field"] == "escalate_to" and what in j["error"], (extra, j)
            cp = k.ctl("submit", "-", input=json.dumps(b, ensure_ascii=False))
            assert cp.returncode != 0 and "escalate_to" in cp.stderr, (extra, cp.stderr)
        st, body = api(port, "POST", "/v1/broadcasts", adm,
                       dict(base, escalate_to="next_channel"))
        assert st in (200, 201, 202), (st, body)

    d.stop()
tap.done()
