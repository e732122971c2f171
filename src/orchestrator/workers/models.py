"""`workers`: one row per worker process, its heartbeat stamped by PostgreSQL's clock."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, func
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.db import Base


class WorkerRow(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host-pid-nonce, as in tasks.worker_id
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int]
    queue: Mapped[str] = mapped_column(String(200))
    concurrency: Mapped[int]
    running: Mapped[int]
    # Its own beat: a worker is lost after three missed ones, whatever the reader's settings.
    heartbeat_s: Mapped[float]
    started_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    last_seen_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    stopped_at: Mapped[dt.datetime | None]
