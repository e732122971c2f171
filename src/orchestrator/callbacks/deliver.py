"""Delivering the callbacks outbox: each due row is taken by one worker for the length of one
attempt (a row lock would hold a transaction open across an HTTP call), POSTed signed, and its
outcome recorded. A worker killed mid-POST leaves its row due again when the hold ends: the same
`webhook-id` goes again, so a receiver that remembers ids sees it once. A delivered row is never
sent again."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import text

from orchestrator import metrics
from orchestrator.callbacks.targets import NotAllowed, allowed_host
from orchestrator.job import RetryPolicy
from orchestrator.webhooks import canonical, signed_headers

if TYPE_CHECKING:
    from sqlalchemy.engine import Row
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

# 5 s, 10 s, 20 s … up to an hour between attempts (with jitter): the default 24 attempts span
# 11 to 14 hours, so a receiver down for the night gets its callbacks in the morning.
BACKOFF = RetryPolicy(backoff_base_s=5.0, backoff_max_s=3600.0)
BATCH = 20  # attempts under way at once in one process
ERROR_CHARS = 500
# An attempt's row is held this much longer than the attempt may take, so that no other worker
# takes it while it may still be under way.
HOLD_MARGIN_S = 5.0

# Due rows, each taken for one attempt: due again after `hold_s` unless its outcome is recorded.
# The timestamp each is signed with is PostgreSQL's, never this host's.
TAKE = text(
    """
    WITH due AS (
        SELECT id FROM callbacks
        WHERE delivered_at IS NULL AND given_up_at IS NULL AND next_at <= now()
        ORDER BY next_at LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE callbacks AS c SET attempts = c.attempts + 1, next_at = now() + make_interval(secs => :hold_s)
    FROM due WHERE c.id = due.id
    RETURNING c.id, c.url, c.body, c.attempts, now() AS now
    """
)
DELIVERED = text(
    "UPDATE callbacks SET delivered_at = now(), last_error = NULL WHERE id = :id AND delivered_at IS NULL"
)
# Only the latest attempt decides what comes next: one that outlived its hold and was taken over
# must not set the time of the next one.
FAILED = text(
    """
    UPDATE callbacks SET last_error = :error,
        given_up_at = CASE WHEN :give_up THEN now() END,
        next_at = now() + make_interval(secs => :delay_s)
    WHERE id = :id AND attempts = :attempt AND delivered_at IS NULL AND given_up_at IS NULL
    """
)


class Refused(Exception):
    """The receiver's answer, or the reason the call was not made; `final` when no later
    attempt can do better."""

    def __init__(self, reason: str, *, final: bool = False) -> None:
        super().__init__(reason)
        self.final = final


def client(settings: Settings) -> httpx.AsyncClient:
    """The client every callback goes through. Redirects are not followed (the allowed host is
    the one called) and no proxy is taken from the environment (it would be the one connecting)."""
    return httpx.AsyncClient(timeout=settings.callback_timeout_s, follow_redirects=False, trust_env=False)


async def take(engine: AsyncEngine, settings: Settings, limit: int = BATCH) -> list[Row[Any]]:
    async with engine.begin() as db:
        params = {"limit": limit, "hold_s": settings.callback_timeout_s + HOLD_MARGIN_S}
        return list((await db.execute(TAKE, params)).all())


async def deliver_due(engine: AsyncEngine, http: httpx.AsyncClient, settings: Settings) -> int:
    """One round: take what is due, POST each at once, record each outcome; how many were taken."""
    rows = await take(engine, settings)
    await asyncio.gather(*(attempt(engine, http, settings, row) for row in rows))
    return len(rows)


async def attempt(engine: AsyncEngine, http: httpx.AsyncClient, settings: Settings, row: Row[Any]) -> None:
    """POST one taken row and record how it went; never raises but for a cancellation."""
    try:
        await _post(http, settings, row)
    except Exception as exc:
        await _failed(engine, settings, row, exc)
        return
    async with engine.begin() as db:
        await db.execute(DELIVERED, {"id": row.id})
    metrics.count(metrics.CALLBACKS, 1, "delivered")


async def _failed(engine: AsyncEngine, settings: Settings, row: Row[Any], exc: Exception) -> None:
    final = isinstance(exc, Refused) and exc.final
    give_up = final or row.attempts >= settings.callback_max_attempts
    reason = str(exc) if isinstance(exc, Refused) else f"{type(exc).__name__}: {exc}"
    params = {
        "id": row.id,
        "attempt": row.attempts,
        # PostgreSQL's text takes no NUL, which a receiver's answer may hold.
        "error": reason[:ERROR_CHARS].replace("\x00", "\ufffd"),
        "give_up": give_up,
        "delay_s": 0.0 if give_up else BACKOFF.delay_s(row.attempts),
    }
    async with engine.begin() as db:
        await db.execute(FAILED, params)
    metrics.count(metrics.CALLBACKS, 1, "given_up" if give_up else "retried")
    log = logger.warning if give_up else logger.info
    log("callback %s, attempt %d: %s", row.id, row.attempts, params["error"])


async def _post(http: httpx.AsyncClient, settings: Settings, row: Row[Any]) -> None:
    if settings.callback_secret is None:
        raise Refused("CALLBACK_SECRET is not set: an unsigned callback is never sent")
    try:
        host = allowed_host(row.url, settings.callback_allowed_hosts)  # the list may have changed since
    except NotAllowed as exc:
        raise Refused(str(exc), final=True) from None
    url = httpx.URL(row.url)
    address = await _public_address(host, url.port or (443 if url.scheme == "https" else 80))
    body = canonical(row.body)
    headers = signed_headers(settings.callback_secret.get_secret_value(), str(row.id), row.now, body)
    # To the address checked, not to whatever a second lookup would give (DNS rebinding); the
    # host still names itself in Host and in TLS.
    headers["Host"] = url.netloc.decode("ascii")
    target = url.copy_with(host=address) if address is not None else url
    extensions = {"sni_hostname": host} if address is not None else {}
    try:
        # One deadline for the whole attempt: a receiver trickling its answer a byte at a time
        # passes every read's timeout. Streamed: its answer is read no further than the error keeps.
        async with (
            asyncio.timeout(settings.callback_timeout_s),
            http.stream("POST", target, content=body, headers=headers, extensions=extensions) as response,
        ):
            if response.is_success:
                return
            answer = await _start_of(response)
    except TimeoutError:
        raise Refused(f"no answer within {settings.callback_timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise Refused(f"{type(exc).__name__}: {exc}") from None
    # 410 Gone: the receiver says it wants no more (as Standard Webhooks senders take it).
    raise Refused(f"answered {response.status_code}: {answer}", final=response.status_code == 410)


async def _public_address(host: str, port: int) -> str | None:
    """The address to connect to for a host name: refused when any it resolves to is not a
    public one (a name an allowed domain's owner points at 10.0.0.1 or 169.254.169.254). None for
    an address the deployment listed itself, which is called as listed."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused(f"{host} does not resolve: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in found]
    if not addresses or (private := [a for a in addresses if not a.is_global]):
        shown = private[0] if addresses else "nothing"
        raise Refused(f"{host} resolves to {shown}, not a public address (list an address to call it)")
    return str(addresses[0])


async def _start_of(response: httpx.Response) -> str:
    seen = b""
    async for chunk in response.aiter_raw():
        seen += chunk
        if len(seen) >= ERROR_CHARS:
            break
    return seen[:ERROR_CHARS].decode("utf-8", "replace")
