#!/usr/bin/python3
"""test_audit.py - one operation log for every writer (issue 12, model/audit):
every line has time, actor and op, whoever wrote it (kairanctl's submit,
cancel, token and directory commands, and the HTTP API); and one policy: a
change that cannot be logged is not made (kairanctl exits 1, the API
answers 503) and nothing reaches Redis.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_audit.py
"""

import http.client
import json
import os
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("audit")
AUDIT = os.path.join(out, "audit")


def bcast(key):
    return {"id": key, "tenant": "sakura", "category": "notice",
            "subject": "s", "body": "b", "channels": ["email"],
            "send_at": "2099-01-01T09:00:00+09:00",
            "expires_at": "2099-01-02T09:00:00+09:00",
            "recipients": [{"id": "r-1", "email": "a@example.jp"}]}


def post(port, path, token, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    h = {"Authorization": "Bearer " + token}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c.request("POST", path, body=data, headers=h)
    r = c.getresponse()
    got = r.status, r.read().decode()
    c.close()
    return got


def lines():
    with open(os.path.join(AUDIT, "operations.jsonl")) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port},
                     "retention": {"audit_dir": AUDIT}})
    cp = k.ctl("token", "create", "--role", "admin", "--name", "hq")
    assert cp.returncode == 0, cp.stderr
    admin = cp.stdout.strip()
    d = k.start()
    d.wait_output('"listening"', 15)

    with tap.check("every writer's line has time, actor and op"):
        name = k.submit(bcast("a-1"))
        assert k.ctl("cancel", name).returncode == 0
        st, body = post(port, "/v1/broadcasts", admin, bcast("a-2"))
        assert st == 202, (st, body)
        api_name = json.loads(body)["id"]
        st, body = post(port, "/v1/broadcasts/%s/cancel" % api_name, admin)
        assert st == 200, (st, body)
        with open(os.path.join(out, "d.csv"), "w") as f:
            f.write("id,email\nr-1,a@example.jp\n")
        assert k.ctl("recipients", "import", "--tenant", "sakura",
                     os.path.join(out, "d.csv")).returncode == 0
        assert k.ctl("recipients", "deactivate", "--tenant", "sakura",
                     "r-1").returncode == 0
        ops = lines()
        want = {"token.create", "broadcast.submit", "broadcast.cancel",
                "recipients.import", "recipients.deactivate"}
        assert want <= {o["op"] for o in ops}, [o["op"] for o in ops]
        for o in ops:
            assert o.get("time") and o.get("actor") and o.get("op"), o
        by_api = [o for o in ops if o.get("via") == "http"]
        assert by_api and all(o["actor"] == "token:" + admin.split("_")[1]
                              for o in by_api), by_api
        assert all(o["actor"].startswith("kairanctl")
                   for o in ops if o.get("via") != "http"), ops

    with tap.check("the log cannot be written: nothing is changed "
                   "(kairanctl exit 1, API 503)"):
        before = redis.call("ZCARD", "kairan:bcs")
        os.chmod(AUDIT, stat.S_IRUSR | stat.S_IXUSR)
        logf = os.path.join(AUDIT, "operations.jsonl")
        os.chmod(logf, stat.S_IRUSR)
        try:
            if os.geteuid() == 0:
                # root writes whatever the mode: make the log a directory.
                os.chmod(AUDIT, 0o750)
                os.rename(logf, logf + ".saved")
                os.mkdir(logf)
            cp = k.ctl("submit", "-", input=json.dumps(bcast("a-3")))
            assert cp.returncode == 1 and "operation log" in cp.stderr, \
                (cp.returncode, cp.stderr)
            st, body = post(port, "/v1/broadcasts", admin, bcast("a-4"))
            assert st == 503 and "operation log" in body, (st, body)
            cp = k.ctl("token", "create", "--role", "operator", "--name", "x")
            assert cp.returncode == 1 and cp.stdout == "", (cp.returncode, cp.stdout)
            assert redis.call("ZCARD", "kairan:bcs") == before
            assert redis.call("HGET", "kairan:idem:sakura", "a-3") is None
            assert redis.call("HGET", "kairan:idem:sakura", "a-4") is None
        finally:
            if os.path.isdir(logf):
                os.rmdir(logf)
                os.rename(logf + ".saved", logf)
            os.chmod(AUDIT, 0o750)
            os.chmod(logf, 0o640)

    with tap.check("writable again: the next submit is made and logged"):
        st, body = post(port, "/v1/broadcasts", admin, bcast("a-5"))
        assert st == 202, (st, body)
        assert lines()[-1]["op"] == "broadcast.submit"

tap.done()
