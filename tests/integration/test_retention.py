"""Retention on backdated rows: what TASK_RETENTION deletes, and everything it must keep."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.runner.retention import retention_once

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncEngine

KEEP_S = 3600.0
OLD, RECENT = 2 * 86400.0, 600.0  # seconds since they finished


@pytest.fixture
async def engine(settings) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(settings.sqlalchemy_url)
    yield made
    await made.dispose()


async def task(
    engine: AsyncEngine,
    status: str,
    finished_s_ago: float | None,
    parent: uuid.UUID | None = None,
    step: int | None = None,
) -> uuid.UUID:
    """A task row as it would stand, with its history, an email delivery and an effect."""
    task_id = uuid.uuid4()
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO tasks (id, type, status, parent_id, step, finished_at) VALUES (:id, 'noop',"
                " :status, :parent, :step, now() - make_interval(secs => CAST(:ago AS FLOAT)))"
            ),
            {"id": task_id, "status": status, "parent": parent, "step": step, "ago": finished_s_ago},
        )
        await db.execute(
            text("INSERT INTO task_events (task_id, from_status, to_status) VALUES (:id, NULL, 'PENDING')"),
            {"id": task_id},
        )
        await db.execute(
            text(
                "INSERT INTO email_deliveries (task_id, message_id, recipient, transport)"
                " VALUES (:id, 'm', 'a@example.com', 'file')"
            ),
            {"id": task_id},
        )
        await db.execute(
            text("INSERT INTO task_effects (task_id, name, attempt) VALUES (:id, 'push', 1)"), {"id": task_id}
        )
    return task_id


async def remaining(engine: AsyncEngine, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    async with engine.connect() as db:
        tasks = set(
            (await db.execute(text("SELECT id FROM tasks WHERE id = ANY(:ids)"), {"ids": ids})).scalars()
        )
        for table in ("task_events", "email_deliveries", "task_effects"):
            rows = await db.execute(
                text(f"SELECT DISTINCT task_id FROM {table} WHERE task_id = ANY(:ids)"),  # noqa: S608
                {"ids": ids},
            )
            assert set(rows.scalars()) == tasks, table  # a task's rows go with it, none is orphaned
    return tasks


async def test_old_finished_tasks_go_with_their_rows_and_nothing_else_does(engine):
    gone = [await task(engine, status, OLD) for status in ("COMPLETED", "FAILED", "CANCELLED")]
    kept = [await task(engine, status, RECENT) for status in ("COMPLETED", "FAILED", "CANCELLED")]
    # Not finished, however old: waiting, running, about to be retried.
    kept += [await task(engine, status, None) for status in ("PENDING", "PROCESSING", "RETRY")]
    kept += [await task(engine, "PENDING", OLD)]  # sent back, and its old finished_at left set

    assert await retention_once(engine, KEEP_S, interval_s=0) >= 3
    assert await remaining(engine, gone + kept) == set(kept)


async def test_a_workflow_goes_whole_with_its_steps_or_not_at_all(engine):
    # Finished long ago, with steps and a nested workflow's steps: all of it goes, in one batch.
    parent = await task(engine, "COMPLETED", OLD)
    nested = await task(engine, "COMPLETED", OLD, parent, 1)
    done = [parent, nested, await task(engine, "COMPLETED", OLD, parent, 2)]
    done += [await task(engine, "FAILED", OLD, nested, step) for step in (1, 2)]
    # Still running, or sent back through the API with an old finished_at left set: it needs its steps.
    running = await task(engine, "PROCESSING", None)
    sent_back = await task(engine, "PENDING", OLD)
    # Finished long ago, but with a step not finished, or one finished recently: it stays whole.
    unfinished_step = await task(engine, "CANCELLED", OLD)
    recent_step = await task(engine, "COMPLETED", OLD)
    recent = await task(engine, "FAILED", RECENT)
    kept = [running, sent_back, unfinished_step, recent_step, recent]
    kept += [await task(engine, "COMPLETED", OLD, parent_id, 1) for parent_id in kept]
    kept += [await task(engine, "PROCESSING", None, unfinished_step, 2)]
    # Its one unfinished step was sent back, and its old finished_at left set.
    step_sent_back = await task(engine, "FAILED", OLD)
    kept += [step_sent_back, await task(engine, "PENDING", OLD, step_sent_back, 1)]
    kept += [await task(engine, "COMPLETED", RECENT, recent_step, 2)]

    await retention_once(engine, KEEP_S, interval_s=0)
    assert await remaining(engine, done + kept) == set(kept)


async def test_a_task_sent_back_while_retention_runs_is_kept(engine):
    failed = await task(engine, "FAILED", OLD)
    async with engine.connect() as retry:
        await retry.execute(
            text("UPDATE tasks SET status = 'PENDING', finished_at = NULL WHERE id = :id"), {"id": failed}
        )
        # The retry holds the row until it commits: retention skips it rather than wait, and
        # it is not deleted.
        async with asyncio.timeout(10):
            await retention_once(engine, KEEP_S, interval_s=0)
        await retry.commit()
    assert await remaining(engine, [failed]) == {failed}


async def test_one_round_an_interval_however_many_processes_try(engine):
    await retention_once(engine, KEEP_S, interval_s=0)  # a round now: the next are within the interval
    rounds = await asyncio.gather(*(retention_once(engine, KEEP_S, interval_s=60) for _ in range(4)))
    assert rounds == [None] * 4
