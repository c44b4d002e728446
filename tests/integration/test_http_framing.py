#!/usr/bin/python3
"""test_http_framing.py - kairand's HTTP/1.1 request framing, held to RFC
9112 where Debian's http-parser (built with HTTP_PARSER_STRICT=0) is lax.
A request whose framing another parser (a proxy in front, a cache) could
read differently is refused with 400 and the connection closed; nothing
after it on the connection is read as a request.

One redis-server, one kairand (outbox adapter), each case on a fresh
connection from 127.0.0.5 (an ordinary peer).

  [1] a bare CR (not followed by LF) in the head: after an empty header
      value, after the last header (the byte after it was taken as the
      LF: "\\r\\rX" ended the head and the rest became a second request);
      a tab in the request line (taken into the target);
  [2] whitespace between a header name and its colon ("Content-Length :
      4" was taken as a Content-Length; RFC 9112 5.1: MUST reject);
  [3] a header line starting with whitespace (obs-fold, or whitespace
      before the first header: RFC 9112 2.2 / 5.2, rejected);
  [4] chunked bodies: chunk data not followed by CRLF (any two bytes were
      taken), a bare LF or a control character in a chunk extension
      (ignored up to the next CR), a bare CR ending a chunk-size line, a
      bare CR in a trailer; Transfer-Encoding in an HTTP/1.0 request
      (answered, then the connection is closed: RFC 9112 6.1);
      Transfer-Encoding on two lines (the parser reads only the last:
      'identity' then 'chunked' was chunked; a front end reading the
      first sees no body) 400, a coding other than chunked 501; a trailer
      field is never taken as a header (RFC 9110 6.5.1);
  [4b] Host (RFC 9112 3.2): an HTTP/1.1 request without one, or any with
      two, 400; an HTTP/1.0 request without one is answered; the
      absolute-form target (3.2.2: a server MUST accept it) is routed by
      its path, its authority ignored;
  [5] controls: a correct chunked body with an extension and a trailer,
      heads with bare LF line ends (RFC 9112 2.2 allows a recipient to
      accept them), a tab inside a header value, two pipelined requests,
      all answered as before.

Run:  BUILD=build /usr/bin/python3 tests/integration/test_http_framing.py
"""

import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import *  # noqa: E402,F401,F403

tap = TAP()
out = tmpdir("http-framing")


def exchange(port, data, timeout=5):
    """Send data on a new connection; every answer until the server closes
    (or timeout): a list of (status, headers, body)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind(("127.0.0.5", 0))
    s.connect(("127.0.0.1", port))
    s.sendall(data)
    buf = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
    except socket.timeout:
        pass
    except ConnectionResetError:
        pass
    s.close()
    answers = []
    while b"\r\n\r\n" in buf:
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        hdr = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            hdr[k.strip().lower()] = v.strip()
        n = int(hdr.get("content-length", "0"))
        answers.append((int(lines[0].split()[1]), hdr, rest[:n]))
        buf = rest[n:]
    return answers


def refused(port, data, status=400, why="malformed HTTP request"):
    """The one answer is status (400) with an error starting with why;
    then the connection is closed."""
    a = exchange(port, data)
    assert len(a) == 1, "%d answers: %r" % (len(a), [(x[0], x[2]) for x in a])
    st, hdr, body = a[0]
    assert st == status, (st, body)
    assert json.loads(body)["error"].startswith(why), body
    assert hdr.get("connection") == "close", hdr


GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
NEXT = b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
POST = (b"POST /r/start HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\n")
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

with Redis(out) as redis:
    port = free_port()
    k = Kairan(out, redis, email="outbox", conf={
        "http": {"listen": "127.0.0.1:%d" % port, "rate": "100000",
                 "header_timeout_ms": "2s"}})
    d = k.start()
    d.wait_output('"listening"', 15)

    # ---- [1] bare CR in the head
    with tap.check("[1] a bare CR after the last header: 400, no second "
                   "request"):
        refused(port, GET + b"\rX" + NEXT)
    with tap.check("[1] a bare CR after an empty header value (hiding a "
                   "Transfer-Encoding): 400"):
        refused(port, POST + b"Foo:\rXTransfer-Encoding: chunked\r\n\r\n"
                b"0\r\n\r\n" + NEXT)

    with tap.check("[1] a tab inside the request target: 400"):
        refused(port, b"GET /healthz\tHTTP/1.1\r\nHost: x\r\n\r\n")

    # ---- [2] whitespace before the colon
    with tap.check("[2] 'Content-Length : 4': 400"):
        refused(port, POST + b"Content-Length : 4\r\n\r\nabcd" + NEXT)
    with tap.check("[2] 'Transfer-Encoding\\t: chunked': 400"):
        refused(port, POST + b"Transfer-Encoding\t: chunked\r\n\r\n"
                b"0\r\n\r\n")

    # ---- [3] lines starting with whitespace
    with tap.check("[3] whitespace before the first header: 400"):
        refused(port, b"GET /healthz HTTP/1.1\r\n Host: x\r\n\r\n")
    with tap.check("[3] an obs-fold: 400"):
        refused(port, POST + b"Transfer-Encoding:\r\n chunked\r\n\r\n"
                b"0\r\n\r\n")

    # ---- [4] chunked framing
    with tap.check("[4] chunk data not followed by CRLF: 400"):
        refused(port, CHUNKED + b"2\r\n{}XY0\r\n\r\n")
    with tap.check("[4] a bare LF in a chunk extension: 400"):
        refused(port, CHUNKED + b"2;a\nXX\r\n{}\r\n0\r\n\r\n")
    with tap.check("[4] a control character in a chunk extension: 400"):
        refused(port, CHUNKED + b"2;a=\x01\r\n{}\r\n0\r\n\r\n")
    with tap.check("[4] a bare CR ending a chunk-size line: 400"):
        refused(port, CHUNKED + b"2\rX{}\r\n0\r\n\r\n")
    with tap.check("[4] a bare CR in a trailer: 400"):
        refused(port, CHUNKED + b"2\r\n{}\r\n0\r\nX-T: a\rb\r\n\r\n")

    with tap.check("[4] Transfer-Encoding in an HTTP/1.0 request: answered, "
                   "then closed (RFC 9112 6.1), whatever Connection says"):
        a = exchange(port, b"POST /r/start HTTP/1.0\r\n"
                     b"Connection: keep-alive\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
                     b"GET /healthz HTTP/1.0\r\n\r\n")
        assert len(a) == 1, [(x[0], x[2]) for x in a]
        assert a[0][1].get("connection") == "close", a[0][1]

    with tap.check("[4] two Transfer-Encoding lines ('identity' then "
                   "'chunked': a front end reading the first sees no "
                   "body): 400"):
        refused(port, POST + b"Transfer-Encoding: identity\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
                + NEXT)
    with tap.check("[4] 'chunked' on two lines: 400"):
        refused(port, POST + b"Transfer-Encoding: chunked\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
                + NEXT)
    with tap.check("[4] a transfer coding other than chunked ('gzip, "
                   "chunked'): 501 (RFC 9112 6.1), the body not taken"):
        refused(port, POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
                b"2\r\n{}\r\n0\r\n\r\n" + NEXT, 501,
                "transfer coding not implemented")
    with tap.check("[4] a trailer field is not merged into the head "
                   "(RFC 9110 6.5.1): a Content-Type in the trailer is "
                   "ignored"):
        a = exchange(port, b"POST /r/start HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: text/plain\r\n"
                     b"Transfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n2\r\n{}\r\n0\r\n"
                     b"Content-Type: application/json\r\nX-After: 1\r\n\r\n")
        assert [x[0] for x in a] == [415], [(x[0], x[2]) for x in a]

    # ---- [5] controls
    # ---- [4b] Host
    with tap.check("[4b] an HTTP/1.1 request without Host: 400"):
        refused(port, b"GET /healthz HTTP/1.1\r\n\r\n" + NEXT)
    with tap.check("[4b] two Host lines: 400"):
        refused(port, GET + b"Host: y\r\n\r\n" + NEXT)
    with tap.check("[4b] an HTTP/1.0 request without Host is answered"):
        a = exchange(port, b"GET /healthz HTTP/1.0\r\n\r\n")
        assert [x[0] for x in a] == [200], a

    with tap.check("[4b] the absolute-form target is routed by its path"):
        a = exchange(port, b"GET http://other.example/healthz HTTP/1.1\r\n"
                     b"Host: x\r\n\r\n"
                     b"GET HTTPS://other.example:8443/nope?x=1 HTTP/1.1\r\n"
                     b"Host: x\r\nConnection: close\r\n\r\n")
        assert [x[0] for x in a] == [200, 404], [x[0] for x in a]

    with tap.check("[5] a correct chunked body with an extension and a "
                   "trailer reaches the route"):
        a = exchange(port, CHUNKED.replace(b"\r\n\r\n",
                                           b"\r\nConnection: close\r\n\r\n")
                     + b"2 ; ext=\"v\"\t;x\r\n{}\r\n0\r\nX-T: a\r\n\r\n")
        assert len(a) == 1, a
        assert not json.loads(a[0][2])["error"].startswith("malformed"), a
    with tap.check("[5] bare LF line ends, a tab in a value, pipelining"):
        a = exchange(port, b"GET /healthz HTTP/1.1\nHost: x\nX-A: a\tb\n\n"
                     + GET + b"X-B: \tc \r\n\r\n" + NEXT)
        assert [x[0] for x in a] == [200, 200, 404], [x[0] for x in a]

    with tap.check("kairand is still up and serving"):
        assert d.alive()
        a = exchange(port, GET + b"Connection: close\r\n\r\n")
        assert [x[0] for x in a] == [200], a
    d.stop()

tap.done()
