"""The third parties of a load run as real servers on 127.0.0.1: an SMTP server and a CRM webhook.

Both accept everything that is well formed and record each receipt (load/effects.py). The CRM
checks the push's signature (Standard Webhooks, its timestamp's age too) and refuses an unsigned
one, as a real CRM would.
"""

from __future__ import annotations

import secrets
import threading
from contextlib import contextmanager
from email import policy
from email.parser import BytesHeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import WebhookVerificationError

from load.effects import EffectsWriter
from load.service import free_port
from orchestrator.webhooks import signer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


class _Inbox:
    def __init__(self, log: EffectsWriter) -> None:
        self.log = log

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        headers = BytesHeaderParser(policy=policy.default).parsebytes(bytes(envelope.content))
        self.log.record("email", str(headers["Message-ID"] or ""))
        return "250 Message accepted"


class _Crm(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, log: EffectsWriter, secret: str, host: str, port: int) -> None:
        super().__init__((host, port), _CrmHandler)
        self.log, self.secret = log, secret


class _CrmHandler(BaseHTTPRequestHandler):
    server: _Crm

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            signer(self.server.secret).verify(body, dict(self.headers.items()))
            signed = True
        except WebhookVerificationError:
            signed = False
        if signed:
            self.server.log.record("push", self.headers.get("Idempotency-Key", ""))
        self.send_response(200 if signed else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def receivers(
    log_path: Path, host: str = "127.0.0.1", smtp_port: int = 0, crm_port: int = 0, secret: str = ""
) -> Iterator[dict[str, str]]:
    """Run both servers (on free ports unless given); yields the service's settings that point
    its jobs at them."""
    log, secret = EffectsWriter(log_path), secret or secrets.token_urlsafe(24)
    smtp_port = smtp_port or free_port()
    smtp = Controller(_Inbox(log), hostname=host, port=smtp_port)
    smtp.start()
    crm = _Crm(log, secret, host, crm_port)
    thread = threading.Thread(target=crm.serve_forever, name="load-crm", daemon=True)
    thread.start()
    try:
        yield {
            "SMTP_URL": f"smtp://{host}:{smtp_port}",
            "CRM_WEBHOOK_URL": f"http://{host}:{crm.server_address[1]}/hooks/leads",
            "CRM_WEBHOOK_SECRET": secret,
        }
    finally:
        crm.shutdown()
        crm.server_close()
        smtp.stop()
        log.close()
