"""The reconciler: repairs the gap between PostgreSQL (the truth) and Redis (the queue).

Every worker process runs the loop; a transaction-scoped advisory lock lets one of them act
per round, so any number of workers can run and any of them can die.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import text

from orchestrator.idempotency import forget_expired
from orchestrator.tasks.submit import Delivery, enqueue

if TYPE_CHECKING:
    from saq.queue.redis import RedisQueue
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

LOCK_KEY = 0x6F7263686573  # "orches": one reconciler at a time across all workers

# PROCESSING -> RETRY | FAILED for every task whose worker stopped renewing its lease (killed,
# frozen, partitioned). The guard is the expired lease; a worker that comes back finds its
# attempt no longer PROCESSING and writes nothing.
EXPIRE_LEASES = text(
    """
    WITH moved AS (
        UPDATE tasks AS t
        SET status = CASE WHEN t.attempts >= t.max_attempts THEN 'FAILED' ELSE 'RETRY' END,
            error = 'worker lost: lease expired at ' || t.lease_until::text,
            finished_at = CASE WHEN t.attempts >= t.max_attempts THEN now() END,
            run_at = now(), lease_until = NULL, updated_at = now()
        WHERE t.status = 'PROCESSING' AND t.lease_until < now()
        RETURNING t.id, t.status, t.attempts, t.worker_id
    ), event AS (
        INSERT INTO task_events (task_id, from_status, to_status, attempt, worker_id, detail)
        SELECT id, 'PROCESSING', status, attempts, worker_id, '{"error": "lease expired"}'::jsonb FROM moved
    )
    SELECT id, attempts FROM moved WHERE status = 'RETRY'
    """
)

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
    db: AsyncConnection, queue: RedisQueue, settings: Settings, limit: int = 5000
) -> int:
    """One round: expire lost leases, then enqueue every due task Redis does not hold. Returns enqueued."""
    await db.execute(EXPIRE_LEASES)
    await forget_expired(db)
    params = {"limit": limit, "grace_s": settings.reconcile_grace_s}
    due = [Delivery(row.id, row.attempts) for row in await db.execute(DUE, params)]
    if not due:
        return 0
    async with queue.redis.pipeline(transaction=False) as pipe:
        for delivery in due:
            # The incomplete set holds every queued, scheduled and running SAQ job.
            pipe.zscore(queue.namespace("incomplete"), queue.job_id(delivery.job_key))
        scores = await pipe.execute()
    missing = [delivery for delivery, score in zip(due, scores, strict=True) if score is None]
    enqueued = await enqueue(queue, missing, settings.saq_job_ttl_s) if missing else 0
    if enqueued:
        logger.info("reconciler: enqueued %d task(s) Redis did not have", enqueued)
    return enqueued


async def reconcile_forever(engine: AsyncEngine, queue: RedisQueue, settings: Settings) -> None:
    while True:
        try:
            async with engine.begin() as db:
                if await db.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY}):
                    await reconcile_once(db, queue, settings)
        except asyncio.CancelledError:
            raise
        except Exception:  # PostgreSQL or Redis away: try again next round, never die
            logger.warning("reconciler round failed", exc_info=True)
        await asyncio.sleep(settings.reconcile_interval_s)
