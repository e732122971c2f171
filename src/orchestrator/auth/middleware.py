"""Authentication on every protected route: the key is read, looked up, and rate-limited."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware.authentication import AbstractAuthenticationMiddleware, AuthenticationResult

from orchestrator.auth.models import Scope

if TYPE_CHECKING:
    from litestar.connection import ASGIConnection
    from litestar.handlers import BaseRouteHandler

    from orchestrator.auth.keys import Caller
    from orchestrator.auth.live_keys import LiveKeys
    from orchestrator.auth.rate_limit import RateLimiter

REALM = "orchestrator"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BROWSER_PATHS = ("/saq",)  # a browser asks for a password only when challenged with Basic


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The key from `Authorization: Bearer <key>`, `X-API-Key: <key>`, or, under /saq only,
    Basic with the key as password: what a browser sends for the SAQ UI, and keeps sending to
    that site on its own; so it is taken nowhere else, and not from another site's page."""
    headers = connection.headers
    if key := headers.get("x-api-key"):
        return key.strip()
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() != "basic":
        return None
    path = connection.url.path
    if not _for_browsers(path):
        raise NotAuthorizedException(
            "Basic authentication is only for the operators' UI under /saq: send"
            " 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            headers=_challenge(path, presented=True),
        )
    _refuse_other_sites(connection)
    try:
        return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2] or None
    except (binascii.Error, UnicodeDecodeError):
        return None


def _for_browsers(path: str) -> bool:
    return any(path == prefix or path.startswith(f"{prefix}/") for prefix in BROWSER_PATHS)


def _refuse_other_sites(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Cross-site request forgery: a browser tells where a request comes from (Sec-Fetch-Site,
    else Origin); a request that tells neither is not from a browser's page. As Go's
    net/http CrossOriginProtection decides."""
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    headers = connection.headers
    if site := headers.get("sec-fetch-site"):
        if site in ("same-origin", "none"):
            return
    elif (origin := headers.get("origin")) is None or urlsplit(origin).netloc.lower() == headers.get(
        "host", ""
    ).lower():
        return
    raise PermissionDeniedException(
        "Refused: a request from another site's page; the SAQ UI acts only from its own pages"
    )


def _challenge(path: str, *, presented: bool) -> dict[str, str]:
    if _for_browsers(path):
        return {"WWW-Authenticate": f'Basic realm="{REALM}"'}
    # RFC 6750: a token that was sent but is not accepted is an "invalid_token".
    error = ', error="invalid_token"' if presented else ""
    return {"WWW-Authenticate": f'Bearer realm="{REALM}"{error}'}


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        # One answer for a wrong key and a revoked one, and both come before any lead or task
        # is looked up: a 401 says nothing about which keys or resources exist.
        key = presented_key(connection)
        if key is None:
            raise NotAuthorizedException(
                "An API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers=_challenge(connection.url.path, presented=False),
            )
        live_keys: LiveKeys = connection.app.state.live_keys
        rate_limiter: RateLimiter = connection.app.state.rate_limiter
        caller = await live_keys.find(key)
        if caller is None:
            # Counted only once the key is known to be wrong: clients behind one proxy share an
            # address, and someone else's guesses there must not refuse a valid key.
            address = connection.client.host if connection.client else "unknown"
            await rate_limiter.count_failure(address)
            raise NotAuthorizedException(
                "The API key is not valid (wrong, or revoked)",
                headers=_challenge(connection.url.path, presented=True),
            )
        await rate_limiter.check(caller)
        return AuthenticationResult(user=caller, auth=None)


# Guards are coroutines: Litestar runs a plain function guard in its thread pool, a thread hop
# per guard per request.
async def authorize(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of every protected route: reads need `read`, anything else `write` (403 otherwise)."""
    method = connection.scope.get("method", "GET")
    _require(connection, Scope.READ if method in SAFE_METHODS else Scope.WRITE)


async def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard of operators' routes (the SAQ UI, whose POSTs retry and abort jobs)."""
    _require(connection, Scope.ADMIN)


def _require(connection: ASGIConnection[Any, Any, Any, Any], needed: Scope) -> None:
    if connection.scope.get("method") == "OPTIONS":
        return  # the middleware lets OPTIONS (CORS preflight) through without a key
    caller: Caller = connection.user
    if not caller.scope.allows(needed):
        raise PermissionDeniedException(
            f"This API key has the '{caller.scope}' scope; this request needs '{needed}'"
        )
