"""Delivering the callbacks outbox: each due row is taken by one worker for the length of one
attempt (a row lock would hold a transaction open across an HTTP call), POSTed signed, and its
outcome recorded. A worker killed mid-POST leaves its row due again when the hold ends: the same
`webhook-id` goes again, so a receiver that remembers ids sees it once. A delivered row is never
sent again."""

from __future__ import annotations

import asyncio
import logging
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

# 5 s, 10 s, 20 s … up to an hour between attempts (with jitter): ten attempts span about 2 h.
BACKOFF = RetryPolicy(backoff_base_s=5.0, backoff_max_s=3600.0)
BATCH = 20
ERROR_BYTES = 500

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


async def deliver_due(engine: AsyncEngine, http: httpx.AsyncClient, settings: Settings) -> int:
    """One round: take what is due, POST each at once, record each outcome; how many were taken."""
    hold_s = settings.callback_timeout_s + 5.0
    async with engine.begin() as db:
        rows = (await db.execute(TAKE, {"limit": BATCH, "hold_s": hold_s})).all()
    if rows:
        await asyncio.gather(*(_attempt(engine, http, settings, row) for row in rows))
    return len(rows)


async def _attempt(engine: AsyncEngine, http: httpx.AsyncClient, settings: Settings, row: Row[Any]) -> None:
    try:
        await _post(http, settings, row)
    except Refused as exc:
        give_up = exc.final or row.attempts >= settings.callback_max_attempts
        params = {
            "id": row.id,
            "attempt": row.attempts,
            "error": str(exc)[:ERROR_BYTES],
            "give_up": give_up,
            "delay_s": 0.0 if give_up else BACKOFF.delay_s(row.attempts),
        }
        async with engine.begin() as db:
            await db.execute(FAILED, params)
        metrics.count(metrics.CALLBACKS, 1, "given_up" if give_up else "retried")
        log = logger.warning if give_up else logger.info
        log("callback %s of task %s, attempt %d: %s", row.id, row.body["data"]["id"], row.attempts, exc)
        return
    async with engine.begin() as db:
        await db.execute(DELIVERED, {"id": row.id})
    metrics.count(metrics.CALLBACKS, 1, "delivered")


async def _post(http: httpx.AsyncClient, settings: Settings, row: Row[Any]) -> None:
    if settings.callback_secret is None:
        raise Refused("CALLBACK_SECRET is not set: an unsigned callback is never sent")
    try:
        allowed_host(row.url, settings.callback_allowed_hosts)  # the list may have changed since
    except NotAllowed as exc:
        raise Refused(str(exc), final=True) from None
    body = canonical(row.body)
    headers = signed_headers(settings.callback_secret.get_secret_value(), str(row.id), row.now, body)
    try:
        # Streamed: a receiver's answer is read no further than the first bytes the error keeps.
        async with http.stream("POST", row.url, content=body, headers=headers) as response:
            if response.is_success:
                return
            answer = await _start_of(response)
    except httpx.HTTPError as exc:
        raise Refused(f"{type(exc).__name__}: {exc}") from None
    # 410 Gone: the receiver says it wants no more (as Standard Webhooks senders take it).
    raise Refused(f"answered {response.status_code}: {answer}", final=response.status_code == 410)


async def _start_of(response: httpx.Response) -> str:
    seen = b""
    async for chunk in response.aiter_raw():
        seen += chunk
        if len(seen) >= ERROR_BYTES:
            break
    return seen[:ERROR_BYTES].decode("utf-8", "replace")
