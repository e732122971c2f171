"""Retention: finished tasks older than TASK_RETENTION are deleted, with their events, effects
and email deliveries (the foreign keys cascade), in bounded batches; one round a minute across
every process and host, by PostgreSQL's clock, each batch its own short transaction."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import text

from orchestrator import metrics

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

INTERVAL_S = 60.0
BATCH = 1000
BATCHES_PER_ROUND = 20  # a backlog of old tasks goes over several rounds, never in one long one

ROUND = text(
    """
    INSERT INTO reconciler_rounds AS r (name, started_at) VALUES ('retention', now())
    ON CONFLICT (name) DO UPDATE SET started_at = now()
    WHERE r.started_at <= now() - make_interval(secs => :interval_s)
    RETURNING started_at
    """
)
# Finished before the cutoff, and: no step left under it (a workflow goes after its steps), and
# not the step of a workflow that is still running or was finished more recently (its steps are
# its record). Locked and skipped when locked: a retry through the API that holds the row wins,
# and the status is checked again on the locked row, so a task sent back meanwhile stays.
DELETE_BATCH = text(
    """
    WITH doomed AS (
        SELECT t.id FROM tasks AS t
        WHERE t.status IN ('COMPLETED', 'FAILED', 'CANCELLED')
          AND t.finished_at < now() - make_interval(secs => :keep_s)
          AND NOT EXISTS (SELECT FROM tasks AS c WHERE c.parent_id = t.id)
          AND (t.parent_id IS NULL OR EXISTS (
                SELECT FROM tasks AS p WHERE p.id = t.parent_id
                AND p.status IN ('COMPLETED', 'FAILED', 'CANCELLED')
                AND p.finished_at < now() - make_interval(secs => :keep_s)))
        ORDER BY t.finished_at LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM tasks WHERE id IN (SELECT id FROM doomed)
    """
)


async def retention_once(engine: AsyncEngine, keep_s: float, interval_s: float = INTERVAL_S) -> int | None:
    """One round: how many tasks went; None when this interval's round is another process's."""
    async with engine.begin() as db:
        if (await db.execute(ROUND, {"interval_s": interval_s})).first() is None:
            return None
    deleted = 0
    for _ in range(BATCHES_PER_ROUND):
        async with engine.begin() as db:
            batch = (await db.execute(DELETE_BATCH, {"keep_s": keep_s, "batch": BATCH})).rowcount
        deleted += batch
        metrics.RETENTION_DELETED.inc(batch)
        if batch < BATCH:
            break
    if deleted:
        logger.info("retention: deleted %d finished task(s) older than %g s", deleted, keep_s)
    return deleted


async def retention_forever(engine: AsyncEngine, settings: Settings) -> None:
    keep_s = settings.task_retention_s
    if keep_s is None:
        return
    while True:
        try:
            await retention_once(engine, keep_s)
        except asyncio.CancelledError:
            raise
        except Exception:  # PostgreSQL away: the next round deletes what this one did not
            logger.warning("retention round failed", exc_info=True)
        await asyncio.sleep(INTERVAL_S)
