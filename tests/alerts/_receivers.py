"""A local SMTP server (aiosmtpd) and a local JSON webhook receiver for the alert tests."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from returnbridge.sandbox.service import free_port


class Mailbox:
    """Every message the SMTP server accepted: (recipients, parsed message)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else \
            str(envelope.content).encode()
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(content)))
        return "250 OK"

    def url(self, to: str) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=returnbridge@example.com&to={to}&mode=insecure"

    def to(self, address: str) -> list[Message]:
        return [m for rcpt, m in self.messages if address in rcpt]

    @staticmethod
    def text(message: Message) -> str:
        parts = message.walk() if message.is_multipart() else [message]
        out = []
        for part in parts:
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    out.append(payload.decode("utf-8", "replace"))
        return "\n".join(out)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


class WebhookReceiver:
    """Records JSON posts; answers 500 while ``failing`` is set."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.failing = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.received.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def mail_routes_toml(mailbox: Mailbox, owners: tuple[str, ...] = ("ops",),
                     interval_seconds: int | None = None) -> str:
    """Configuration to append to a ``returnbridge.toml``: one e-mail route per owner team
    (to ``{owner}@example.com`` at ``mailbox``), and the alert cycle's interval if given."""
    text = f"\n[alerts]\ninterval_seconds = {interval_seconds}\n" if interval_seconds else ""
    for owner in owners:
        text += (f'\n[[alerts.routes]]\nname = "{owner}-mail"\nowner = "{owner}"\n'
                 f'urls = ["{mailbox.url(f"{owner}@example.com")}"]\n')
    return text
