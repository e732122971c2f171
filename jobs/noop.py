"""`noop`: a built-in job for tests and benchmarks. It sleeps if asked and echoes its input."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.job import JobContext, JobType, RetryPolicy
from orchestrator.json_types import AS_NUMBER


class NoopPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"echo": {"score": 42}}]})

    sleep_s: Annotated[float, Field(ge=0, le=3600), AS_NUMBER] = Field(
        default=0.0, description="Seconds to sleep before finishing"
    )
    echo: dict[str, Any] | None = Field(default=None, description="Returned as the task's result")


async def handle(ctx: JobContext, payload: NoopPayload) -> dict[str, Any]:
    if payload.sleep_s:
        await asyncio.sleep(payload.sleep_s)
    return {"echo": payload.echo, "attempt": ctx.attempt}


job = JobType(
    name="noop",
    payload=NoopPayload,
    handler=handle,
    description="Does nothing (or sleeps); for tests and benchmarks.",
    timeout_s=3700,
    retry=RetryPolicy(max_attempts=3, backoff_base_s=1.0),
    for_tests=True,
)
