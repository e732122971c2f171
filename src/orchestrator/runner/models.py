"""`reconciler_rounds`: when the last reconciler round started, by PostgreSQL's clock; and
`rate_windows`: each rate-limited job type's starts in its current window."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import String
from sqlalchemy.dialects.postgresql import ARRAY, TIMESTAMP
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.db import Base


class ReconcilerRound(Base):
    __tablename__ = "reconciler_rounds"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    started_at: Mapped[dt.datetime]
    # Where the last round's scan of due tasks stopped (none: the next one starts over).
    due_after_run_at: Mapped[dt.datetime | None]
    due_after_id: Mapped[uuid.UUID | None]


class RateWindow(Base):
    __tablename__ = "rate_windows"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    starts: Mapped[list[dt.datetime]] = mapped_column(ARRAY(TIMESTAMP(timezone=True)))
