#!/usr/bin/python3
"""test_redis_acl.py - kairan logs in to Redis as a named ACL user when
redis.url names one (redis://user:password@host), not as "default".

A real redis-server whose user "kairan" has exactly the rights that
contrib/redis-kairan.conf gives kairan's user (keys kairan:*, its command
list), and a "default" user left open only for this test's own checks.

  [1] kairand and kairanctl with redis://kairan:<password>@host: a
      broadcast is submitted and delivered; every connection kairan holds
      is logged in as "kairan" (CLIENT LIST), none as "default".
  [2] the password from redis.password_file with redis://kairan:@host.
  [3] a wrong password for that user: kairanctl exits 3 and says the user
      or its password was refused, without the password in its output.
  [4] a url with a password but no user still logs in as "default" (AUTH
      with the password alone, as before).

Run:  BUILD=build /usr/bin/python3 tests/integration/test_redis_acl.py
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("redis-acl")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
PW = "acl-pw-for-tests"

with open(os.path.join(ROOT, "contrib", "redis-kairan.conf")) as f:
    rule = next(line for line in f if line.startswith("user default on "))
# kairan's rights as the fragment gives them, for a user named kairan
rights = rule.split()[4:]  # after "user default on #<hash>"
assert rights[0] == "resetkeys" and "~kairan:*" in rights, rights


def clients(redis):
    """(user, name) of every client but the one asking."""
    text = redis.call("CLIENT", "LIST").decode()
    me = redis.call("CLIENT", "ID")
    got = []
    for line in text.splitlines():
        f = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
        if int(f["id"]) != me:
            got.append((f["user"], f.get("cmd", "")))
    return got


with Redis(out) as redis:
    redis.call("ACL", "SETUSER", "kairan", "on", ">" + PW, *rights)
    url = "redis://kairan:%s@127.0.0.1:%d" % (PW, redis.port)
    k = Kairan(out, redis, email="outbox", conf={"redis": {"url": url}})

    with tap.check("[1] kairand and kairanctl as ACL user kairan: a broadcast "
                   "delivered, every connection logged in as kairan"):
        d = k.start()
        d.wait_output('"msg":"ready"', 20)
        bid = k.submit({"tenant": "t", "subject": "ACL", "body": "本文",
                        "channels": ["email"],
                        "recipients": [{"id": "r-%d" % i,
                                        "email": "g%d@example.jp" % i}
                                       for i in range(3)]})
        h = k.wait_done(bid, 60)
        assert k.counts(bid)["email"].get("delivered") == 3, h
        users = clients(redis)
        assert users and all(u == "kairan" for u, _ in users), users
        tap.diag("[1] %d connections, all as kairan" % len(users))
        d.stop()

    with tap.check("[2] the password from redis.password_file, "
                   "redis://kairan:@host"):
        pwf = os.path.join(out, "redis.pw")
        with open(pwf, "w") as f:
            f.write(PW + "\n")
        os.chmod(pwf, 0o600)
        k.sections["redis"] = {"url": "redis://kairan:@127.0.0.1:%d"
                               % redis.port, "password_file": pwf}
        k.write_conf()
        cp = k.ctl("status", "--json")
        assert cp.returncode == 0, (cp.returncode, cp.stderr)

    with tap.check("[3] a wrong password: exit 3, 'refused the user or its "
                   "password', the password not shown"):
        k.sections["redis"] = {"url": "redis://kairan:not-%s@127.0.0.1:%d"
                               % (PW, redis.port)}
        k.write_conf()
        cp = k.ctl("status", "--json")
        assert cp.returncode == 3, (cp.returncode, cp.stderr)
        assert "refused the user or its password" in cp.stderr, cp.stderr
        assert PW not in cp.stdout + cp.stderr, cp.stderr

    with tap.check("[4] a password without a user: AUTH as before, the "
                   "default user"):
        redis.call("CONFIG", "SET", "requirepass", "default-pw")
        try:
            k.sections["redis"] = {"url": "redis://:default-pw@127.0.0.1:%d"
                                   % redis.port}
            k.write_conf()
            cp = k.ctl("status", "--json")
            assert cp.returncode == 0, (cp.returncode, cp.stderr)
            # and the kairan user's password is not the default's
            k.sections["redis"] = {"url": "redis://:%s@127.0.0.1:%d"
                                   % (PW, redis.port)}
            k.write_conf()
            cp = k.ctl("status", "--json")
            assert cp.returncode == 3, (cp.returncode, cp.stderr)
            assert re.search(r"refused the password", cp.stderr), cp.stderr
        finally:
            redis.call("AUTH", "default-pw")
            redis.call("CONFIG", "SET", "requirepass", "")

tap.done()
