#!/usr/bin/env python3
"""Raw TLS clients for what curl cannot do: stall mid-request, or send half a body.

usage: rawtls.py idle PORT CAFILE          -> prints the seconds until the server hung up
       rawtls.py halfbody PORT CAFILE PID  -> (key in $CU_KEY) sends half a body, SIGTERMs PID, sends the rest,
                                              prints the status line of the response
       rawtls.py bigheader PORT CAFILE N   -> sends a header of N bytes, prints the status
       rawtls.py slowhead PORT CAFILE GAP  -> sends a header line every GAP seconds, prints the
                                              seconds until the server hung up
       rawtls.py slowbody PORT CAFILE GAP  -> sends a body a byte every GAP seconds, prints the
                                              seconds until the server hung up
       rawtls.py raw PORT CAFILE           -> sends stdin as is, prints all the server answers
       rawtls.py rawfin PORT CAFILE        -> as raw, then half-closes TCP (a FIN, no close_notify)
       rawtls.py keptslow PORT CAFILE GAP  -> one request answered, then the next one's head a byte
                                              every GAP seconds; prints the seconds until the hang-up
       rawtls.py silent PORT CAFILE        -> opens a TCP connection and sends nothing (no TLS
                                              handshake), prints the seconds until the server hung up
       rawtls.py hold PORT CAFILE N SECS   -> opens N connections one after the other, prints how
                                              many finished their handshake and answer a request,
                                              holds them open SECS seconds
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


def trickle(s, chunks, gap):
    """Sends chunks one by one, gap seconds apart, until the server hangs up; returns the
    seconds that took."""
    start = time.monotonic()
    s.settimeout(gap)
    try:
        for c in chunks:
            s.sendall(c)
            try:
                if s.recv(4096) == b"":
                    break
            except socket.timeout:
                pass
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
        pass
    return time.monotonic() - start


def slowhead(port, cafile, gap):
    s = connect(port, cafile)
    lines = [b"GET /v1/health HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n"]
    lines += [b"X-Slow-%d: x\r\n" % i for i in range(1000)]
    print("%.1f" % trickle(s, lines, gap))


def slowbody(port, cafile, gap):
    s = connect(port, cafile)
    s.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n")
    print("%.1f" % trickle(s, [b" "] * 1000, gap))


def raw(port, cafile, fin=False):
    s = connect(port, cafile)
    s.sendall(sys.stdin.buffer.read())
    if fin:
        socket.socket(fileno=os.dup(s.fileno())).shutdown(socket.SHUT_WR)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (ConnectionResetError, ssl.SSLError, socket.timeout):
        pass
    sys.stdout.buffer.write(out)


def bigheader(port, cafile, n):
    s = connect(port, cafile)
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * n + b"\r\n\r\n")
    try:
        print(read_status(s) or "closed")
    except (ConnectionResetError, ssl.SSLError):
        print("closed")


def keptslow(port, cafile, gap):
    s = connect(port, cafile)
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while not data.endswith(b"}\n"):  # the health document, whole
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    print("%.1f" % trickle(s, [bytes([c]) for c in b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" * 20], gap))


def silent(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    start = time.monotonic()
    try:
        while s.recv(4096):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    print("%.1f" % (time.monotonic() - start))


def hold(port, cafile, n, secs):
    kept = []
    for _ in range(n):
        try:
            s = connect(port, cafile)
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            if read_status(s).startswith("HTTP/1.1 200"):
                kept.append(s)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            pass
    print(len(kept), flush=True)
    time.sleep(secs)


def main():
    cmd, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if cmd == "idle":
        idle(port, cafile)
    elif cmd == "halfbody":
        halfbody(port, cafile, int(sys.argv[4]))
    elif cmd == "bigheader":
        bigheader(port, cafile, int(sys.argv[4]))
    elif cmd == "slowhead":
        slowhead(port, cafile, float(sys.argv[4]))
    elif cmd == "slowbody":
        slowbody(port, cafile, float(sys.argv[4]))
    elif cmd == "raw":
        raw(port, cafile)
    elif cmd == "rawfin":
        raw(port, cafile, fin=True)
    elif cmd == "keptslow":
        keptslow(port, cafile, float(sys.argv[4]))
    elif cmd == "silent":
        silent(port)
    elif cmd == "hold":
        hold(port, cafile, int(sys.argv[4]), float(sys.argv[5]))


if __name__ == "__main__":
    main()
