#!/usr/bin/python3
"""bad_smtp.py - a misbehaving SMTP server for kairan's SMTP client tests
(stdlib only, asyncio, 127.0.0.1).

  bad_smtp.py --port P --mode MODE [--times N] [--store FILE]
              [--cert C --key K] [--seconds S]

The first N connections (default: all) misbehave as MODE says; later ones
are a plain, correct lock-step server (no PIPELINING) that stores each
message as a JSON line in FILE ({"rcpt", "conn", "size", "bare_lf"}).
Every connection is logged to FILE + ".events" ({"ev": "connect"|"cmd",
"conn", "cmd"}), commands without their arguments.

Modes:
  banner421   "421 4.3.2 busy" as the greeting, then close
  garbage     a greeting that is not SMTP ("HTTP/1.1 400 ...")
  ehlo554     EHLO and HELO refused with 554
  rst_data    after 354, read part of the content, then reset (RST)
  inject      offer STARTTLS; answer it with "220 go" and, in the same
              write, "250 injected" (the STARTTLS injection), then TLS
  slow_final  answer the final "." only after --seconds (default 30)
  trickle     answer the final "." one byte every 0.5 s, a long 250 reply
              (about a minute in all): a reply that never completes
  drop_reuse  close the connection, without a reply, at the RSET that
              starts a second transaction on it
  tls454      offer STARTTLS, answer it "454 4.7.0 TLS not available"
  auth535     offer AUTH PLAIN LOGIN, answer AUTH "535 5.7.8 ..."
  ok          behave from the first connection
Prints "ready" on stdout once listening.
"""
import argparse
import asyncio
import json
import socket
import ssl
import struct
import sys

A = None
CONN = [0]


def log(ev):
    with open(A.store + ".events", "a") as f:
        f.write(json.dumps(ev) + "\n")


async def session(reader, writer):
    CONN[0] += 1
    conn = CONN[0]
    bad = A.times < 0 or conn <= A.times
    mode = A.mode if bad else "ok"
    log({"ev": "connect", "conn": conn, "mode": mode})

    def send(s):
        writer.write(s.encode())

    if mode == "banner421":
        send("421 4.3.2 busy, try later\r\n")
        await writer.drain()
        writer.close()
        return
    if mode == "garbage":
        send("HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        await reader.read(1000)
        writer.close()
        return
    send("220 bad.example ESMTP\r\n")
    tls = False
    rcpts = []
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = line.decode("latin-1").strip()
        verb = cmd.split(" ", 1)[0].split(":", 1)[0].upper()
        log({"ev": "cmd", "conn": conn, "cmd": verb})
        if verb in ("EHLO", "HELO"):
            if mode == "ehlo554":
                send("554 5.7.1 go away\r\n")
            elif verb == "EHLO":
                ext = ["250-bad.example"]
                if mode in ("inject", "tls454") and not tls:
                    ext.append("250-STARTTLS")
                if mode == "auth535":
                    ext.append("250-AUTH PLAIN LOGIN")
                ext.append("250 8BITMIME")
                send("\r\n".join(ext) + "\r\n")
            else:
                send("250 bad.example\r\n")
        elif verb == "STARTTLS" and mode == "inject" and not tls:
            send("220 2.0.0 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n")
            await writer.drain()
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(A.cert, A.key)
            try:
                await writer.start_tls(ctx)
            except Exception:  # noqa: BLE001 - the client refused: fine
                break
            tls = True
        elif verb == "STARTTLS" and mode == "tls454":
            send("454 4.7.0 TLS not available due to local problem\r\n")
        elif verb == "AUTH" and mode == "auth535":
            send("535 5.7.8 Authentication credentials invalid\r\n")
        elif verb == "MAIL":
            rcpts = []
            send("250 2.1.0 ok\r\n")
        elif verb == "RCPT":
            rcpts.append(cmd.split(":", 1)[1].strip().strip("<>"))
            send("250 2.1.5 ok\r\n")
        elif verb == "DATA":
            send("354 go ahead\r\n")
            await writer.drain()
            if mode == "rst_data":
                await reader.read(100)
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            data = b""
            while True:
                dl = await reader.readline()
                if not dl:
                    return
                if dl == b".\r\n":
                    break
                data += dl
            if mode == "slow_final":
                await asyncio.sleep(A.seconds)
            if mode == "trickle":
                for ch in "250 2.0.0 queued " + "x" * 100 + "\r\n":
                    send(ch)
                    await writer.drain()
                    await asyncio.sleep(0.5)
                continue
            with open(A.store, "a") as f:
                f.write(json.dumps({
                    "rcpt": rcpts, "conn": conn, "size": len(data),
                    "bare_lf": b"\n" in data.replace(b"\r\n", b"")}) + "\n")
            send("250 2.0.0 queued\r\n")
        elif verb == "RSET" and mode == "drop_reuse":
            break
        elif verb == "RSET":
            rcpts = []
            send("250 2.0.0 ok\r\n")
        elif verb == "QUIT":
            send("221 2.0.0 bye\r\n")
            await writer.drain()
            break
        else:
            send("502 5.5.2 unknown command\r\n")
        await writer.drain()
    writer.close()


async def main():
    srv = await asyncio.start_server(session, "127.0.0.1", A.port)
    print("ready", flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", default="ok")
    ap.add_argument("--times", type=int, default=-1)
    ap.add_argument("--store", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--seconds", type=float, default=30.0)
    A = ap.parse_args()
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
