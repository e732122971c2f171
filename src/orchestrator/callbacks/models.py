"""`callbacks`: the outbox of tasks' ends to POST. A trigger on `tasks` writes a row in the very
transaction that makes a task final, whichever statement or process does it, so no end is
missed; the workers deliver the rows and record each attempt."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.db import Base


class Callback(Base):
    __tablename__ = "callbacks"

    # The message's `webhook-id`: the same for every attempt, so a receiver can drop a repeat.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=func.gen_random_uuid())
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    # The body, as the task was at the moment it became final (a retry of it later is another end).
    body: Mapped[dict[str, Any]]
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    # When it is due next; an attempt under way holds it for the attempt's time limit, so a worker
    # killed mid-POST leaves it due again once that has passed.
    next_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    delivered_at: Mapped[dt.datetime | None]
    given_up_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    @property
    def event(self) -> str:
        return str(self.body.get("type", ""))

    __table_args__ = (
        # The deliverers' scan: undelivered ones, the soonest due first.
        Index(
            "ix_callbacks_due",
            "next_at",
            postgresql_where=text("delivered_at IS NULL AND given_up_at IS NULL"),
        ),
        Index("ix_callbacks_task_id", "task_id"),
    )
