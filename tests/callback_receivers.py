"""A receiver of task callbacks, as an integrator runs one: a real HTTP server on 127.0.0.1 that
checks each POST with the Standard Webhooks library (signature and timestamp's age), answers as
the test plans, and can hold an answer while the test breaks the sender."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.helpers import CALLBACK_SECRET


class CallbackReceiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []  # planned statuses, in order; then 200
        self.lock = threading.Lock()
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.release.set()  # set: answer at once; cleared: hold each answer until set
        self.answer_body = b""  # what a planned answer says
        self.trickle_s = 0.0  # > 0: the answer's body comes a byte at a time, this far apart
        self.location = ""  # a Location header on every answer, when set

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/tasks"

    def delivered(self) -> list[dict[str, Any]]:
        """Verified messages answered 2xx, each webhook-id once (as a receiver that remembers ids)."""
        with self.lock:
            seen: dict[str, dict[str, Any]] = {}
            for call in self.received:
                if call["verified"] and call["status"] < 300:
                    seen.setdefault(call["id"], call)
            return list(seen.values())

    def calls(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender gone mid-answer (cut at its deadline, or killed) is what some tests do on
        purpose: no traceback. socketserver would print one, and Python 3.11 formats it with
        ast.parse, whose recursion counter this thread would then share with pytest's rendering
        of a failure in the main thread (SystemError: AST constructor recursion depth mismatch)."""


class _Handler(BaseHTTPRequestHandler):
    server: CallbackReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            message = Webhook(CALLBACK_SECRET).verify(body, dict(self.headers.items()))
            verified = True
        except WebhookVerificationError:
            message, verified = json.loads(body or b"null"), False
        with self.server.lock:
            status = (self.server.answers.pop(0) if self.server.answers else 200) if verified else 401
        self.server.arrived.set()
        self.server.release.wait(timeout=60)
        with self.server.lock:
            self.server.received.append(
                {
                    "id": self.headers.get("webhook-id"),
                    "verified": verified,
                    "status": status,
                    "message": message,
                    "path": self.path,
                }
            )
        body = self.server.answer_body if status >= 300 else b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.end_headers()
        for byte in body:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(self.server.trickle_s)

    def log_message(self, *_: Any) -> None:
        pass
