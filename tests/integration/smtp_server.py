"""smtp_server.py - an SMTP server for the tests (Debian's python3-aiosmtpd).

usage: smtp_server.py DIR CERT KEY USER PASSWORD [--refuse] [--plain]

Listens on 127.0.0.1 and a free port, written to DIR/port once it listens. It offers STARTTLS
(with CERT and KEY) and requires it before AUTH (PLAIN or LOGIN), and AUTH, as USER with
PASSWORD, before MAIL. Each message accepted is written to DIR/mail-<n>.eml, with its envelope
in DIR/mail-<n>.json ({"from", "to"}). With --refuse every recipient is refused (550). With
--plain it offers no STARTTLS and takes mail without AUTH (a server custodia must refuse).
"""
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    d, cert, key, user, password = sys.argv[1:6]
    refuse = "--refuse" in sys.argv
    plain = "--plain" in sys.argv
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    count = {"n": 0}

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if refuse:
                return "550 5.1.1 mailbox unavailable"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            count["n"] += 1
            base = os.path.join(d, "mail-%d" % count["n"])
            with open(base + ".eml", "wb") as f:
                f.write(envelope.original_content)
            with open(base + ".json", "w") as f:
                json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos}, f)
            return "250 Message accepted"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok, handled=False)

    # port 0 is not supported by the controller's readiness check: take a free one first
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if plain:
        ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    else:
        ctl = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx,
                         require_starttls=True, authenticator=authenticator, auth_required=True,
                         auth_require_tls=True)
    ctl.start()
    with open(os.path.join(d, "port.tmp"), "w") as f:
        f.write(str(port))
    os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
    try:
        asyncio.new_event_loop().run_forever()
    finally:
        ctl.stop()


if __name__ == "__main__":
    main()
