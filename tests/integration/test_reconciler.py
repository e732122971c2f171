"""The reconciler against real PostgreSQL and Redis: what it delivers again, and what it leaves alone."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from saq.job import Status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.db import in_transaction
from orchestrator.queue import make_queue
from orchestrator.runner.reconciler import reconcile_once, step
from tests.helpers import DUE_A_MINUTE_AGO, dequeued_unclaimed, submit

LATER = "2999-01-01T00:00:00Z"  # never due: only the path under test touches its job
NEXT_ROUND_DUE = text("UPDATE reconciler_rounds SET started_at = '1970-01-01'")


async def _reconcile(settings, task_id: str) -> Status:
    """One reconciler round; the task's SAQ job status after it."""
    engine = create_async_engine(settings.sqlalchemy_url)
    queue = make_queue(settings)
    try:
        await in_transaction(settings, lambda session: session.execute(NEXT_ROUND_DUE))
        assert await reconcile_once(engine, queue, settings) is not None
        job = await queue.job(f"{task_id}:0")
        assert job is not None
        return job.status
    finally:
        await queue.disconnect()
        await engine.dispose()


async def test_a_job_dequeued_a_moment_ago_is_left_to_its_claim(client, settings):
    # The worker's claim is in flight: aborting the job now would run the task twice.
    task_id = await submit(client)
    await dequeued_unclaimed(settings, task_id, dequeued_s_ago=0.05)
    assert await _reconcile(settings, task_id) == Status.ACTIVE


async def test_a_job_active_past_the_grace_without_a_claim_is_delivered_again(client, settings):
    # Its worker died between SAQ's dequeue and our claim.
    task_id = await submit(client)
    await dequeued_unclaimed(settings, task_id, dequeued_s_ago=settings.reconcile_grace_s + 5)
    assert await _reconcile(settings, task_id) == Status.QUEUED


async def _left_active(settings, task_id: str, status: str, attempts: int) -> str:
    """The task's first SAQ job taken by a worker a minute ago and never finished (the worker was
    killed), while the row went on to `status` with `attempts`, also a minute ago."""
    queue = make_queue(settings)
    try:
        job = await queue.job(f"{task_id}:0")
        assert job is not None
        await queue.redis.lrem(queue.namespace("queued"), 0, job.id)
        await queue.redis.lpush(queue.namespace("active"), job.id)
        job.status, job.started = Status.ACTIVE, int((time.time() - 60) * 1000)
        await queue.redis.set(job.id, queue.serialize(job))
    finally:
        await queue.disconnect()
    moved = text(
        "UPDATE tasks SET status = :status, attempts = :attempts, updated_at = now() - interval '1 min'"
        " WHERE id = :id"
    )
    params = {"status": status, "attempts": attempts, "id": uuid.UUID(task_id)}
    await in_transaction(settings, lambda session: session.execute(moved, params))
    return job.id


async def _active_jobs(settings) -> list[str]:
    queue = make_queue(settings)
    try:
        return [job_id.decode() for job_id in await queue.redis.lrange(queue.namespace("active"), 0, -1)]
    finally:
        await queue.disconnect()


@pytest.mark.parametrize(("status", "attempts"), [("COMPLETED", 2), ("RETRY", 1), ("FAILED", 1)])
async def test_a_job_its_killed_worker_left_active_is_finished_once_the_task_went_on(
    client, settings, status, attempts
):
    task_id = await submit(client, "noop", run_at=LATER)
    job_id = await _left_active(settings, task_id, status, attempts)
    await _reconcile(settings, task_id)
    assert job_id not in await _active_jobs(settings)


async def test_the_job_of_the_attempt_that_holds_the_task_stays_active(client, settings):
    task_id = await submit(client, "noop", run_at=LATER)
    job_id = await _left_active(settings, task_id, "PROCESSING", 1)  # claimed: attempt 0 + 1
    assert await _reconcile(settings, task_id) == Status.ACTIVE
    assert job_id in await _active_jobs(settings)


async def test_one_round_leads_per_interval_however_many_processes_try(client, settings):
    # Every worker process of every host runs the loop; PostgreSQL's clock picks one round an
    # interval, not one per process.
    slow = settings.model_copy(update={"reconcile_interval_s": 30.0})
    engine = create_async_engine(settings.sqlalchemy_url)
    queues = [make_queue(settings) for _ in range(6)]
    try:
        await in_transaction(settings, lambda session: session.execute(NEXT_ROUND_DUE))
        led = [await reconcile_once(engine, queue, slow) is not None for queue in queues]
        led += await asyncio.gather(*(_led(engine, queue, slow) for queue in queues))
    finally:
        for queue in queues:
            await queue.disconnect()
        await engine.dispose()
    assert sum(led) == 1


async def _led(engine, queue, settings) -> bool:
    return await reconcile_once(engine, queue, settings) is not None


async def test_a_frozen_round_holder_costs_the_others_a_round_not_their_loop(client, settings):
    # A process frozen (SIGSTOP, a partition) inside its round's first statement keeps the row
    # locked: the others must give up that round at once, not wait on the lock for hours.
    engine = create_async_engine(settings.sqlalchemy_url)
    queue = make_queue(settings)
    try:
        await in_transaction(settings, lambda session: session.execute(NEXT_ROUND_DUE))
        async with engine.connect() as frozen, frozen.begin():
            await frozen.execute(
                text(
                    "INSERT INTO reconciler_rounds (name, started_at) VALUES ('reconcile', now())"
                    " ON CONFLICT (name) DO UPDATE SET started_at = now()"
                )
            )
            async with asyncio.timeout(5):
                assert await reconcile_once(engine, queue, settings) is None
    finally:
        await queue.disconnect()
        await engine.dispose()


async def test_a_round_step_sets_an_idle_in_transaction_timeout(settings):
    # What ends the session of a holder that froze mid-step, however long TCP would take. Only
    # the setting is checked here: no test freezes a real round holder for the 10 s.
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        async with step(engine) as db:
            assert await db.scalar(text("SHOW idle_in_transaction_session_timeout")) == "10s"
            # A holder cut off mid-statement is not idle: TCP keepalives find it gone (over TCP;
            # a Unix socket has none, and PostgreSQL shows 0 there).
            if await db.scalar(text("SELECT inet_server_addr() IS NULL")):
                return
            assert await db.scalar(text("SHOW tcp_keepalives_idle")) == "10"
            assert await db.scalar(text("SHOW tcp_keepalives_interval")) == "5"
            assert await db.scalar(text("SHOW tcp_keepalives_count")) == "3"
    finally:
        await engine.dispose()


async def _due_a_minute_ago(settings, task_id: str) -> str:
    """The task due and untouched for a minute; its SAQ job id."""
    params = {"id": uuid.UUID(task_id)}
    await in_transaction(settings, lambda session: session.execute(DUE_A_MINUTE_AGO, params))
    queue = make_queue(settings)
    try:
        return queue.job_id(f"{task_id}:0")
    finally:
        await queue.disconnect()


async def _queued(settings, job_id: str) -> bool:
    queue = make_queue(settings)
    try:
        return await queue.redis.lpos(queue.namespace("queued"), job_id) is not None
    finally:
        await queue.disconnect()


@pytest.mark.parametrize(
    "data_lost",
    [
        pytest.param(True, id="data-evicted-or-deleted"),
        pytest.param(False, id="in-no-list-a-worker-pops"),
    ],
)
async def test_a_job_redis_partly_lost_is_delivered_again(client, settings, data_lost):
    # Either way its id is still in the incomplete set, which says "will run".
    task_id = await submit(client, "noop")
    job_id = await _due_a_minute_ago(settings, task_id)
    queue = make_queue(settings)
    try:
        await queue.redis.lrem(queue.namespace("queued"), 0, job_id)
        if data_lost:
            await queue.redis.delete(job_id)
    finally:
        await queue.disconnect()
    assert await _reconcile(settings, task_id) == Status.QUEUED
    assert await _queued(settings, job_id)


async def test_due_tasks_rightly_queued_do_not_hide_a_lost_one_behind_the_scan_window(client, settings):
    # A backlog longer than one round's scan, all of it in Redis: a lost task further on is
    # still found, a round or two later, not never.
    backlog = [await submit(client, "noop") for _ in range(3)]
    oldest = text("UPDATE tasks SET run_at = '1990-01-01', updated_at = '1990-01-01' WHERE id = :id")
    for task_id in backlog:
        await in_transaction(
            settings, lambda session, t=task_id: session.execute(oldest, {"id": uuid.UUID(t)})
        )
    lost = await submit(client, "noop")
    right_after = text("UPDATE tasks SET run_at = '1990-01-02', updated_at = '1990-01-02' WHERE id = :id")
    await in_transaction(settings, lambda session: session.execute(right_after, {"id": uuid.UUID(lost)}))
    queue = make_queue(settings)
    job_id = queue.job_id(f"{lost}:0")
    await queue.disconnect()
    queue = make_queue(settings)
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        await queue.redis.lrem(queue.namespace("queued"), 0, job_id)
        await queue.redis.zrem(queue.namespace("incomplete"), job_id)
        await queue.redis.delete(job_id)
        for _ in range(3):
            await in_transaction(settings, lambda session: session.execute(NEXT_ROUND_DUE))
            await reconcile_once(engine, queue, settings, limit=len(backlog))
    finally:
        await queue.disconnect()
        await engine.dispose()
    assert await _queued(settings, job_id)
