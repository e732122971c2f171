"""The `api_keys` table and the scopes a key can have."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column
from uuid_utils.compat import uuid7

from orchestrator.db import Base, string_enum


class Scope(StrEnum):
    """Each scope includes the ones before it: admin can write, write can read."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def allows(self, needed: Scope) -> bool:
        order = list(Scope)
        return order.index(self) >= order.index(needed)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[Scope] = mapped_column(string_enum(Scope, "scope", length=8))
    # SHA-256 of the whole key: the key is 256 random bits, so a fast hash is as strong as a slow
    # one here and costs microseconds, not the tens of milliseconds of a password hash per request.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the key, to tell keys apart in listings and logs without the secret.
    prefix: Mapped[str] = mapped_column(String(16))
    rate_limit: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    __table_args__ = (
        # A name picks one live key (for revoke); a revoked key's name can be used again.
        Index("uq_api_keys_live_name", "name", unique=True, postgresql_where=text("revoked_at IS NULL")),
    )
