"""Retention: finished tasks older than TASK_RETENTION are deleted, with their events, effects
and email deliveries (the foreign keys cascade), a workflow with its steps, in bounded batches;
one round a minute across every process and host, by PostgreSQL's clock, each batch its own
short transaction."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from sqlalchemy import text

from orchestrator import metrics
from orchestrator.runner.reconciler import lead_round

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

INTERVAL_S = 60.0
BATCH = 500  # roots: with their trees, a batch may hold some more tasks
BATCHES_PER_ROUND = 20  # a backlog of old tasks goes over several rounds, never in one long one

# Whole trees go at once, by their root: a workflow and its steps (nested ones too) leave in one
# transaction, so that no workflow is ever seen without the steps it ran (a retry of it would
# run them again). A root is a task with no parent, finished before the cutoff; locked, and
# skipped when locked (a retry through the API that holds it wins). Then every task of its tree.
ROOTS_AND_TREES = text(
    """
    WITH RECURSIVE roots AS (
        SELECT id FROM tasks
        WHERE parent_id IS NULL AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')
          AND finished_at < now() - make_interval(secs => :keep_s)
          -- A callback still to deliver keeps its task (steps have none): it is given up at last.
          AND NOT EXISTS (SELECT 1 FROM callbacks AS c WHERE c.task_id = tasks.id
                          AND c.delivered_at IS NULL AND c.given_up_at IS NULL)
        ORDER BY finished_at LIMIT :batch
        FOR UPDATE SKIP LOCKED
    ), tree AS (
        SELECT id, id AS root FROM roots
        UNION ALL
        SELECT c.id, tree.root FROM tasks AS c JOIN tree ON c.parent_id = tree.id
    )
    SELECT id, root FROM tree
    """
)
# The trees' tasks locked (skipped when another transaction holds one), each checked on its
# locked row: finished before the cutoff.
LOCK_TREES = text(
    """
    SELECT id FROM tasks
    WHERE id = ANY(CAST(:ids AS UUID[])) AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')
      AND finished_at < now() - make_interval(secs => :keep_s)
    ORDER BY id FOR UPDATE SKIP LOCKED
    """
)
# The roots; their trees follow by the foreign keys' ON DELETE CASCADE, as do events, effects
# and email deliveries.
DELETE_ROOTS = text("DELETE FROM tasks WHERE id = ANY(CAST(:roots AS UUID[]))")


async def retention_once(engine: AsyncEngine, keep_s: float, interval_s: float = INTERVAL_S) -> int | None:
    """One round: how many tasks went; None when this interval's round is another process's."""
    if await lead_round(engine, "retention", interval_s) is None:
        return None
    deleted = 0
    for _ in range(BATCHES_PER_ROUND):
        async with engine.begin() as db:
            roots, gone = await _delete_batch(db, keep_s)
        deleted += gone
        metrics.count(metrics.RETENTION_DELETED, gone)
        if roots < BATCH:
            break
    if deleted:
        logger.info("retention: deleted %d finished task(s) older than %g s", deleted, keep_s)
    return deleted


async def _delete_batch(db: AsyncConnection, keep_s: float) -> tuple[int, int]:
    """(roots looked at, tasks deleted): a tree goes whole, or not at all (a task of it not
    finished, finished too recently, or held by another transaction)."""
    rows = (await db.execute(ROOTS_AND_TREES, {"keep_s": keep_s, "batch": BATCH})).all()
    trees: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for row in rows:
        trees[row.root].append(row.id)
    if not trees:
        return 0, 0
    params = {"ids": [row.id for row in rows], "keep_s": keep_s}
    ready = set((await db.execute(LOCK_TREES, params)).scalars())
    whole = [root for root, members in trees.items() if ready.issuperset(members)]
    if whole:
        await db.execute(DELETE_ROOTS, {"roots": whole})
    return len(trees), sum(len(trees[root]) for root in whole)


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
