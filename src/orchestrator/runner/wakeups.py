"""Waking workflows whose step ended: due now, and delivered, instead of at their next poll."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.queue import Delivery, enqueue
from orchestrator.tasks.transitions import wake

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterable

    from saq.queue import Queue
    from sqlalchemy.ext.asyncio import AsyncEngine


async def wake_workflows(
    engine: AsyncEngine, queue: Queue, workflows: Iterable[uuid.UUID], job_ttl_s: int
) -> None:
    """Each its own statement, after the step's end has committed: the runner's and the
    reconciler's way (the API wakes inside its request's transaction, see tasks.services)."""
    woken = []
    for workflow in workflows:
        async with engine.begin() as db:
            if (attempts := await wake(db, workflow)) is not None:
                woken.append(Delivery(workflow, attempts))
    if woken:
        await enqueue(queue, woken, job_ttl_s)
