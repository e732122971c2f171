"""The callbacks' loop in every worker process: up to BATCH attempts under way at once, each on
its own (a slow receiver holds its own attempt, not the others), more taken as they end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from orchestrator.callbacks.deliver import BATCH, attempt, client, take

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)


async def callbacks_forever(engine: AsyncEngine, settings: Settings) -> None:
    under_way: set[asyncio.Task[None]] = set()
    async with client(settings) as http:
        try:
            while True:
                taken = []
                try:
                    if free := BATCH - len(under_way):
                        taken = await take(engine, settings, free)
                except Exception:  # PostgreSQL away: the rows wait, due, for the next round
                    logger.warning("callbacks round failed", exc_info=True)
                for row in taken:
                    task = asyncio.create_task(attempt(engine, http, settings, row))
                    under_way.add(task)
                    task.add_done_callback(under_way.discard)
                if not taken or len(under_way) >= BATCH:
                    await asyncio.sleep(settings.callback_poll_s)
        finally:
            # Stopping: the attempts under way end (within their deadline) and are recorded,
            # rather than sent again by another worker once their hold is over.
            if under_way:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait(under_way, timeout=settings.callback_timeout_s + 1)
                for task in under_way:
                    task.cancel()
