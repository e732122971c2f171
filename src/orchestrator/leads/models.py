"""The `leads` table."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column
from uuid_utils.compat import uuid7

from orchestrator.db import Base, Timestamped, string_enum


class LeadStatus(StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    UNQUALIFIED = "unqualified"
    CONVERTED = "converted"
    LOST = "lost"


class Lead(Timestamped, Base):
    __tablename__ = "leads"

    # uuid7: time-ordered, so the primary key is also the stable list order.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    company: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[LeadStatus] = mapped_column(
        string_enum(LeadStatus, "status", length=16),
        server_default=LeadStatus.NEW.value,
    )
    score: Mapped[int | None]
    attributes: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    version: Mapped[int] = mapped_column()

    # SQLAlchemy adds "AND version = :seen" to every UPDATE/DELETE and bumps it: a lost update
    # becomes a StaleDataError instead of silently overwriting another writer.
    # eager_defaults: read server-made columns (timestamps) back through RETURNING, no extra SELECT.
    __mapper_args__ = {"version_id_col": version, "eager_defaults": True}
    __table_args__ = (
        Index("uq_leads_email_lower", func.lower(email), unique=True),
        Index("ix_leads_company", "company"),
        Index("ix_leads_source", "source"),
        Index("ix_leads_status", "status"),
    )
