"""The reconciler against real PostgreSQL and Redis: what it delivers again, and what it leaves alone."""

from __future__ import annotations

import time
import uuid

from saq.job import Status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.runner.reconciler import reconcile_once
from orchestrator.runner.worker import make_queue


async def _pending_task_dequeued(client, settings, dequeued_s_ago: float) -> str:
    """A PENDING task, due for a while, whose SAQ job a worker took `dequeued_s_ago` (not yet claimed)."""
    response = await client.post("/tasks", json={"type": "noop", "payload": {}})
    assert response.status_code == 202
    task_id = str(response.json()["id"])
    engine = create_async_engine(settings.sqlalchemy_url)
    async with engine.begin() as db:
        await db.execute(
            text(
                "UPDATE tasks SET run_at = now() - interval '1 min', updated_at = now() - interval '1 min'"
                " WHERE id = :id"
            ),
            {"id": uuid.UUID(task_id)},
        )
    await engine.dispose()
    queue = make_queue(settings)
    try:
        job = await queue.job(f"{task_id}:0")
        assert job is not None
        job.status, job.started = Status.ACTIVE, int((time.time() - dequeued_s_ago) * 1000)
        await queue.redis.set(job.id, queue.serialize(job))
    finally:
        await queue.disconnect()
    return task_id


async def _reconcile(settings, task_id: str) -> Status:
    """One reconciler round; the task's SAQ job status after it."""
    engine = create_async_engine(settings.sqlalchemy_url)
    queue = make_queue(settings)
    try:
        await reconcile_once(engine, queue, settings)
        job = await queue.job(f"{task_id}:0")
        assert job is not None
        return job.status
    finally:
        await queue.disconnect()
        await engine.dispose()


async def test_a_job_dequeued_a_moment_ago_is_left_to_its_claim(client, settings):
    # The worker's claim is in flight: aborting the job now would run the task twice.
    task_id = await _pending_task_dequeued(client, settings, dequeued_s_ago=0.05)
    assert await _reconcile(settings, task_id) == Status.ACTIVE


async def test_a_job_active_past_the_grace_without_a_claim_is_delivered_again(client, settings):
    # Its worker died between SAQ's dequeue and our claim.
    task_id = await _pending_task_dequeued(client, settings, dequeued_s_ago=settings.reconcile_grace_s + 5)
    assert await _reconcile(settings, task_id) == Status.QUEUED
