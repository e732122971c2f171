"""Every HTTP request, seen once at the edge of the app (pure ASGI around it all, so 404s and
CORS preflights too, at the cost of no Litestar middleware layer per route):

- X-Request-ID: taken from the request when it is a plain token, made otherwise, returned on
  the answer and bound to every log line of the request;
- its duration by method, route template and status, for Prometheus (when metrics are on);
- with `access_log`, one line when its answer starts: method, path, status, time."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from structlog.contextvars import bound_contextvars

from orchestrator import metrics

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

access = logging.getLogger("orchestrator.access")

HEADER = b"x-request-id"
# A proxy's or a client's id, kept when it is safe to echo in a header and a log line.
ACCEPTED = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Label values a client cannot multiply: any other method, and any path no route matched, is one
# series each.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class Edge:
    def __init__(self, app: ASGIApp, *, http_metrics: bool, access_log: bool) -> None:
        self.app, self.http_metrics, self.access_log = app, http_metrics, access_log

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
                self._observe(scope, message["status"], time.perf_counter() - started)
            await send(message)

        with bound_contextvars(request_id=request_id.decode()):
            await self.app(scope, receive, send_with_id)

    def _observe(self, scope: Scope, status: int, took_s: float) -> None:
        method = scope.get("method", "")
        if self.http_metrics:
            # The route's template (set by the router on this same scope), never the raw path.
            route = scope.get("path_template") or UNMATCHED
            labels = (method if method in METHODS else "OTHER", route, str(status))
            metrics.observe(metrics.HTTP_SECONDS, took_s, *labels)
        if self.access_log:
            access.info("%s %s %d %.1f ms", method, _raw_path(scope), status, took_s * 1000)


def _raw_path(scope: Scope) -> str:
    """The path as sent, still percent-encoded: a decoded one may hold a line break, and forge a
    log line in the console format."""
    raw = scope.get("raw_path") or scope["path"].encode()
    return raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
