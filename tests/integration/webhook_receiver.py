"""webhook_receiver.py - an HTTPS receiver of custodia's webhooks for the tests.

usage: webhook_receiver.py DIR CERT KEY SECRET_FILE [--port P] [--fail N] [--stall]

Listens on 127.0.0.1 and port P (default: a free one), written to DIR/port once it listens. Each request is
checked as docs/notifications.md tells a receiver to: the Custodia-Signature header's
timestamp within 5 minutes, and its v1 the HMAC-SHA256, under the key of SECRET_FILE, of
"<timestamp>.<body>", compared in constant time. Every request is a line of DIR/requests.jsonl:
{"id", "valid", "status", "body"}. The first N valid requests are answered 500 (--fail N);
with --stall, no request is answered at all (the connection is held open). Otherwise a valid
request is answered 204 and an invalid one 400.
"""
import hashlib
import hmac
import http.server
import json
import os
import ssl
import sys
import threading
import time


def main():
    d, cert, key, secret_file = sys.argv[1:5]
    fail = int(sys.argv[sys.argv.index("--fail") + 1]) if "--fail" in sys.argv else 0
    stall = "--stall" in sys.argv
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    raw = open(secret_file, "rb").read()
    try:  # hexadecimal, as custodia init writes it, else the bytes as they are
        secret = bytes.fromhex(raw.decode().strip())
    except ValueError:
        secret = raw
    lock = threading.Lock()
    state = {"valid": 0}
    log = open(os.path.join(d, "requests.jsonl"), "a")

    def verify(header, body):
        # t=<unix seconds>,v1=<hex>
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        try:
            ts = int(parts["t"])
        except (KeyError, ValueError):
            return False
        if abs(time.time() - ts) > 300:
            return False
        want = hmac.new(secret, b"%d." % ts + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, parts.get("v1", ""))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            if stall:
                time.sleep(3600)
                return
            valid = verify(self.headers.get("Custodia-Signature", ""), body)
            with lock:
                if valid:
                    state["valid"] += 1
                status = 400 if not valid else 500 if state["valid"] <= fail else 204
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                log.write(json.dumps({"id": self.headers.get("Custodia-Id"), "valid": valid,
                                      "status": status, "body": doc}) + "\n")
                log.flush()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(os.path.join(d, "port.tmp"), "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
    srv.serve_forever()


if __name__ == "__main__":
    main()
