"""X-Request-ID: taken from the request when it is a plain token, made otherwise, returned on
every answer (a 404 and a CORS preflight too), and bound to every log line of the request."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from structlog.contextvars import bound_contextvars

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

access = logging.getLogger("orchestrator.access")

HEADER = b"x-request-id"
# A proxy's or a client's id, kept when it is safe to echo in a header and a log line.
ACCEPTED = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestIds:
    """Pure ASGI, around the whole app: it costs no Litestar middleware layer per route. With
    `access_log`, one line per request when its answer starts: method, path, status, time."""

    def __init__(self, app: ASGIApp, *, access_log: bool = False) -> None:
        self.app, self.access_log = app, access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), b"")
        request_id = given if ACCEPTED.fullmatch(given) else uuid.uuid4().hex.encode()

        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, request_id)]
                if self.access_log:
                    took_ms = (time.perf_counter() - started) * 1000
                    access.info(
                        "%s %s %d %.1f ms", scope.get("method"), _raw_path(scope), message["status"], took_ms
                    )
            await send(message)

        with bound_contextvars(request_id=request_id.decode()):
            await self.app(scope, receive, send_with_id)


def _raw_path(scope: Scope) -> str:
    """The path as sent, still percent-encoded: a decoded one may hold a line break, and forge a
    log line in the console format."""
    raw = scope.get("raw_path") or scope["path"].encode()
    return raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
