"""Create, list, revoke and look up API keys; only a hash of a key is ever stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from orchestrator.auth.models import ApiKey, Scope
from orchestrator.db import in_transaction
from orchestrator.errors import Conflict, NotFound, Unprocessable
from orchestrator.rates import parse_limit

if TYPE_CHECKING:
    from collections.abc import Sequence

    from limits import RateLimitItem
    from sqlalchemy.ext.asyncio import AsyncSession

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "orch_"
KEY_BYTES = 32
KEY_LENGTH = len(KEY_PREFIX) + 43  # 32 bytes in unpadded base64url
SHOWN_CHARS = 12
NAME_MAX_LENGTH = 100
LAST_USED_PRECISION = dt.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Caller:
    """The key a request came with, as the API sees it: never the secret itself."""

    key_id: uuid.UUID
    name: str
    scope: Scope
    rate_limit: RateLimitItem | None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_rate_limit(value: str) -> RateLimitItem:
    """'100/second' or '6000 per minute'; 422 naming what is wrong."""
    try:
        return parse_limit(value)
    except ValueError as exc:
        raise Unprocessable(f"Invalid rate limit: {exc}", field="rate_limit") from None


async def create_key(
    session: AsyncSession, name: str, scope: Scope, rate_limit: str | None = None
) -> tuple[ApiKey, str]:
    """A new key: the row, and the key itself, which is shown once and never stored."""
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH:
        raise Unprocessable(f"A key's name is 1 to {NAME_MAX_LENGTH} characters", field="name")
    if rate_limit is not None:
        parse_rate_limit(rate_limit)
    key = new_key()
    row = await session.scalar(
        pg_insert(ApiKey)
        .values(
            name=name, scope=scope, key_hash=key_hash(key), prefix=key[:SHOWN_CHARS], rate_limit=rate_limit
        )
        .on_conflict_do_nothing(index_elements=["name"], index_where=text("revoked_at IS NULL"))
        .returning(ApiKey)
    )
    if row is None:
        raise Conflict(
            f"A live key is already named {name!r}: revoke it or choose another name", field="name"
        )
    return row, key


async def issue_key(settings: Settings, name: str, scope: Scope, rate_limit: str | None = None) -> str:
    """A new key, in a transaction of its own: for scripts, tests and load runs."""
    _, key = await in_transaction(settings, lambda session: create_key(session, name, scope, rate_limit))
    return key


async def revoke_key(session: AsyncSession, name_or_id: str) -> ApiKey:
    """Revoke the live key with this name or id."""
    try:
        match = ApiKey.id == uuid.UUID(name_or_id)
    except ValueError:
        match = ApiKey.name == name_or_id
    # live -> revoked; a revoked key stays for the record and never comes back.
    row: ApiKey | None = await session.scalar(
        update(ApiKey)
        .where(match, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(ApiKey)
    )
    if row is None:
        raise NotFound(f"No live API key is named {name_or_id!r} or has that id")
    return row


async def list_keys(session: AsyncSession, *, include_revoked: bool = False) -> Sequence[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return (await session.scalars(query)).all()


def well_formed(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and len(key) == KEY_LENGTH


async def load_callers(session: AsyncSession) -> dict[str, Caller]:
    """Every live key, by the hash of the key."""
    rows = await session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)))
    return {row.key_hash: _caller(row, strict=False) for row in rows}


async def record_use(session: AsyncSession, key_id: uuid.UUID) -> None:
    """last_used_at, to the minute: spares a write per request."""
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            ApiKey.last_used_at.is_(None) | (ApiKey.last_used_at < func.now() - LAST_USED_PRECISION),
        )
        .values(last_used_at=func.now())
    )


async def find_caller(session: AsyncSession, key: str) -> Caller | None:
    """The live key `key` is, or None for a wrong, revoked or malformed one."""
    if not well_formed(key):
        return None  # not the shape of our keys: no query
    row = await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == key_hash(key), ApiKey.revoked_at.is_(None))
    )
    return None if row is None else _caller(row)


def _caller(row: ApiKey, *, strict: bool = True) -> Caller:
    """The key as a caller. Not strict: a rate limit that does not parse (written to the table
    by hand) is logged and the key gets the default, rather than every key failing."""
    try:
        limit = parse_rate_limit(row.rate_limit) if row.rate_limit else None
    except Unprocessable:
        if strict:
            raise
        logger.error("API key %r has a rate limit that does not parse: %r", row.name, row.rate_limit)
        limit = None
    return Caller(row.id, row.name, row.scope, limit)
