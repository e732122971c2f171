"""The headers of the browser pages we serve (SAQ's UI, the API docs) and of the files they load."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from litestar import Response
    from litestar.types import AfterRequestHookHandler


def page_headers(content_security_policy: str) -> AfterRequestHookHandler:
    """An `after_request` hook: no framing (clickjacking), no type sniffing, the given sources only.

    A hook rather than `response_headers`: static files are ASGI responses, which layers' headers skip.
    """
    headers = {
        "Content-Security-Policy": content_security_policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
    }

    def add_headers(response: Response[Any]) -> Response[Any]:
        response.headers.update(headers)
        return response

    return add_headers
