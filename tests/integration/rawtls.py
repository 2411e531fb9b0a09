#!/usr/bin/env python3
"""Raw TLS clients for what curl cannot do: stall mid-request, or send half a body.

usage: rawtls.py idle PORT CAFILE          -> prints the seconds until the server hung up
       rawtls.py halfbody PORT CAFILE PID  -> (key in $CU_KEY) sends half a body, SIGTERMs PID, sends the rest,
                                              prints the status line of the response
       rawtls.py bigheader PORT CAFILE N   -> sends a header of N bytes, prints the status
"""
import os
import signal
import socket
import ssl
import sys
import time


def connect(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def read_status(s):
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def idle(port, cafile):
    s = connect(port, cafile)
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
    start = time.monotonic()
    try:
        while s.recv(4096):
            pass
    except (ConnectionResetError, ssl.SSLError, socket.timeout):
        pass
    print("%.1f" % (time.monotonic() - start))


def halfbody(port, cafile, pid):
    body = b'{"name": "drain", "scopes": ["metrics.read"]}'
    s = connect(port, cafile)
    key = os.environ["CU_KEY"].encode()
    s.sendall(b"POST /v1/apikeys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + key +
              b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    s.sendall(body[:10])
    time.sleep(0.3)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.5)
    s.sendall(body[10:])
    print(read_status(s))


def bigheader(port, cafile, n):
    s = connect(port, cafile)
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * n + b"\r\n\r\n")
    try:
        print(read_status(s) or "closed")
    except (ConnectionResetError, ssl.SSLError):
        print("closed")


def main():
    cmd, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if cmd == "idle":
        idle(port, cafile)
    elif cmd == "halfbody":
        halfbody(port, cafile, int(sys.argv[4]))
    elif cmd == "bigheader":
        bigheader(port, cafile, int(sys.argv[4]))


if __name__ == "__main__":
    main()
