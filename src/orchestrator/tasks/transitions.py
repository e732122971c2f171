"""Every status change of a task, each one explicit SQL statement.

Each statement names the transition it performs, checks in its WHERE the statuses it may leave
(and, for a worker, the attempt it holds), and appends its task_events row in the same statement.
A duplicate, late or zombie delivery therefore updates nothing and gets no row back.
`status.ALLOWED_FROM` is the state machine these statements implement; a test runs every
statement from every status and checks it against that table.

Rows are locked FOR NO KEY UPDATE (what the UPDATE itself takes), never FOR UPDATE: a handler's
transaction holding a row that references the task (a claimed effect, a step it records) must
not block a cancel or a lease renewal of the same task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ARRAY, Double, Integer, Text, Uuid, bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from uuid_utils.compat import uuid7

from orchestrator import metrics, tracing
from orchestrator.metrics import TaskEvent
from orchestrator.tasks.models import Task
from orchestrator.tasks.status import TaskStatus

if TYPE_CHECKING:
    import datetime as dt
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
    run_at: dt.datetime
    updated_at: dt.datetime
    trace_context: str | None
    concurrency_key: str | None

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
            run_at=row.run_at,
            updated_at=row.updated_at,
            trace_context=row.trace_context,
            concurrency_key=row.concurrency_key,
        )


# What every single-task transition returns: the task as it left it, and the status it had.
_MOVED = """t.id, t.type, t.status, old.status AS from_status, t.payload, t.attempts, t.max_attempts,
              t.timeout_s, t.lead_id, t.parent_id, t.run_at, t.updated_at, t.trace_context,
              t.concurrency_key"""


def _with_event(update: str) -> TextClause:
    """`update` (an UPDATE of one task) returning the task as it left it, and its task_events row,
    in one statement."""
    return text(f"""
        WITH moved AS ({update}
            RETURNING {_MOVED}
        ), event AS (
            INSERT INTO task_events (task_id, from_status, to_status, attempt, worker_id, detail)
            SELECT id, from_status, status, attempts, :worker, CAST(:detail AS JSONB) FROM moved
        )
        SELECT * FROM moved
    """)  # noqa: S608  (both fragments are constants of this module)


# A new task as its statement returns it: in the model's order, which .columns() matches by
# position (not the table's order, which depends on the migrations that added columns).
_TASK_COLUMNS = f"SELECT {', '.join(column.name for column in Task.__table__.columns)} FROM task"  # noqa: S608  (the model's names)

# (none) -> PENDING: the task row and its first event in one statement, one round trip.
RECORD = select(Task).from_statement(
    text(
        f"""
        WITH task AS (
            INSERT INTO tasks (id, type, status, payload, attempts, max_attempts, lead_id, parent_id,
                               step, timeout_s, run_at, trace_context, concurrency_key, callback_url)
            VALUES (:id, :type, 'PENDING', :payload, 0, :max_attempts, :lead_id, :parent_id, :step,
                    :timeout_s, coalesce(:run_at, now()), :trace_context, :concurrency_key, :callback_url)
            RETURNING *
        ), event AS (
            INSERT INTO task_events (task_id, from_status, to_status, attempt)
            SELECT id, NULL, 'PENDING', 0 FROM task
        )
        {_TASK_COLUMNS}
        """  # noqa: S608  (constants of this module)
    )
    .bindparams(
        bindparam("payload", type_=JSONB),
        bindparam("run_at", type_=TIMESTAMP(timezone=True)),
        bindparam("timeout_s", type_=Double),
        bindparam("step", type_=Integer),
        bindparam("trace_context", type_=Text),
        bindparam("concurrency_key", type_=Text),
        bindparam("callback_url", type_=Text),
    )
    .columns(*Task.__table__.columns)
)


# (none) -> PENDING for many tasks, and their first events, in one statement: a batch submit.
RECORD_MANY = select(Task).from_statement(
    text(
        f"""
        WITH task AS (
            INSERT INTO tasks (id, type, status, payload, attempts, max_attempts, lead_id, run_at, timeout_s,
                               trace_context, concurrency_key, callback_url)
            SELECT id, type, 'PENDING', CAST(payload AS JSONB), 0, max_attempts, lead_id,
                   coalesce(run_at, now()), timeout_s, CAST(:trace_context AS TEXT), concurrency_key,
                   callback_url
            FROM unnest(:ids, :types, :payloads, :max_attempts, :lead_ids, :run_ats, :timeouts, :keys,
                        :callback_urls)
                AS given (id, type, payload, max_attempts, lead_id, run_at, timeout_s, concurrency_key,
                          callback_url)
            RETURNING *
        ), event AS (
            INSERT INTO task_events (task_id, from_status, to_status, attempt)
            SELECT id, NULL, 'PENDING', 0 FROM task
        )
        {_TASK_COLUMNS}
        """  # noqa: S608  (constants of this module)
    )
    .bindparams(
        bindparam("ids", type_=ARRAY(Uuid)),
        bindparam("types", type_=ARRAY(Text)),
        bindparam("payloads", type_=ARRAY(Text)),
        bindparam("max_attempts", type_=ARRAY(Integer)),
        bindparam("lead_ids", type_=ARRAY(Uuid)),
        bindparam("run_ats", type_=ARRAY(TIMESTAMP(timezone=True))),
        bindparam("timeouts", type_=ARRAY(Double)),
        bindparam("keys", type_=ARRAY(Text)),
        bindparam("callback_urls", type_=ARRAY(Text)),
    )
    .columns(*Task.__table__.columns)
)


@dataclass(frozen=True)
class NewTask:
    """One task of a batch, as `record_many` takes it."""

    type: str
    payload: dict[str, Any]
    max_attempts: int
    lead_id: uuid.UUID | None = None
    run_at: dt.datetime | None = None
    timeout_s: float | None = None
    concurrency_key: str | None = None
    callback_url: str | None = None


async def record_many(session: AsyncSession, new: list[NewTask]) -> list[Task]:
    """PENDING tasks and their first events, in the order given; the caller commits."""
    ids = [uuid7() for _ in new]
    params = {
        "ids": ids,
        "types": [task.type for task in new],
        "payloads": [json.dumps(task.payload) for task in new],
        "max_attempts": [task.max_attempts for task in new],
        "lead_ids": [task.lead_id for task in new],
        "run_ats": [task.run_at for task in new],
        "timeouts": [task.timeout_s for task in new],
        "keys": [task.concurrency_key for task in new],
        "callback_urls": [task.callback_url for task in new],
        "trace_context": tracing.traceparent(),
    }
    by_id = {task.id: task for task in (await session.scalars(RECORD_MANY, params)).all()}
    for task in new:
        metrics.task_event(task.type, TaskEvent.SUBMITTED)
    return [by_id[task_id] for task_id in ids]


# (none) -> PENDING for a schedule's tick, due at the tick: nothing when that tick already has
# its task (the unique index on schedule_id, scheduled_for), whoever recorded it.
RECORD_TICK = text(
    """
    WITH task AS (
        INSERT INTO tasks (id, type, status, payload, attempts, max_attempts, lead_id, run_at,
                           schedule_id, scheduled_for, callback_url)
        VALUES (:id, :type, 'PENDING', CAST(:payload AS JSONB), 0, :max_attempts, :lead_id, :tick,
                :schedule_id, :tick, :callback_url)
        ON CONFLICT (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL DO NOTHING
        RETURNING id, attempts, run_at, updated_at
    ), event AS (
        INSERT INTO task_events (task_id, from_status, to_status, attempt, detail)
        SELECT id, NULL, 'PENDING', 0, jsonb_build_object('schedule_id', CAST(:schedule_id AS TEXT))
        FROM task
    )
    SELECT id, attempts, run_at, updated_at FROM task
    """
).bindparams(
    bindparam("tick", type_=TIMESTAMP(timezone=True)),
    bindparam("schedule_id", type_=Uuid),
    bindparam("callback_url", type_=Text),
)


async def record_tick(
    db: Executor,
    *,
    schedule_id: uuid.UUID,
    tick: dt.datetime,
    type: str,
    payload: dict[str, Any],
    max_attempts: int,
    lead_id: uuid.UUID | None,
    callback_url: str | None = None,
) -> Row[Any] | None:
    """The task of a schedule's tick (id, attempts, run_at, updated_at), or None when that tick
    had one already."""
    params = {
        "id": uuid7(),
        "schedule_id": schedule_id,
        "tick": tick,
        "type": type,
        "payload": json.dumps(payload),
        "max_attempts": max_attempts,
        "lead_id": lead_id,
        "callback_url": callback_url,
    }
    row = (await db.execute(RECORD_TICK, params)).first()
    if row is not None:
        metrics.task_event(type, TaskEvent.SUBMITTED)
    return row


def recorded_with(write: str, *, lead_column: str) -> TextClause:
    """(none) -> PENDING for a task about the row `write` (an INSERT or UPDATE of one row,
    RETURNING the row's columns) leaves, in the same statement: the row, the task and its
    first event in one round trip. The task's payload is `{"lead_id": ...}` from `lead_column`
    of that row, and its concurrency key `lead:<id>` (two syncs of one lead never race, and
    run in the order of the writes); a write that leaves no row records no task. Returns the
    row's columns, then the task's as task_id, task_attempts."""
    return text(f"""
        WITH written AS ({write}
        ), task AS (
            INSERT INTO tasks (id, type, status, payload, attempts, max_attempts, lead_id, run_at,
                               trace_context, concurrency_key)
            SELECT :task_id, :task_type, 'PENDING',
                   jsonb_build_object('lead_id', written.{lead_column}::text), 0, :task_max_attempts,
                   written.{lead_column}, now(), CAST(:trace_context AS TEXT),
                   'lead:' || written.{lead_column}::text
            FROM written
            RETURNING id, attempts
        ), event AS (
            INSERT INTO task_events (task_id, from_status, to_status, attempt)
            SELECT id, NULL, 'PENDING', 0 FROM task
        )
        SELECT written.*, task.id AS task_id, task.attempts AS task_attempts FROM written, task
    """)  # noqa: S608  (the caller's constant statement and column)


# PROCESSING -> RETRY: the attempt failed and another is left; due again after the backoff.
RETRY = _with_event("""
    UPDATE tasks AS t SET status = 'RETRY', updated_at = now(), error = :error,
        run_at = now() + make_interval(secs => :delay_s), lease_until = NULL
    FROM (SELECT id, status FROM tasks WHERE id = :id FOR NO KEY UPDATE) AS old
    WHERE t.id = old.id AND t.status = 'PROCESSING' AND t.attempts = :attempt""")

# PROCESSING -> FAILED: attempts exhausted, or a permanent error.
FAIL = _with_event("""
    UPDATE tasks AS t SET status = 'FAILED', updated_at = now(), error = :error, finished_at = now(),
        lease_until = NULL
    FROM (SELECT id, status FROM tasks WHERE id = :id FOR NO KEY UPDATE) AS old
    WHERE t.id = old.id AND t.status = 'PROCESSING' AND t.attempts = :attempt""")

# PROCESSING -> PENDING: a worker hands its task back, the attempt not counted: it is shutting
# down (due now), or it does not know the task's type (a rolling deploy: due after :delay_s).
RELEASE = _with_event("""
    UPDATE tasks AS t SET status = 'PENDING', updated_at = now(), attempts = t.attempts - 1,
        run_at = now() + make_interval(secs => :delay_s), lease_until = NULL, worker_id = NULL
    FROM (SELECT id, status FROM tasks WHERE id = :id FOR NO KEY UPDATE) AS old
    WHERE t.id = old.id AND t.status = 'PROCESSING' AND t.attempts = :attempt""")

# PROCESSING -> PENDING: a workflow waits for its step. The run is counted in attempts and the
# budget grows by one, so waiting never exhausts it; due after :delay_s, or when the step ends.
SUSPEND = _with_event("""
    UPDATE tasks AS t SET status = 'PENDING', updated_at = now(), max_attempts = t.max_attempts + 1,
        -- A wake-up that landed while it ran (WAKE moved run_at past the claim) makes it due now.
        run_at = CASE WHEN old.run_at > old.updated_at THEN now()
                      ELSE now() + make_interval(secs => :delay_s) END,
        lease_until = NULL, worker_id = NULL
    FROM (SELECT id, status, run_at, updated_at FROM tasks WHERE id = :id FOR NO KEY UPDATE) AS old
    WHERE t.id = old.id AND t.status = 'PROCESSING' AND t.attempts = :attempt""")

# PENDING | RETRY | PROCESSING -> CANCELLED: a running handler sees it at its next heartbeat.
CANCEL = _with_event("""
    UPDATE tasks AS t SET status = 'CANCELLED', updated_at = now(), finished_at = now(), lease_until = NULL
    FROM (SELECT id, status FROM tasks WHERE id = :id FOR NO KEY UPDATE) AS old
    WHERE t.id = old.id AND t.status IN ('PENDING', 'RETRY', 'PROCESSING')""")

# PENDING | RETRY | PROCESSING -> CANCELLED for every step under a cancelled task, however deep
# (a workflow's steps may be workflows): a running step's handler stops at its next heartbeat,
# and a step recorded a moment before the cancel is cancelled before any worker claims it.
CANCEL_STEPS = text(
    """
    WITH RECURSIVE steps AS (
        SELECT id FROM tasks WHERE parent_id = :id
        UNION
        SELECT t.id FROM tasks AS t JOIN steps ON t.parent_id = steps.id
    ), old AS (
        SELECT id, status FROM tasks
        WHERE id IN (SELECT id FROM steps) AND status IN ('PENDING', 'RETRY', 'PROCESSING')
        ORDER BY id FOR NO KEY UPDATE
    ), moved AS (
        UPDATE tasks AS t SET status = 'CANCELLED', updated_at = now(), finished_at = now(),
            lease_until = NULL
        FROM old
        WHERE t.id = old.id AND t.status IN ('PENDING', 'RETRY', 'PROCESSING')
        RETURNING t.id, old.status AS from_status, t.status, t.attempts
    ), event AS (
        INSERT INTO task_events (task_id, from_status, to_status, attempt, detail)
        SELECT id, from_status, status, attempts, CAST(:detail AS JSONB) FROM moved
    )
    SELECT id FROM moved
    """
)

# FAILED | CANCELLED -> PENDING: a manual retry, with a fresh set of attempts.
REQUEUE = _with_event("""
    UPDATE tasks AS t SET status = 'PENDING', updated_at = now(),
        max_attempts = t.attempts + :fresh_attempts, run_at = now(), error = NULL, finished_at = NULL,
        result = NULL, lease_until = NULL, worker_id = NULL
    FROM (SELECT id, status FROM tasks WHERE id = :id FOR NO KEY UPDATE) AS old
    WHERE t.id = old.id AND t.status IN ('FAILED', 'CANCELLED')""")

# PROCESSING -> RETRY | FAILED for every task whose worker stopped renewing its lease (killed,
# frozen, partitioned): FAILED when that was its last attempt. The guard is the expired lease; a
# worker that comes back finds its attempt no longer PROCESSING and writes nothing.
EXPIRE_LEASES = text(
    """
    WITH moved AS (
        UPDATE tasks AS t
        SET status = CASE WHEN t.attempts >= t.max_attempts THEN 'FAILED' ELSE 'RETRY' END,
            error = 'worker lost: lease expired at ' || t.lease_until::text,
            finished_at = CASE WHEN t.attempts >= t.max_attempts THEN now() END,
            run_at = now(), lease_until = NULL, updated_at = now()
        WHERE t.status = 'PROCESSING' AND t.lease_until < now()
        RETURNING t.id, t.type, t.status, t.attempts, t.worker_id, t.parent_id
    ), event AS (
        INSERT INTO task_events (task_id, from_status, to_status, attempt, worker_id, detail)
        SELECT id, 'PROCESSING', status, attempts, worker_id, '{"error": "lease expired"}'::jsonb FROM moved
    )
    SELECT id, type, attempts, status, parent_id FROM moved
    """
)


async def record(
    session: AsyncSession,
    *,
    type: str,
    payload: dict[str, Any],
    max_attempts: int,
    lead_id: uuid.UUID | None = None,
    parent_id: uuid.UUID | None = None,
    step: int | None = None,
    run_at: dt.datetime | None = None,
    timeout_s: float | None = None,
    concurrency_key: str | None = None,
    callback_url: str | None = None,
) -> Task:
    """A new PENDING task and its first event, in the session's transaction; the caller commits.
    The id is a uuid7 from this host's clock: unique, but not an order to rely on (`step` is)."""
    params = {
        "id": uuid7(),
        "type": type,
        "payload": payload,
        "max_attempts": max_attempts,
        "lead_id": lead_id,
        "parent_id": parent_id,
        "step": step,
        "timeout_s": timeout_s,
        "run_at": run_at,
        "trace_context": tracing.traceparent(),
        "concurrency_key": concurrency_key,
        "callback_url": callback_url,
    }
    task: Task = (await session.scalars(RECORD, params)).one()
    metrics.task_event(type, TaskEvent.SUBMITTED)
    return task


async def move(
    db: Executor,
    statement: TextClause,
    task_id: uuid.UUID,
    *,
    worker: str | None = None,
    detail: dict[str, Any] | None = None,
    **params: Any,
) -> Moved | None:
    """Run one single-task transition statement; None when its guard refused it."""
    values = {"id": task_id, "worker": worker, "detail": json.dumps(detail) if detail is not None else None}
    row = (await db.execute(statement, values | params)).first()
    return Moved.from_row(row) if row is not None else None


@dataclass(frozen=True)
class Expired:
    outcomes: list[tuple[str, str]]
    """(type, RETRY or FAILED) of each task whose lease expired."""
    again: list[tuple[uuid.UUID, int]]
    """(task id, attempts) of those that will run again."""
    ended_steps_of: list[uuid.UUID]
    """Workflows whose step failed for good: to be woken."""


async def expire_leases(db: Executor) -> Expired:
    """Expire every lost lease."""
    rows = (await db.execute(EXPIRE_LEASES)).all()
    return Expired(
        outcomes=[(row.type, row.status) for row in rows],
        again=[(row.id, row.attempts) for row in rows if row.status == "RETRY"],
        ended_steps_of=[
            row.parent_id for row in rows if row.status == "FAILED" and row.parent_id is not None
        ],
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
# Gated (:gated), it leaves alone a task with a concurrency key or of a limited type (:limited)
# and names it in `held`: those are claimed by `runner.limits`, under its locks. Its times are
# the statement's, not its transaction's: a claim under limits may have waited for a lock.
CLAIM_MANY = text(
    """
    WITH wanted AS (
        SELECT t.id, t.status FROM tasks AS t
        WHERE t.id = ANY(CAST(:ids AS UUID[])) AND t.status IN ('PENDING', 'RETRY')
          AND t.run_at <= statement_timestamp()
          AND NOT (:gated AND (t.concurrency_key IS NOT NULL OR t.type = ANY(CAST(:limited AS TEXT[]))))
        ORDER BY t.id FOR NO KEY UPDATE
    ), moved AS (
        UPDATE tasks AS t SET status = 'PROCESSING', updated_at = statement_timestamp(),
            attempts = t.attempts + 1, started_at = coalesce(t.started_at, statement_timestamp()),
            worker_id = :worker, lease_until = statement_timestamp() + make_interval(secs => :lease_s)
        FROM wanted AS w
        WHERE t.id = w.id AND t.status IN ('PENDING', 'RETRY')
        RETURNING t.id, t.type, t.status, w.status AS from_status, t.payload, t.attempts, t.max_attempts,
                  t.timeout_s, t.lead_id, t.parent_id, t.run_at, t.updated_at, t.trace_context,
                  t.concurrency_key
    ), event AS (
        INSERT INTO task_events (task_id, from_status, to_status, attempt, worker_id, at)
        SELECT id, from_status, status, attempts, :worker, updated_at FROM moved
    ), held AS (
        SELECT array_agg(t.id) AS ids FROM tasks AS t
        WHERE :gated AND t.id = ANY(CAST(:ids AS UUID[])) AND t.status IN ('PENDING', 'RETRY')
          AND t.run_at <= statement_timestamp()
          AND (t.concurrency_key IS NOT NULL OR t.type = ANY(CAST(:limited AS TEXT[])))
    )
    SELECT moved.*, held.ids AS held FROM held LEFT JOIN moved ON true
    """
)


@dataclass(frozen=True)
class Claimed:
    moved: list[Moved | None]
    """Per id asked for: the task claimed, or None (not due, taken, finished, or held)."""
    held: list[uuid.UUID]
    """Due tasks left for a claim under limits (a concurrency key, a limited type)."""


async def claim_many(
    db: Executor, ids: list[uuid.UUID], worker: str, lease_s: float, limited: list[str] | None = None
) -> Claimed:
    """Claim each task; with `limited` (the limited types), hold back those with a concurrency
    key or of such a type."""
    params = {
        "ids": list(set(ids)),
        "worker": worker,
        "lease_s": lease_s,
        "gated": limited is not None,
        "limited": limited or [],
    }
    rows = (await db.execute(CLAIM_MANY, params)).all()
    moved = {row.id: Moved.from_row(row) for row in rows if row.id is not None}
    held = list(rows[0].held or []) if rows else []
    # The same id twice in one batch (a duplicate delivery) is claimed once: the first caller wins.
    return Claimed([moved.pop(task_id, None) for task_id in ids], held)


# No status change: due tasks a limit holds back stay due, in their place in line; updated_at
# says they were looked at (the reconciler leaves them to the worker that delivers them again).
HOLD_BACK = text(
    """
    UPDATE tasks AS t SET updated_at = statement_timestamp()
    FROM (SELECT id FROM tasks WHERE id = ANY(CAST(:ids AS UUID[])) ORDER BY id FOR NO KEY UPDATE) AS held
    WHERE t.id = held.id AND t.status IN ('PENDING', 'RETRY')
    RETURNING t.id, t.attempts
    """
)


# The first due tasks waiting behind a key, or (no key) of a type: the ones a slot just freed.
NEXT_IN_LINE = text(
    """
    SELECT id, attempts FROM tasks
    WHERE status IN ('PENDING', 'RETRY') AND run_at <= statement_timestamp()
      AND CASE WHEN CAST(:key AS TEXT) IS NOT NULL THEN concurrency_key = :key ELSE type = :type END
    ORDER BY created_at, id LIMIT :limit
    """
)


async def next_in_line(db: Executor, key: str | None, type_: str, limit: int) -> list[Row[Any]]:
    return list((await db.execute(NEXT_IN_LINE, {"key": key, "type": type_, "limit": limit})).all())


async def hold_back(db: Executor, ids: list[uuid.UUID]) -> list[Row[Any]]:
    """Stamp each task held back; the rows (id, attempts) still waiting, to deliver again."""
    return list((await db.execute(HOLD_BACK, {"ids": ids})).all())


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
    SELECT id, attempts FROM moved
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
    # Keyed by attempt too: an old attempt's late write and the new one's may share a batch.
    moved = {(row.id, row.attempts) for row in await db.execute(COMPLETE_MANY, params)}
    return [(task_id, attempt) in moved for task_id, attempt, _ in done]


# A waiting task (a workflow, one of whose steps has ended) is made due now. A running one keeps
# its status and claim time (updated_at) and gets a run_at past its claim, by the clock of this
# moment (now() is the transaction's start, which may precede the claim): SUSPEND then finds the
# wake-up instead of losing it. A task already due is matched too, so that its row stays locked
# until the caller commits and a claim cannot read the workflow's steps before the step's end
# is visible.
WAKE = text(
    """
    UPDATE tasks AS t SET
        run_at = CASE WHEN t.status = 'PROCESSING'
                      THEN greatest(clock_timestamp(), t.updated_at + interval '1 microsecond')
                      ELSE least(t.run_at, now()) END,
        updated_at = CASE WHEN t.status = 'PENDING' THEN now() ELSE t.updated_at END
    FROM (SELECT id, run_at FROM tasks WHERE id = :id FOR NO KEY UPDATE) AS old
    WHERE t.id = old.id AND t.status IN ('PENDING', 'PROCESSING')
    RETURNING t.id, t.attempts, t.status, old.run_at > now() AS was_waiting
    """
)


async def wake(db: Executor, task_id: uuid.UUID) -> int | None:
    """Make a waiting task due now; its attempt count (for the delivery) when it was waiting."""
    row = (await db.execute(WAKE, {"id": task_id})).first()
    return int(row.attempts) if row is not None and row.status == "PENDING" and row.was_waiting else None


async def heartbeat(db: Executor, task_id: uuid.UUID, attempt: int, lease_s: float) -> bool:
    row = (await db.execute(HEARTBEAT, {"id": task_id, "attempt": attempt, "lease_s": lease_s})).first()
    return row is not None


# How often a task was handed back by a worker that did not know its type (a rolling deploy).
HAND_BACKS = text("SELECT count(*) FROM task_events WHERE task_id = :id AND detail ? 'hand_back'")


async def hand_backs(db: Executor, task_id: uuid.UUID) -> int:
    return int(await db.scalar(HAND_BACKS, {"id": task_id}) or 0)


# Seconds until a waiting task is due, by the database's clock: 0 when due now (it became due
# since a claim found it not yet due), None when it is not waiting (taken, finished, gone).
DUE_IN = text(
    "SELECT greatest(0, extract(epoch FROM run_at - now())) FROM tasks"
    " WHERE id = :id AND status IN ('PENDING', 'RETRY')"
)


async def due_in(db: Executor, task_id: uuid.UUID) -> float | None:
    seconds = await db.scalar(DUE_IN, {"id": task_id})
    return float(seconds) if seconds is not None else None


async def cancel_steps(db: Executor, task_id: uuid.UUID, detail: dict[str, Any]) -> int:
    """Cancel every unfinished step under `task_id`; how many were."""
    return len((await db.execute(CANCEL_STEPS, {"id": task_id, "detail": json.dumps(detail)})).all())
