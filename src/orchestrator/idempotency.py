"""Idempotency keys in PostgreSQL: a key is claimed in the same transaction as what its request
creates, so a retry that races the original waits on the key's unique index until the original
commits, then gets the stored response back. `orchestrator.web.replay` puts this on POSTs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.db import Base
from orchestrator.errors import Conflict, Unprocessable

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

KEY_MAX_LENGTH = 200
RETENTION = dt.timedelta(hours=24)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_MAX_LENGTH), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    headers: Mapped[dict[str, Any] | None]
    body: Mapped[dict[str, Any] | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), index=True)


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    headers: dict[str, str]
    body: dict[str, Any]


def fingerprint(body: Any) -> str:
    """Canonical JSON, so key order and whitespace do not make two equal bodies differ."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


async def claim_key(session: AsyncSession, scope: str, key: str, request_hash: str) -> StoredResponse | None:
    """Reserve `key` for this request (None: go ahead), or return the response it already got."""
    inserted = await session.scalar(
        pg_insert(IdempotencyKey)
        .values(scope=scope, key=key, request_hash=request_hash)
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    )
    if inserted is not None:
        return None
    stored = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
    )
    if stored is None or stored.status_code is None:  # removed or unfinished in between: rare
        raise Conflict(
            "A request with this Idempotency-Key is in progress; retry it", field="Idempotency-Key"
        )
    if stored.request_hash != request_hash:
        raise Unprocessable(
            "Idempotency-Key was already used with a different request body", field="Idempotency-Key"
        )
    return StoredResponse(stored.status_code, stored.headers or {}, stored.body or {})


async def remember_response(session: AsyncSession, scope: str, key: str, response: StoredResponse) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        .values(status_code=response.status_code, headers=response.headers, body=response.body)
    )


async def forget_expired(session: AsyncSession | AsyncConnection) -> None:
    await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < func.now() - RETENTION))
