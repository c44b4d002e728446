#!/usr/bin/python3
"""test_routes_auth.py - every route of the routing table that needs a
token, tried with none, a wrong one and every role too weak for it
(SECURITY-PROMISES.md row 4: "every endpoint tried with no token, a wrong
token and a too-weak role").

test_http [1] tries a handful of endpoints with every role; this one reads
the table itself (dispatcher/http/routes.c), so that a route added later
is tried too without anyone writing its row here.

  [1] the table parses: every route with roles has a method, a path and a
      role set (ROLE(KN_ROLE_*), STAFF, READERS, ANYROLE).
  [2] no token, a malformed one, an unknown one with a well-formed secret
      -> 401 with WWW-Authenticate and a JSON error, for every such route.
  [3] every role the route does not list -> 403 with a JSON error (a
      school's token of that role), never a 2xx.
  [4] only administrators change staff accounts (add, deactivate, reset,
      role, groups): a limited_admin's token gets 403 on each.
  [5] GET /v1/queues/history (the depths of every school together) is for
      service-wide accounts only: admin and operator in the table, and a
      school's admin token (made with --tenant) 403 like a limited_admin;
      /metrics alike.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_routes_auth.py
"""

import http.client
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("routes-auth")
ROUTES = os.path.join(ROOT, "dispatcher", "http", "routes.c")
ROLES = ("admin", "limited_admin", "sender", "operator")
MACROS = {"STAFF": {"admin", "limited_admin"},
          "READERS": {"admin", "limited_admin", "operator"},
          "ANYROLE": set(ROLES)}


def parse_routes():
    """[(id, method, path, roles)] of the routes that need a token."""
    text = open(ROUTES, encoding="utf-8").read()
    table = text[text.index("routes[] = {"):]
    table = table[:table.index("\n};")]
    res = []
    for m in re.finditer(r"\{(R_\w+),\s*HTTP_(\w+),\s*\"([^\"]+)\",\s*([^,]+),",
                         re.sub(r"/\*.*?\*/", "", table, flags=re.S)):
        rid, method, path, expr = m.group(1), m.group(2), m.group(3), \
            " ".join(m.group(4).split())
        if expr == "0":
            continue
        roles = set()
        for part in expr.split("|"):
            part = part.strip()
            r = re.fullmatch(r"ROLE\(KN_ROLE_(\w+)\)", part)
            if r:
                roles.add(r.group(1).lower())
            elif part in MACROS:
                roles |= MACROS[part]
            else:
                raise AssertionError("%s: role expression %r" % (rid, expr))
        assert roles <= set(ROLES), (rid, roles)
        res.append((rid, method, path.replace("{}", "x-1"), roles))
    return res


def request(port, method, path, token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    h = {}
    if token is not None:
        h["Authorization"] = "Bearer " + token
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    if body is not None:
        h["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read().decode("utf-8", "replace")
    hdr = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    try:
        j = json.loads(data)
    except ValueError:
        j = None
    return r.status, hdr, j, data


with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox",
               conf={"http": {"listen": "127.0.0.1:%d" % port,
                              "rate": "100000"}})

    routes = []
    with tap.check("[1] the routing table parses: routes with roles found"):
        routes = parse_routes()
        assert len(routes) >= 30, [r[0] for r in routes]
        assert any(r[0] == "R_BC_PHONES" for r in routes)

    def token(role):
        args = ["token", "create", "--role", role, "--name", "t " + role,
                "--tenant", "sakura"]
        if role == "sender":
            args += ["--groups", "2-A"]
        if role == "operator":
            args = args[:-2]   # an operator has no tenant
        cp = k.ctl(*args)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.strip()

    T = {r: token(r) for r in ROLES}
    tid = T["admin"].split("_")[1]
    d = k.start()
    d.wait_output('"listening"', 15)

    bad_tokens = {"none": None, "malformed": "not-a-kairan-token",
                  "unknown": "kn_%s_%s" % ("0" * 16, "C" * 43),
                  "wrong secret": "kn_%s_%s" % (tid, "B" * 43)}
    with tap.check("[2] every route that needs a token: none, malformed, "
                   "unknown, wrong secret -> 401 + WWW-Authenticate"):
        bad = []
        for rid, method, path, _ in routes:
            for what, tok in bad_tokens.items():
                st, hdr, j, data = request(port, method, path, tok)
                if st != 401 or "www-authenticate" not in hdr or \
                        not (isinstance(j, dict) and j.get("error")):
                    bad.append((rid, method, path, what, st, data[:120]))
        assert not bad, bad

    with tap.check("[3] every role a route does not list -> 403"):
        bad = []
        for rid, method, path, roles in routes:
            for role in ROLES:
                if role in roles:
                    continue
                st, hdr, j, data = request(port, method, path, T[role])
                if st != 403 or not (isinstance(j, dict) and j.get("error")):
                    bad.append((rid, method, path, role, st, data[:120]))
        assert not bad, bad

    with tap.check("[4] only administrators change staff accounts and reset "
                   "credentials: a limited_admin gets 403 on each"):
        bad = []
        for rid, method, path, roles in routes:
            if not rid.startswith("R_STAFF_") or rid == "R_STAFF_LIST":
                continue
            st, hdr, j, data = request(port, method, path, T["limited_admin"])
            if st != 403 or "admins" not in (j or {}).get("error", ""):
                bad.append((rid, st, data[:120]))
        assert not bad, bad

    with tap.check("[5] the queue history of every school together is for "
                   "service-wide accounts: the table lists admin and operator "
                   "only; a school's admin token (--tenant) gets 403, an "
                   "admin without a tenant and an operator 200"):
        hist = [r for r in routes if r[0] == "R_HISTORY"]
        assert hist and hist[0][3] == {"admin", "operator"}, hist
        st, hdr, j, data = request(port, "GET", "/v1/queues/history",
                                   T["limited_admin"])
        assert st == 403, (st, data)
        st, hdr, j, data = request(port, "GET", "/v1/queues/history", T["admin"])
        assert st == 403 and "every school" in (j or {}).get("error", ""), \
            (st, data)
        cp = k.ctl("token", "create", "--role", "admin", "--name", "all")
        assert cp.returncode == 0, cp.stderr
        for tok in (cp.stdout.strip(), T["operator"]):
            st, hdr, j, data = request(port, "GET", "/v1/queues/history", tok)
            assert st == 200 and "samples" in (j or {}), (st, data)

    with tap.check("[5] /metrics (every school's deliveries together) alike: "
                   "a school's admin token 403, an operator 200"):
        st, hdr, j, data = request(port, "GET", "/metrics", T["admin"])
        assert st == 403 and "every school" in (j or {}).get("error", ""), \
            (st, data)
        st, hdr, j, data = request(port, "GET", "/metrics", T["operator"])
        assert st == 200 and "kairan_up" in data, (st, data[:200])

    d.stop()
    tap.ok(d.returncode == 0, "kairand stops cleanly", d.stderr_text()[-2000:])

tap.done()
