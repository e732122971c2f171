"""The reconciler against real PostgreSQL and Redis: what it delivers again, and what it leaves alone."""

from __future__ import annotations

from saq.job import Status
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.queue import make_queue
from orchestrator.runner.reconciler import reconcile_once
from tests.helpers import dequeued_unclaimed, submit


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
    task_id = await submit(client)
    await dequeued_unclaimed(settings, task_id, dequeued_s_ago=0.05)
    assert await _reconcile(settings, task_id) == Status.ACTIVE


async def test_a_job_active_past_the_grace_without_a_claim_is_delivered_again(client, settings):
    # Its worker died between SAQ's dequeue and our claim.
    task_id = await submit(client)
    await dequeued_unclaimed(settings, task_id, dequeued_s_ago=settings.reconcile_grace_s + 5)
    assert await _reconcile(settings, task_id) == Status.QUEUED
