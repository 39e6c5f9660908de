"""Test helpers for the newsletter: a real SMTP sink (aiosmtpd on loopback) and a local page server."""

from __future__ import annotations

import email
import email.policy
import http.server
import socket
import threading
from collections import Counter

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """Records every accepted message; refuses the addresses in ``reject`` with 550 at RCPT."""

    def __init__(self, reject: set[str] | None = None):
        self.messages: list[email.message.EmailMessage] = []
        self.reject = reject or set()
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)
        return "250 Message accepted"

    def ids(self) -> Counter:
        with self.lock:
            return Counter(m["Message-ID"] for m in self.messages)


def start_sink(port: int, sink: Sink) -> Controller:
    controller = Controller(sink, hostname="127.0.0.1", port=port, decode_data=False)
    controller.start()
    return controller


PAGE = """<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Fallback title</title>
<meta property="og:title" content="{title}"><meta property="og:description" content="Ce que les ambassadeurs changent.">
<meta property="og:image" content="/img/cover.png"><meta property="og:site_name" content="Le Blog RH">
</head><body><p>Bonjour</p></body></html>"""


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        self.server.hosts.append(self.headers.get("Host"))
        if self.path.startswith("/redirect/"):
            n = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/redirect/{n - 1}" if n > 1 else "/article/redirected")
            self.end_headers()
            return
        if self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>" + b"x" * (3 * 1024 * 1024))
            return
        if self.path.startswith("/article/"):
            body = PAGE.format(title="Employee advocacy : " + self.path.rsplit("/", 1)[1]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(404)
        self.end_headers()


def start_pages() -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.hosts = []  # the Host header of every request, in order
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class ScriptedSink(Sink):
    """A sink whose reply to the end-of-data dot is scripted per recipient: each message to an address in
    ``replies`` takes the next reply from its list ("250 …", "451 …", "550 …", or "drop": close the connection
    without answering); an address with no reply left is accepted. Refused and dropped messages are not kept."""

    def __init__(self, replies: dict[str, list[str]]):
        super().__init__()
        self.replies = replies
        self.dots: Counter = Counter()  # end-of-data dots received, per recipient

    async def handle_DATA(self, server, session, envelope):
        (address,) = envelope.rcpt_tos
        with self.lock:
            self.dots[address] += 1
            script = self.replies.get(address) or []
            reply = script.pop(0) if script else "250 Message accepted"
        if reply == "drop":
            server.transport.close()
            return "421 closing"  # written to a closed transport: the client never sees it
        if reply.startswith("250"):
            return await super().handle_DATA(server, session, envelope)
        return reply


class RefuseLogin:
    """An aiosmtpd authenticator that refuses every login (535)."""

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        return AuthResult(success=False, handled=False)


def start_login_sink(port: int) -> Controller:
    """A server that asks for a login over plain SMTP (loopback only) and refuses it. aiosmtpd warns about AUTH
    without TLS on each connection: the test filters that warning."""
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, decode_data=False, authenticator=RefuseLogin(),
                            auth_required=True, auth_require_tls=False)  # fmt: skip
    controller.start()
    return controller
