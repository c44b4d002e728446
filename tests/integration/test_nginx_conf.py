#!/usr/bin/python3
"""test_nginx_conf.py - the nginx block of docs/http-api.md ("Public
exposure: nginx with TLS") is a configuration nginx accepts (issue 11).

The ```nginx block is taken from the document as it is, its certificate
paths replaced by a self-signed pair made here, wrapped in an http { }
block of a minimal nginx.conf in a temporary directory, and checked with
`nginx -t -p DIR -c FILE -e LOG` (nginx is not started; no port is
bound).  The per-client limits the document promises must be in it.
nginx comes from scripts/deps.sh: its absence is a failure, not a skip.
"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("nginx-conf")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "http-api.md")


def nginx_block():
    text = open(DOC, encoding="utf-8").read()
    part = text.split("## Public exposure", 1)[1]
    m = re.search(r"```nginx\n(.*?)```", part, re.S)
    assert m, "no ```nginx block under 'Public exposure'"
    return m.group(1)


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

with tap.check("nginx is installed (scripts/deps.sh installs it)"):
    assert NGINX, "nginx not found: run scripts/deps.sh"

block = None
with tap.check("docs/http-api.md has the nginx block with the per-client limits"):
    block = nginx_block()
    for d in ("limit_conn ", "limit_req ", "limit_conn_zone", "limit_req_zone",
              "client_header_timeout", "client_body_timeout", "send_timeout",
              "client_max_body_size", "proxy_set_header X-Real-IP $remote_addr"):
        assert d in block, "missing: " + d
    # The body caps per location match kairand's defaults.
    assert re.search(r"location = /v1/broadcasts \{[^}]*client_max_body_size 10m;",
                     block), "no 10m cap on /v1/broadcasts"
    assert re.search(r"location = /line/webhook \{[^}]*client_max_body_size 256k;",
                     block), "no 256k cap on /line/webhook"

with tap.check("nginx -t accepts it"):
    assert NGINX and block
    cert = os.path.join(out, "cert.pem")
    key = os.path.join(out, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=kairan.example.jp"],
                   check=True, capture_output=True)
    body = re.sub(r"ssl_certificate\s+\S+;", "ssl_certificate %s;" % cert, block)
    body = re.sub(r"ssl_certificate_key\s+\S+;", "ssl_certificate_key %s;" % key, body)
    for sub in ("logs", "tmp"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    conf = os.path.join(out, "nginx.conf")
    with open(conf, "w") as f:
        f.write("pid %s/nginx.pid;\n" % out)
        f.write("error_log %s/logs/error.log;\n" % out)
        f.write("events { worker_connections 64; }\n")
        f.write("http {\n")
        f.write("    access_log off;\n")
        for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            f.write("    %s_temp_path %s/tmp/%s;\n" % (t, out, t))
        f.write(body)
        f.write("}\n")
    cp = subprocess.run([NGINX, "-t", "-p", out + "/", "-c", conf,
                         "-e", os.path.join(out, "logs", "error.log")],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert "test is successful" in cp.stderr, cp.stderr

tap.done()
