"""Every statement of tasks/transitions.py, run from every status against real PostgreSQL.

Each statement may move a task only along an edge of the state machine (`ALLOWED_FROM`), every
edge is some statement's, each move writes its history row, and a statement fenced by the
attempt changes nothing for a worker that no longer holds it (a zombie).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from orchestrator.tasks import transitions
from orchestrator.tasks.status import ALLOWED_FROM, TaskStatus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from sqlalchemy.ext.asyncio import AsyncConnection

WORKER = "test-host:1"
HELD = 2  # the attempt a PROCESSING task's worker holds in these tests


@dataclass(frozen=True)
class Statement:
    name: str
    run: Callable[[AsyncConnection, uuid.UUID, int], Awaitable[Any]]
    moves_from: frozenset[TaskStatus]
    moves_to: frozenset[TaskStatus]
    fenced: bool  # guarded by the attempt its worker holds
    leaves: str  # SQL, true of the row the statement moved (it started as _task_in made it)


async def _one(db: AsyncConnection, statement: Any, task_id: uuid.UUID, attempt: int, **params: Any) -> Any:
    return await transitions.move(db, statement, task_id, worker=WORKER, attempt=attempt, **params)


PROCESSING = frozenset({TaskStatus.PROCESSING})
PENDING = frozenset({TaskStatus.PENDING})
STATEMENTS = [
    Statement(
        "claim",
        lambda db, task_id, _: transitions.claim_many(db, [task_id], WORKER, 30.0),
        frozenset({TaskStatus.PENDING, TaskStatus.RETRY}),
        frozenset({TaskStatus.PROCESSING}),
        fenced=False,
        leaves=(
            "attempts = 3 AND worker_id = 'test-host:1' AND lease_until > now() AND started_at IS NOT NULL"
        ),
    ),
    Statement(
        "complete",
        lambda db, task_id, attempt: transitions.complete_many(db, [(task_id, attempt, "{}")], WORKER),
        PROCESSING,
        frozenset({TaskStatus.COMPLETED}),
        fenced=True,
        leaves=(
            "result = '{}'::jsonb AND error IS NULL AND finished_at IS NOT NULL AND "
            "lease_until IS NULL AND attempts = 2"
        ),
    ),
    Statement(
        "retry",
        lambda db, task_id, attempt: _one(db, transitions.RETRY, task_id, attempt, error="e", delay_s=0),
        PROCESSING,
        frozenset({TaskStatus.RETRY}),
        fenced=True,
        leaves=(
            "error = 'e' AND run_at <= now() AND lease_until IS NULL AND finished_at IS NULL AND attempts = 2"
        ),
    ),
    Statement(
        "fail",
        lambda db, task_id, attempt: _one(db, transitions.FAIL, task_id, attempt, error="e"),
        PROCESSING,
        frozenset({TaskStatus.FAILED}),
        fenced=True,
        leaves="error = 'e' AND finished_at IS NOT NULL AND lease_until IS NULL AND attempts = 2",
    ),
    Statement(
        "release",
        lambda db, task_id, attempt: _one(db, transitions.RELEASE, task_id, attempt, delay_s=0),
        PROCESSING,
        PENDING,
        fenced=True,
        leaves=(
            "attempts = 1 AND max_attempts = 5 AND run_at <= now() AND lease_until IS NULL AND "
            "worker_id IS NULL"
        ),
    ),
    Statement(
        "suspend",
        lambda db, task_id, attempt: _one(db, transitions.SUSPEND, task_id, attempt, delay_s=60),
        PROCESSING,
        PENDING,
        fenced=True,
        leaves=(
            "attempts = 2 AND max_attempts = 6 AND run_at > now() + interval '50 seconds' AND "
            "lease_until IS NULL AND worker_id IS NULL"
        ),
    ),
    Statement(
        "cancel",
        lambda db, task_id, _: transitions.move(db, transitions.CANCEL, task_id),
        frozenset({TaskStatus.PENDING, TaskStatus.RETRY, TaskStatus.PROCESSING}),
        frozenset({TaskStatus.CANCELLED}),
        fenced=False,
        leaves="finished_at IS NOT NULL AND lease_until IS NULL",
    ),
    Statement(
        "requeue",
        lambda db, task_id, _: transitions.move(db, transitions.REQUEUE, task_id, fresh_attempts=3),
        frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED}),
        PENDING,
        fenced=False,
        leaves=(
            "max_attempts = 5 AND run_at <= now() AND error IS NULL AND result IS NULL AND "
            "finished_at IS NULL AND lease_until IS NULL AND worker_id IS NULL"
        ),
    ),
    Statement(
        "expire leases",
        lambda db, _, __: transitions.expire_leases(db),
        PROCESSING,
        frozenset({TaskStatus.RETRY, TaskStatus.FAILED}),
        fenced=False,
        leaves=(
            "error LIKE 'worker lost: lease expired at %' AND run_at <= now() AND "
            "lease_until IS NULL AND finished_at IS NULL"
        ),
    ),
]


@pytest.fixture
async def db(settings, client) -> AsyncIterator[AsyncConnection]:
    """A connection in autocommit, as the workers use; `client` empties the tables first."""
    engine = create_async_engine(settings.sqlalchemy_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            yield connection
    finally:
        await engine.dispose()


async def _task_in(db: AsyncConnection, status: TaskStatus, *, attempts: int = HELD) -> uuid.UUID:
    """A task as it stands in `status`: due, and (when PROCESSING) with an expired lease, so that
    every statement that could take it can."""
    task_id = uuid.uuid4()
    # Every column a statement must set or clear holds something else first.
    await db.execute(
        text(
            "INSERT INTO tasks (id, type, status, attempts, max_attempts, run_at, lease_until, worker_id,"
            " error, result, finished_at)"
            " VALUES (:id, 'noop', :status, :attempts, 5, now() - interval '1 minute',"
            " CASE WHEN :processing THEN now() - interval '1 minute' END, 'old-worker', 'old error',"
            " '{\"old\": 1}', CASE WHEN :processing THEN NULL ELSE now() END)"
        ),
        {"id": task_id, "status": status.value, "attempts": attempts, "processing": status == "PROCESSING"},
    )
    return task_id


async def _state(db: AsyncConnection, task_id: uuid.UUID) -> tuple[TaskStatus, list[tuple[Any, Any]]]:
    status = await db.scalar(text("SELECT status FROM tasks WHERE id = :id"), {"id": task_id})
    events = await db.execute(
        text("SELECT from_status, to_status FROM task_events WHERE task_id = :id ORDER BY id"),
        {"id": task_id},
    )
    return TaskStatus(status), [tuple(row) for row in events]


@pytest.mark.parametrize("statement", STATEMENTS, ids=lambda statement: statement.name)
async def test_a_statement_moves_only_along_the_state_machine_and_records_each_move(db, statement):
    moved_from = set()
    for status in TaskStatus:
        task_id = await _task_in(db, status)
        await statement.run(db, task_id, HELD)
        after, events = await _state(db, task_id)
        if after == status and not events:
            continue
        moved_from.add(status)
        assert after in statement.moves_to, f"{statement.name} moved {status} -> {after}"
        left = await db.scalar(text(f"SELECT {statement.leaves} FROM tasks WHERE id = :id"), {"id": task_id})  # noqa: S608
        assert left, f"{statement.name} from {status} left the row not as {statement.leaves!r}"
        assert status in ALLOWED_FROM[after], f"{statement.name} moved {status} -> {after}"
        assert events == [(status.value, after.value)], f"{statement.name} from {status}: {events}"
    assert moved_from == statement.moves_from


def test_the_statements_implement_every_edge_of_the_state_machine_and_no_other():
    implemented = {(o, t) for s in STATEMENTS for o in s.moves_from for t in s.moves_to}
    allowed = {(origin, target) for target, origins in ALLOWED_FROM.items() for origin in origins}
    assert implemented == allowed


async def test_record_creates_a_pending_task_and_its_first_event(settings, db):
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            task = await transitions.record(session, type="noop", payload={"echo": 1}, max_attempts=2)
    finally:
        await engine.dispose()
    assert (task.status, task.attempts, task.max_attempts, task.payload) == (
        TaskStatus.PENDING,
        0,
        2,
        {"echo": 1},
    )
    assert await _state(db, task.id) == (TaskStatus.PENDING, [(None, "PENDING")])


@pytest.mark.parametrize(
    "statement", [s for s in STATEMENTS if s.fenced], ids=lambda statement: statement.name
)
async def test_a_fenced_statement_changes_nothing_for_an_attempt_the_worker_no_longer_holds(db, statement):
    task_id = await _task_in(db, TaskStatus.PROCESSING)
    await statement.run(db, task_id, HELD - 1)  # a zombie of the previous attempt
    assert await _state(db, task_id) == (TaskStatus.PROCESSING, [])


async def test_heartbeat_renews_only_the_lease_of_the_attempt_it_holds(db):
    task_id = await _task_in(db, TaskStatus.PROCESSING)
    assert not await transitions.heartbeat(db, task_id, HELD - 1, 30.0)
    assert await transitions.heartbeat(db, task_id, HELD, 30.0)
    lease_left = await db.scalar(
        text("SELECT extract(epoch FROM lease_until - now()) FROM tasks WHERE id = :id"), {"id": task_id}
    )
    assert 25 < lease_left <= 30
    for status in set(TaskStatus) - PROCESSING:
        assert not await transitions.heartbeat(db, await _task_in(db, status), HELD, 30.0)


async def test_a_lease_expires_into_failed_on_the_last_attempt_and_retry_before_it(db):
    last = await _task_in(db, TaskStatus.PROCESSING, attempts=5)
    earlier = await _task_in(db, TaskStatus.PROCESSING, attempts=4)
    expired = await transitions.expire_leases(db)
    assert expired.again == [(earlier, 4)]
    assert (await _state(db, last))[0] == TaskStatus.FAILED
    assert (await _state(db, earlier))[0] == TaskStatus.RETRY


async def test_a_live_lease_does_not_expire(db):
    task_id = await _task_in(db, TaskStatus.PROCESSING)
    await db.execute(
        text("UPDATE tasks SET lease_until = now() + interval '1 minute' WHERE id = :id"), {"id": task_id}
    )
    assert (await transitions.expire_leases(db)).again == []
    assert await _state(db, task_id) == (TaskStatus.PROCESSING, [])


async def test_wake_makes_only_a_waiting_pending_task_due(db):
    waiting = await _task_in(db, TaskStatus.PENDING)
    await db.execute(
        text("UPDATE tasks SET run_at = now() + interval '1 hour' WHERE id = :id"), {"id": waiting}
    )
    assert await transitions.wake(db, waiting) == HELD
    assert await transitions.wake(db, waiting) is None  # already due
    for status in set(TaskStatus) - {TaskStatus.PENDING}:
        assert await transitions.wake(db, await _task_in(db, status)) is None


async def test_cancel_steps_cancels_every_unfinished_step_however_deep_and_only_those(db):
    parent = await _task_in(db, TaskStatus.CANCELLED)
    steps = {status: await _task_in(db, status) for status in TaskStatus}
    grandchild = await _task_in(db, TaskStatus.PENDING)
    stranger = await _task_in(db, TaskStatus.PENDING)  # another task's: never touched
    for step in steps.values():
        await db.execute(text("UPDATE tasks SET parent_id = :p WHERE id = :id"), {"p": parent, "id": step})
    nested = {"p": steps[TaskStatus.PROCESSING], "id": grandchild}
    await db.execute(text("UPDATE tasks SET parent_id = :p WHERE id = :id"), nested)

    assert await transitions.cancel_steps(db, parent, {"by": "test"}) == 4
    for status, step in steps.items():
        after, events = await _state(db, step)
        if status in (TaskStatus.PENDING, TaskStatus.RETRY, TaskStatus.PROCESSING):
            assert (after, events) == (TaskStatus.CANCELLED, [(status.value, "CANCELLED")])
        else:
            assert (after, events) == (status, [])
    assert (await _state(db, grandchild))[0] == TaskStatus.CANCELLED
    assert await _state(db, stranger) == (TaskStatus.PENDING, [])
