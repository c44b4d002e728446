#!/usr/bin/python3
"""aio_smtp.py - aiosmtpd (python3-aiosmtpd) as a second, independent SMTP
server for kairan's SMTP client: STARTTLS required, AUTH PLAIN / LOGIN
(only after TLS), no PIPELINING (aiosmtpd does not offer it), so the
client's lock-step path.

  aio_smtp.py --port P --cert C --key K --auth user:pass --store FILE

Each accepted message is one JSON line in FILE: {"rcpt": [...], "from",
"tls": bool, "auth": user, "size", "bare_lf": bool}.  Prints "ready" on
stdout once listening.  SIGTERM ends it.
"""
import argparse
import json
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--auth", required=True)
    ap.add_argument("--store", required=True)
    a = ap.parse_args()
    user, pw = a.auth.split(":", 1)
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            data = envelope.original_content or b""
            rec = {"rcpt": envelope.rcpt_tos, "from": envelope.mail_from,
                   "tls": session.ssl is not None,
                   "auth": session.auth_data if session.authenticated
                   else None,
                   "size": len(data),
                   "bare_lf": b"\n" in data.replace(b"\r\n", b"")}
            with lock, open(a.store, "a") as f:
                f.write(json.dumps(rec) + "\n")
            return "250 2.0.0 accepted"

    def authenticator(server, session, envelope, mechanism, auth_data):
        if (isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == pw):
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    c = Controller(Handler(), hostname="127.0.0.1", port=a.port,
                   tls_context=ctx, require_starttls=True,
                   auth_require_tls=True, authenticator=authenticator,
                   auth_exclude_mechanism=["CRAM-MD5"])
    c.start()
    print("ready", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *x: done.set())
    signal.signal(signal.SIGINT, lambda *x: done.set())
    done.wait()
    c.stop()


if __name__ == "__main__":
    sys.exit(main())
