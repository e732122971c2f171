"""Opaque keyset cursors: a page ends at a row id, the next page starts after it."""

from __future__ import annotations

import base64
import binascii
import uuid

from orchestrator.errors import Unprocessable

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise Unprocessable("cursor is not one this API returned", field="cursor") from None
