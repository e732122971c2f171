"""`limited`: sleeps, at most three at once across every worker (its concurrency limit)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestrator.job import JobContext, JobType
from orchestrator.json_types import JSONNumber


class LimitedPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sleep_s: JSONNumber = 0.0


async def handle(ctx: JobContext, payload: LimitedPayload) -> dict[str, Any]:
    await asyncio.sleep(payload.sleep_s)
    return {}


job = JobType(name="limited", payload=LimitedPayload, handler=handle, concurrency=3, for_tests=True)
