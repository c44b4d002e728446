#!/usr/bin/python3
"""test_demo_console.py - make demo's console mode (issue 14, "The demo").

scripts/demo.sh with KAIRAN_DEMO_CONSOLE=1 (as on a terminal): after its
sample broadcast it prints the console's URL, the login "demo" and its
initial password, and keeps kairand running.  A newcomer's first minute,
through the API the console's pages call:

  [1] the printed URL serves the console; the login with the printed
      password must change it; then a message to the class 1年1組 is
      delivered (the .eml files of the outbox), within a minute of the
      demo's first line;
  [2] Ctrl-C (SIGINT to the process group, as a terminal sends it) stops
      kairand and redis-server and the script exits 0.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_demo_console.py
"""

import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()


def call(port, method, path, body=None, cookie=None, csrf=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Origin": "http://127.0.0.1:%d" % port}
    if cookie:
        h["Cookie"] = cookie
    if csrf:
        h["X-CSRF-Token"] = csrf
    data = None
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    raw = r.read()
    # the session's cookie (a login sets the device cookie too)
    sc = next((v for k, v in r.getheaders()
               if k.lower() == "set-cookie" and "_session=" in v), None)
    c.close()
    try:
        j = json.loads(raw)
    except ValueError:
        j = None
    return r.status, j, (sc.split(";", 1)[0] if sc else None), raw


env = dict(os.environ, KAIRAN_DEMO_CONSOLE="1", KAIRAN_DEMO_RECIPIENTS="12", BUILD=BUILD)
for v in ("KAIRAN_REDIS_URL", "KAIRAN_REDIS_SENTINELS"):
    env.pop(v, None)
T0 = time.monotonic()
demo = subprocess.Popen([os.path.join(ROOT, "scripts", "demo.sh")], cwd=ROOT, env=env,
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, start_new_session=True)
fd = demo.stdout.fileno()
raw = b""
text = ""
try:
    with tap.check("[1] the demo prints the console's URL, the login and an initial password"):
        deadline = time.monotonic() + 120
        while "Ctrl-C stops" not in text:
            left = deadline - time.monotonic()
            assert left > 0, text[-2000:]
            r, _, _ = select.select([fd], [], [], left)
            chunk = os.read(fd, 65536) if r else b""
            assert chunk or not r, "demo exited: " + text[-2000:]
            raw += chunk
            text = raw.decode("utf-8", "replace")
        m = re.search(r"http://127\.0\.0\.1:(\d+)/c/sakura-hs/", text)
        pw = re.search(r"パスワード\s+([A-Za-z0-9]{20})\s", text)
        outbox = re.search(r"demo: (\S+)/outbox/<broadcast>/", text)
        assert m and pw and outbox and "ログインID  demo" in text, text[-1500:]
        port = int(m.group(1))
        tap.diag("the console is up %.1f s after make demo's start" % (time.monotonic() - T0))

    with tap.check("[1] log in, change the password, send to 1年1組: delivered within a minute"):
        st, _, _, raw = call(port, "GET", "/c/sakura-hs/")
        assert st == 200 and b"console.js" in raw, st
        st, j, cookie, _ = call(port, "POST", "/v1/session",
                                {"tenant": "sakura-hs", "login": "demo", "password": pw.group(1)})
        assert st == 200 and j["must_change_password"] is True, j
        st, j, cookie, _ = call(port, "POST", "/v1/session/password",
                                {"current": pw.group(1), "new": "demo no atarashii pasuwado"},
                                cookie=cookie, csrf=j["csrf"])
        assert st == 200, j
        csrf = j["csrf"]
        st, j, _, _ = call(port, "POST", "/v1/broadcasts", {
            "category": "notice", "subject": "はじめての連絡", "body": "テストです",
            "channels": ["email"], "audience": {"groups": ["1年1組"]}}, cookie=cookie, csrf=csrf)
        assert st == 202, j
        bid = j["id"]

        def ended():
            s, b, _, _ = call(port, "GET", "/v1/broadcasts/" + bid, cookie=cookie)
            return b if s == 200 and b["ended"] else None
        b = wait_for(ended, 60, 0.2, what="the first message delivered")
        assert b["counts"]["email"]["delivered"] == 11, b["counts"]  # one child has no e-mail
        emls = os.listdir(os.path.join(outbox.group(1), "outbox", bid))
        assert len(emls) == 11, emls
        took = time.monotonic() - T0
        tap.diag("from make demo's start to the first message delivered: %.1f s" % took)
        assert took < 60, took

    with tap.check("[2] Ctrl-C stops kairand and redis-server; the demo exits 0"):
        os.killpg(demo.pid, signal.SIGINT)
        rc = demo.wait(30)
        assert rc == 0, (rc, text[-1000:])
        rport = int(re.search(r"private redis-server on 127\.0\.0\.1:(\d+)", text).group(1))
        for p, what in ((port, "kairand"), (rport, "redis-server")):
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", p)) != 0, what + " still listens"
finally:
    if demo.poll() is None:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(30)

# The demo keeps its directory (it says where the .eml files are); the
# test removes it when every check passed.
m = re.search(r"data in (/\S+kairan-demo\.[A-Za-z0-9]+)\)", text)
if m and tap.failed == 0:
    shutil.rmtree(m.group(1), ignore_errors=True)
tap.done()
