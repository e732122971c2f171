"""Submitting a task: its row and first event inside the caller's transaction, the SAQ job after commit.

The row is the outbox record. If the enqueue after commit is lost (Redis down, process killed),
the reconciler finds the due task missing from Redis and enqueues it again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from sqlalchemy import Double, bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from uuid_utils.compat import uuid7

from orchestrator.tasks.models import Task

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterable

    from litestar import Request
    from saq.queue import Queue
    from sqlalchemy.ext.asyncio import AsyncSession

logger = logging.getLogger(__name__)

RUN_TASK = "run_task"


@dataclass(frozen=True)
class Delivery:
    """What SAQ needs to deliver one attempt of a task."""

    task_id: uuid.UUID
    attempts: int
    run_at: dt.datetime | None = None

    @property
    def job_key(self) -> str:
        # One key per attempt: re-enqueueing the same attempt is a no-op in SAQ, while the next
        # attempt never collides with the job still finishing the previous one.
        return f"{self.task_id}:{self.attempts}"


# (none) -> PENDING: the task row and its first event in one statement, one round trip.
_RECORD = select(Task).from_statement(
    text(
        """
        WITH task AS (
            INSERT INTO tasks (id, type, status, payload, attempts, max_attempts, lead_id, parent_id,
                               timeout_s, run_at)
            VALUES (:id, :type, 'PENDING', :payload, 0, :max_attempts, :lead_id, :parent_id, :timeout_s,
                    coalesce(:run_at, now()))
            RETURNING *
        ), event AS (
            INSERT INTO task_events (task_id, from_status, to_status, attempt)
            SELECT id, NULL, 'PENDING', 0 FROM task
        )
        SELECT * FROM task
        """
    )
    .bindparams(
        bindparam("payload", type_=JSONB),
        bindparam("run_at", type_=TIMESTAMP(timezone=True)),
        bindparam("timeout_s", type_=Double),
    )
    .columns(*Task.__table__.columns)
)


async def record_task(
    session: AsyncSession,
    *,
    type: str,
    payload: dict[str, Any],
    max_attempts: int,
    lead_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
    run_at: dt.datetime | None = None,
    timeout_s: float | None = None,
) -> Task:
    """Insert a PENDING task and its first event in the session's transaction; the caller commits."""
    params = {
        "id": uuid7(),
        "type": type,
        "payload": payload,
        "max_attempts": max_attempts,
        "lead_id": lead_id,
        "parent_id": parent_id,
        "timeout_s": timeout_s,
        "run_at": run_at,
    }
    task: Task = (await session.scalars(_RECORD, params)).one()
    return task


async def enqueue(queue: Queue, deliveries: Iterable[Delivery], job_ttl_s: int) -> int:
    """Hand deliveries to SAQ; returns how many were new to Redis. Redis errors are logged, not raised."""
    results = await asyncio.gather(
        *(_enqueue_one(queue, delivery, job_ttl_s) for delivery in deliveries), return_exceptions=True
    )
    failures = [result for result in results if isinstance(result, RedisError | OSError)]
    if failures:
        logger.warning("%d enqueue(s) failed (%s); the reconciler will retry", len(failures), failures[0])
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, RedisError | OSError):
            raise result
    return sum(1 for result in results if result is True)


async def _enqueue_one(queue: Queue, delivery: Delivery, job_ttl_s: int) -> bool:
    scheduled = 0
    if delivery.run_at is not None and delivery.run_at > dt.datetime.now(dt.UTC):
        scheduled = math.ceil(delivery.run_at.timestamp())
    job = await queue.enqueue(
        RUN_TASK,
        key=delivery.job_key,
        task_id=str(delivery.task_id),
        scheduled=scheduled,
        # Attempts, timeouts and retries live in PostgreSQL and in run_task, not in SAQ: its
        # defaults (10 s timeout, one attempt) would cut long jobs short or drop failures.
        timeout=0,
        retries=1,
        heartbeat=0,
        ttl=job_ttl_s,
    )
    return job is not None


def deliver_after_response(request: Request[Any, Any, Any], *tasks: Task) -> None:
    """Enqueue these tasks once the response is sent, which is after the request's transaction
    committed. A rolled-back task is harmless: its job finds no row to claim."""
    pending: list[Delivery] = request.state.get(_DELIVERIES_KEY) or []
    pending.extend(Delivery(task.id, task.attempts, task.run_at) for task in tasks)
    request.state[_DELIVERIES_KEY] = pending


async def deliver(request: Request[Any, Any, Any]) -> None:
    """The app's after_response hook."""
    pending: list[Delivery] | None = request.state.get(_DELIVERIES_KEY)
    if pending:
        app_state = request.app.state
        await enqueue(app_state.queue, pending, app_state.settings.saq_job_ttl_s)


_DELIVERIES_KEY = "task_deliveries"
