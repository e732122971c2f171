"""The callbacks' loop in every worker process: POST what is due, then look again."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import httpx

from orchestrator.callbacks.deliver import BATCH, deliver_due

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)


async def callbacks_forever(engine: AsyncEngine, settings: Settings) -> None:
    # Redirects are not followed: the allowed host is the one called.
    async with httpx.AsyncClient(timeout=settings.callback_timeout_s, follow_redirects=False) as http:
        while True:
            try:
                taken = await deliver_due(engine, http, settings)
            except asyncio.CancelledError:
                raise
            except Exception:  # PostgreSQL away: the rows wait, due, for the next round
                logger.warning("callbacks round failed", exc_info=True)
                taken = 0
            if taken < BATCH:  # a full batch: more may be due at once
                await asyncio.sleep(settings.callback_poll_s)
