"""`rated`: says when it started, at most five starts a second across every worker (its rate limit)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestrator.job import JobContext, JobType


class RatedPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")


async def handle(ctx: JobContext, payload: RatedPayload) -> dict[str, Any]:
    return {"started": time.time()}  # one host's clock: the test reads it on the same host


job = JobType(name="rated", payload=RatedPayload, handler=handle, rate_limit="5/second", for_tests=True)
