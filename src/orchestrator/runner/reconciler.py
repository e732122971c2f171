"""The reconciler: repairs the gap between PostgreSQL (the truth) and Redis (the queue).

Every worker process runs the loop; a transaction-scoped advisory lock lets one of them act
per round, so any number of workers can run and any of them can die.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from saq.job import Status
from sqlalchemy import text

from orchestrator.idempotency import forget_expired
from orchestrator.queue import Delivery, enqueue
from orchestrator.tasks.transitions import expire_leases

if TYPE_CHECKING:
    from saq.queue.redis import RedisQueue
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

LOCK_KEY = 0x6F7263686573  # "orches": one reconciler at a time across all workers

LEAD = text("SELECT pg_try_advisory_xact_lock(:key)")

# Due tasks untouched for a few seconds: fresh ones were just enqueued by whoever wrote them,
# and checking each against Redis under load would cost the workers a quarter of their time.
DUE = text(
    """
    SELECT id, attempts FROM tasks
    WHERE status IN ('PENDING', 'RETRY') AND run_at <= now() - make_interval(secs => :grace_s)
      AND updated_at <= now() - make_interval(secs => :grace_s)
    ORDER BY run_at LIMIT :limit
    """
)


async def reconcile_once(
    engine: AsyncEngine, queue: RedisQueue, settings: Settings, limit: int = 5000
) -> int:
    """One round: expire lost leases, then deliver again every due task whose delivery Redis lost
    or holds stuck. Returns how many were enqueued; 0 when another process leads this round."""
    async with engine.begin() as db:  # committed on its own: a Redis outage must not undo it
        if not await db.scalar(LEAD, {"key": LOCK_KEY}):
            return 0
        await expire_leases(db)
        await forget_expired(db)
        params = {"limit": limit, "grace_s": settings.reconcile_grace_s}
        due = [Delivery(row.id, row.attempts) for row in await db.execute(DUE, params)]
    if not due:
        return 0
    redeliver = await _undelivered(queue, due, settings.reconcile_grace_s)
    enqueued = await enqueue(queue, redeliver, settings.saq_job_ttl_s) if redeliver else 0
    if enqueued:
        logger.info("reconciler: delivered %d task(s) again", enqueued)
    return enqueued


async def _undelivered(queue: RedisQueue, due: list[Delivery], grace_s: float) -> list[Delivery]:
    """The due tasks Redis will not run: job missing, scheduled for later than the task is due
    (a retry by hand of a cancelled task), or ACTIVE for over `grace_s` while the task was never
    claimed (its worker died between dequeue and claim). Stuck jobs are finished in SAQ so the
    key frees up."""
    async with queue.redis.pipeline(transaction=False) as pipe:
        for delivery in due:
            # The incomplete set holds every queued, scheduled and running SAQ job.
            pipe.zscore(queue.namespace("incomplete"), queue.job_id(delivery.job_key))
        scores = await pipe.execute()
    now = time.time()
    # A job dequeued a moment ago is ACTIVE before its claim commits, while our PENDING row was
    # read: judging it then would abort a live run and deliver it twice.
    dequeued_before_ms = (now - grace_s) * 1000
    missing = [delivery for delivery, score in zip(due, scores, strict=True) if score is None]
    held = [delivery for delivery, score in zip(due, scores, strict=True) if score is not None]
    stale_later = {
        d.job_key for d, score in zip(due, scores, strict=True) if score is not None and score > now
    }
    jobs = await queue.jobs(delivery.job_key for delivery in held) if held else []
    for delivery, job in zip(held, jobs, strict=True):
        if job is None:
            continue
        stuck = job.status == Status.ACTIVE and (job.started or 0) < dequeued_before_ms
        if stuck or delivery.job_key in stale_later:
            await queue.finish(job, Status.ABORTED, error="not claimed in time; delivered again")
            missing.append(delivery)
    return missing


async def reconcile_forever(engine: AsyncEngine, queue: RedisQueue, settings: Settings) -> None:
    while True:
        try:
            await reconcile_once(engine, queue, settings)
        except asyncio.CancelledError:
            raise
        except Exception:  # PostgreSQL or Redis away: try again next round, never die
            logger.warning("reconciler round failed", exc_info=True)
        await asyncio.sleep(settings.reconcile_interval_s)
