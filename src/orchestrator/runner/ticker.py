"""The schedules' loop in every worker process: fire what is due, then deliver it."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from orchestrator.queue import Deliveries, enqueue
from orchestrator.runner.reconciler import step
from orchestrator.schedules.ticks import declare, fire_due

if TYPE_CHECKING:
    from saq.queue.redis import RedisQueue
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orchestrator.job import Registry
    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)


async def declare_schedules(engine: AsyncEngine, registry: Registry) -> None:
    """The job modules' schedules, created or brought up to date before the first round."""
    async with step(engine) as db:
        changed = await declare(db, registry)
    if changed:
        logger.info("schedules: %d declared by job modules created or updated", changed)


async def tick_once(engine: AsyncEngine, queue: RedisQueue, registry: Registry, settings: Settings) -> int:
    """One round: the due ticks' tasks recorded in one transaction, then enqueued (a task whose
    enqueue fails is PENDING in PostgreSQL, and the reconciler delivers it)."""
    async with step(engine) as db:
        recorded = await fire_due(db, registry, settings.schedule_catch_up_s)
    if not recorded:
        return 0
    deliveries = Deliveries()
    deliveries.add(*recorded)
    await enqueue(queue, deliveries.pending, settings.saq_job_ttl_s)
    return len(recorded)


async def tick_forever(
    engine: AsyncEngine, queue: RedisQueue, registry: Registry, settings: Settings
) -> None:
    declared = False
    while True:
        try:
            if not declared:
                await declare_schedules(engine, registry)
                declared = True
            await tick_once(engine, queue, registry, settings)
        except asyncio.CancelledError:
            raise
        except Exception:  # PostgreSQL or Redis away: the next round fires what this one did not
            logger.warning("schedules round failed", exc_info=True)
        await asyncio.sleep(settings.schedule_poll_s)
