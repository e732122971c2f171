"""Every status change of a task: one guarded UPDATE plus its task_events row, in one statement.

Each statement locks the row, checks the status it may leave (and, for a worker, the attempt
it claimed) in its WHERE, and appends the history row in the same statement. A duplicate, late
or zombie delivery therefore updates nothing and gets no row back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from orchestrator.tasks.status import TaskStatus

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.engine import Row
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
    from sqlalchemy.sql.elements import TextClause

    Executor = AsyncConnection | AsyncSession


@dataclass(frozen=True)
class Moved:
    """The task as a transition left it."""

    id: uuid.UUID
    type: str
    status: TaskStatus
    from_status: TaskStatus
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    timeout_s: float | None
    lead_id: uuid.UUID | None
    parent_id: uuid.UUID | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Moved:
        return cls(
            id=row.id,
            type=row.type,
            status=TaskStatus(row.status),
            from_status=TaskStatus(row.from_status),
            payload=row.payload,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            timeout_s=row.timeout_s,
            lead_id=row.lead_id,
            parent_id=row.parent_id,
        )


@dataclass(frozen=True)
class Transition:
    """One guarded statement: `to` from any of `allowed`, plus `set_clause` and an extra `guard`."""

    to: TaskStatus
    allowed: frozenset[TaskStatus]
    set_clause: str
    guard: str = ""

    @cached_property
    def statement(self) -> TextClause:
        return text(f"""
            WITH moved AS (
                UPDATE tasks AS t SET status = :to, updated_at = now(), {self.set_clause}
                FROM (SELECT id, status FROM tasks WHERE id = :id FOR UPDATE) AS old
                WHERE t.id = old.id AND t.status = ANY(:allowed) {self.guard}
                RETURNING t.id, t.type, t.status, old.status AS from_status, t.payload, t.attempts,
                          t.max_attempts, t.timeout_s, t.lead_id, t.parent_id
            ), event AS (
                INSERT INTO task_events (task_id, from_status, to_status, attempt, worker_id, detail)
                SELECT id, from_status, status, attempts, :worker, CAST(:detail AS JSONB) FROM moved
            )
            SELECT * FROM moved
        """)  # noqa: S608  (fragments are constants of this module)


P, R, X = TaskStatus.PENDING, TaskStatus.RETRY, TaskStatus.PROCESSING
MINE = "AND t.attempts = :attempt"  # only the worker holding this attempt; a zombie matches nothing

# PROCESSING -> RETRY: due again after the backoff.
RETRY = Transition(
    R,
    frozenset({X}),
    "error = :error, run_at = now() + make_interval(secs => :delay_s), lease_until = NULL",
    MINE,
)
# PROCESSING -> FAILED: attempts exhausted, or a permanent error.
FAIL = Transition(
    TaskStatus.FAILED, frozenset({X}), "error = :error, finished_at = now(), lease_until = NULL", MINE
)
# PROCESSING -> PENDING: a worker shutting down hands its task back; the attempt is not counted.
RELEASE = Transition(
    P, frozenset({X}), "attempts = t.attempts - 1, run_at = now(), lease_until = NULL, worker_id = NULL", MINE
)
# PROCESSING -> PENDING: a workflow waits for its step. The run is counted in attempts and the
# budget grows by one, so waiting never exhausts it; due after :delay_s, or when the step ends.
SUSPEND = Transition(
    P,
    frozenset({X}),
    "max_attempts = t.max_attempts + 1, run_at = now() + make_interval(secs => :delay_s),"
    " lease_until = NULL, worker_id = NULL",
    MINE,
)
# PENDING | RETRY | PROCESSING -> CANCELLED: a running handler sees it at its next heartbeat.
CANCEL = Transition(TaskStatus.CANCELLED, frozenset({P, R, X}), "finished_at = now(), lease_until = NULL")
# FAILED | CANCELLED -> PENDING: a manual retry, with a fresh set of attempts.
REQUEUE = Transition(
    P,
    frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED}),
    "max_attempts = t.attempts + :fresh_attempts, run_at = now(), error = NULL, finished_at = NULL,"
    " result = NULL, lease_until = NULL, worker_id = NULL",
)
# No status change: the worker holding this attempt renews its lease. No row back means the
# task was cancelled or presumed lost, and the handler must stop.
HEARTBEAT = text(
    """
    UPDATE tasks SET lease_until = now() + make_interval(secs => :lease_s)
    WHERE id = :id AND status = 'PROCESSING' AND attempts = :attempt
    RETURNING id
    """
)


# PENDING | RETRY -> PROCESSING for many due tasks at once: the claims of concurrent deliveries in
# one statement. Rows are locked in id order so that two overlapping batches cannot deadlock.
CLAIM_MANY = text(
    """
    WITH wanted AS (
        SELECT t.id, t.status FROM tasks AS t
        WHERE t.id = ANY(CAST(:ids AS UUID[])) AND t.status IN ('PENDING', 'RETRY') AND t.run_at <= now()
        ORDER BY t.id FOR UPDATE
    ), moved AS (
        UPDATE tasks AS t SET status = 'PROCESSING', updated_at = now(), attempts = t.attempts + 1,
            started_at = coalesce(t.started_at, now()), worker_id = :worker,
            lease_until = now() + make_interval(secs => :lease_s)
        FROM wanted AS w
        WHERE t.id = w.id AND t.status IN ('PENDING', 'RETRY')
        RETURNING t.id, t.type, t.status, w.status AS from_status, t.payload, t.attempts, t.max_attempts,
                  t.timeout_s, t.lead_id, t.parent_id
    ), event AS (
        INSERT INTO task_events (task_id, from_status, to_status, attempt, worker_id)
        SELECT id, from_status, status, attempts, :worker FROM moved
    )
    SELECT * FROM moved
    """
)


async def claim_many(db: Executor, ids: list[uuid.UUID], worker: str, lease_s: float) -> list[Moved | None]:
    """Claim each task; None where it was not due, already taken, cancelled or finished."""
    params = {"ids": list(set(ids)), "worker": worker, "lease_s": lease_s}
    moved = {row.id: Moved.from_row(row) for row in await db.execute(CLAIM_MANY, params)}
    # The same id twice in one batch (a duplicate delivery) is claimed once: the first caller wins.
    return [moved.pop(task_id, None) for task_id in ids]


# PROCESSING -> COMPLETED for many tasks at once, each guarded by the attempt its worker holds.
# The worker funnels concurrent completions through this: one statement and one commit for all.
COMPLETE_MANY = text(
    """
    WITH done AS (
        SELECT * FROM unnest(CAST(:ids AS UUID[]), CAST(:attempts AS INT[]), CAST(:results AS TEXT[]))
            AS d(id, attempt, result)
    ), moved AS (
        UPDATE tasks AS t SET status = 'COMPLETED', updated_at = now(), result = CAST(d.result AS JSONB),
            error = NULL, finished_at = now(), lease_until = NULL
        FROM done AS d
        WHERE t.id = d.id AND t.status = 'PROCESSING' AND t.attempts = d.attempt
        RETURNING t.id, t.attempts
    ), event AS (
        INSERT INTO task_events (task_id, from_status, to_status, attempt, worker_id)
        SELECT id, 'PROCESSING', 'COMPLETED', attempts, :worker FROM moved
    )
    SELECT id FROM moved
    """
)


async def complete_many(db: Executor, done: list[tuple[uuid.UUID, int, str]], worker: str) -> list[bool]:
    """Complete each (task id, attempt, JSON result); True where the guard let it through."""
    params = {
        "ids": [task_id for task_id, _, _ in done],
        "attempts": [attempt for _, attempt, _ in done],
        "results": [result for _, _, result in done],
        "worker": worker,
    }
    moved = {row.id for row in await db.execute(COMPLETE_MANY, params)}
    return [task_id in moved for task_id, _, _ in done]


async def move(
    db: Executor,
    transition: Transition,
    task_id: uuid.UUID,
    *,
    worker: str | None = None,
    detail: dict[str, Any] | None = None,
    **params: Any,
) -> Moved | None:
    """Run one transition statement; None when the guard refused it."""
    row = (
        await db.execute(
            transition.statement,
            {
                "id": task_id,
                "to": transition.to.value,
                "allowed": [status.value for status in transition.allowed],
                "worker": worker,
                "detail": json.dumps(detail) if detail is not None else None,
                **params,
            },
        )
    ).first()
    return Moved.from_row(row) if row is not None else None


# A waiting PENDING task (a workflow) becomes due now: one of its steps has ended.
WAKE = text(
    """
    UPDATE tasks SET run_at = now(), updated_at = now()
    WHERE id = :id AND status = 'PENDING' AND run_at > now()
    RETURNING id, attempts
    """
)


async def wake(db: Executor, task_id: uuid.UUID) -> int | None:
    """Make a waiting task due now; its attempt count (for the delivery) when it was waiting."""
    row = (await db.execute(WAKE, {"id": task_id})).first()
    return int(row.attempts) if row is not None else None


async def heartbeat(db: Executor, task_id: uuid.UUID, attempt: int, lease_s: float) -> bool:
    row = (await db.execute(HEARTBEAT, {"id": task_id, "attempt": attempt, "lease_s": lease_s})).first()
    return row is not None
