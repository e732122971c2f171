"""`schedules`: a task type, payload and cron; the next tick is stamped by PostgreSQL's clock."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column
from uuid_utils.compat import uuid7

from orchestrator.db import Base, Timestamped

NAME_KEY = "uq_schedules_name"


class Schedule(Timestamped, Base):
    __tablename__ = "schedules"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    # Given to each task it makes.
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    # The job type whose module declares it (its fields are the code's), or None (made by the API).
    declared_by: Mapped[str | None] = mapped_column(String(100))
    # The next tick to fire, and the last one fired, both as PostgreSQL's clock counts them.
    next_run_at: Mapped[dt.datetime]
    last_run_at: Mapped[dt.datetime | None]

    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        # The tickers' scan: only enabled schedules, the soonest first.
        Index("ix_schedules_due", "next_run_at", postgresql_where=text("enabled")),
    )
