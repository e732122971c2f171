"""JSON endpoints take JSON only: a body sent as a form or as plain text is what a page on another
site can make a browser send without asking the server first (no CORS preflight)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from litestar.exceptions import ClientException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers import BaseRouteHandler

# application/json, and its structured-syntax kin (RFC 6839) such as application/merge-patch+json.
JSON_MEDIA_TYPE = re.compile(r"application/(?:[\w.-]+\+)?json")


async def json_bodies_only(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: 415 for a handler that reads a body, unless the body is declared JSON. (A
    coroutine: Litestar runs a plain function guard in its thread pool.)"""
    if "data" not in handler.parsed_fn_signature.parameters:
        return
    media_type = connection.headers.get("content-type", "").partition(";")[0].strip().lower()
    if not JSON_MEDIA_TYPE.fullmatch(media_type):
        raise ClientException(
            f"The body must be sent as 'Content-Type: application/json', not {media_type or 'without one'!r}",
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
