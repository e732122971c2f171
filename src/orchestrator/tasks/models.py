"""The `tasks` and `task_events` tables: current state and append-only history."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Enum,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from uuid_utils.compat import uuid7

from orchestrator.callbacks.models import Callback
from orchestrator.db import Base, Timestamped, string_enum
from orchestrator.tasks.status import TaskStatus


def status_type(name: str) -> Enum:
    return string_enum(TaskStatus, name, length=16)


# The foreign key from a task to its lead: a write that names a lead deleted meanwhile breaks it.
LEAD_KEY = "fk_tasks_lead_id_leads"


class Task(Timestamped, Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    type: Mapped[str] = mapped_column(String(100))
    status: Mapped[TaskStatus] = mapped_column(status_type("status"), server_default=TaskStatus.PENDING.value)
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    lead_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    # A workflow step's number, given under the workflow's row lock: ids come from the clocks of
    # the hosts that recorded them, and cannot order steps.
    step: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(server_default=text("3"))
    timeout_s: Mapped[float | None]
    run_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[dt.datetime | None]
    # Tasks sharing a key never run at once, and run in the order they were recorded.
    concurrency_key: Mapped[str | None] = mapped_column(String(200))
    # The schedule and the tick it was made for: one task per tick, by the unique index below.
    # No foreign key: deleting a schedule must not rewrite (and lock) every task it ever made;
    # its tasks keep its id.
    schedule_id: Mapped[uuid.UUID | None]
    scheduled_for: Mapped[dt.datetime | None]
    # The W3C traceparent of the request that wrote it: each attempt's run continues that trace.
    trace_context: Mapped[str | None] = mapped_column(String(100))
    # Where its end is POSTed: a trigger records a callback each time it becomes final.
    callback_url: Mapped[str | None] = mapped_column(String(2048))

    # Loaded only when asked for (selectinload): a lazy load would be hidden I/O in async code.
    history: Mapped[list[TaskEvent]] = relationship(order_by="TaskEvent.id", lazy="raise", viewonly=True)
    children: Mapped[list[Task]] = relationship(order_by="Task.step", lazy="raise", viewonly=True)
    callbacks: Mapped[list[Callback]] = relationship(
        order_by="Callback.created_at", lazy="raise", viewonly=True
    )

    __mapper_args__ = {"eager_defaults": True}
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
        # The reconciler's scans: waiting tasks in run_at order (a page read without sorting them
        # all), and running ones for lease expiry. Partial, so finished tasks cost them nothing.
        Index("ix_tasks_due", "run_at", "id", postgresql_where=text("status IN ('PENDING', 'RETRY')")),
        Index("ix_tasks_processing", "id", postgresql_where=text("status = 'PROCESSING'")),
        # GET /tasks?status=FAILED|CANCELLED pages by id: few rows, never the happy path's cost.
        Index("ix_tasks_ended_badly", "id", postgresql_where=text("status IN ('FAILED', 'CANCELLED')")),
        # GET /tasks?type= pages newest first within the type: a rare type's page is found
        # without walking every task's id.
        Index("ix_tasks_type_id", "type", "id"),
        Index("ix_tasks_lead_id", "lead_id"),
        Index("ix_tasks_parent_id", "parent_id"),
        Index(
            "uq_tasks_parent_id_step",
            "parent_id",
            "step",
            unique=True,
            postgresql_where=text("parent_id IS NOT NULL"),
        ),
        Index("ix_tasks_created_at_id", "created_at", "id"),
        # A claim's look at a key: its running task, else its first waiting one.
        Index(
            "ix_tasks_concurrency_key",
            "concurrency_key",
            "created_at",
            "id",
            postgresql_where=text(
                "concurrency_key IS NOT NULL AND status IN ('PENDING', 'RETRY', 'PROCESSING')"
            ),
        ),
        Index(
            "uq_tasks_schedule_id_scheduled_for",
            "schedule_id",
            "scheduled_for",
            unique=True,
            postgresql_where=text("schedule_id IS NOT NULL"),
        ),
        # Retention's scan: the oldest finished tasks first, without reading the waiting ones.
        Index(
            "ix_tasks_finished_at",
            "finished_at",
            postgresql_where=text("status IN ('COMPLETED', 'FAILED', 'CANCELLED')"),
        ),
    )


class TaskEvent(Base):
    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    from_status: Mapped[TaskStatus | None] = mapped_column(status_type("from_status"))
    to_status: Mapped[TaskStatus] = mapped_column(status_type("to_status"))
    attempt: Mapped[int] = mapped_column(server_default=text("0"))
    at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    worker_id: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any] | None]

    __table_args__ = (Index("ix_task_events_task_id_id", "task_id", "id"),)


class TaskEffect(Base):
    """A side effect a task performed (or is performing, until the claiming transaction ends)."""

    __tablename__ = "task_effects"

    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    attempt: Mapped[int]
    at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
