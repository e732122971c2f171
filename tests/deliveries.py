"""A task's row and its SAQ job put in the state a crash leaves behind, for the reconciler to find."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from saq.job import Status
from sqlalchemy import text

from orchestrator.db import in_transaction
from orchestrator.queue import make_queue

if TYPE_CHECKING:
    from orchestrator.settings import Settings

DUE_A_MINUTE_AGO = text(
    "UPDATE tasks SET run_at = now() - interval '1 min', updated_at = now() - interval '1 min' WHERE id = :id"
)


async def dequeued_unclaimed(settings: Settings, task_id: str, dequeued_s_ago: float) -> None:
    """The task due and untouched for a minute, its SAQ job taken by a worker `dequeued_s_ago`
    and never claimed: a worker killed between SAQ's dequeue and our claim, or one claiming now."""
    await in_transaction(
        settings, lambda session: session.execute(DUE_A_MINUTE_AGO, {"id": uuid.UUID(task_id)})
    )
    queue = make_queue(settings)
    try:
        job = await queue.job(f"{task_id}:0")
        assert job is not None
        # Due now in SAQ's incomplete set too, whatever run_at the task was submitted with.
        await queue.redis.zadd(queue.namespace("incomplete"), {job.id: 0})
        job.status, job.started = Status.ACTIVE, int((time.time() - dequeued_s_ago) * 1000)
        await queue.redis.set(job.id, queue.serialize(job))
    finally:
        await queue.disconnect()
