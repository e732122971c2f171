"""Opaque keyset cursors: a page ends at a row id, the next page starts after it."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from orchestrator.errors import Unprocessable

if TYPE_CHECKING:
    from sqlalchemy import Select
    from sqlalchemy.ext.asyncio import AsyncSession

RowT = TypeVar("RowT")

# A row id's 16 bytes in unpadded base64url: every string of this form is a position.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{22}$"
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


async def page(
    session: AsyncSession, query: Select[RowT], id_column: Any, cursor: str | None, limit: int
) -> tuple[list[RowT], str | None]:
    """Newest first by a time-ordered id (uuid7): one page of `query` and the cursor after it."""
    query = query.order_by(id_column.desc()).limit(limit + 1)
    if cursor is not None:
        query = query.where(id_column < decode_cursor(cursor))
    rows = list((await session.scalars(query)).all())
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1].id)  # type: ignore[attr-defined]
    return rows, None


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise Unprocessable("cursor is not one this API returned", field="cursor") from None
