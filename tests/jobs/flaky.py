"""`flaky`: leaves a marker file per run (the side effect), sleeps, then fails while asked to."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestrator.job import JobContext, JobType, PermanentError, RetryPolicy
from orchestrator.json_types import JSONBool, JSONInt, JSONNumber


class FlakyPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    marker_dir: str
    fail_attempts: JSONInt = 0
    permanent: JSONBool = False
    sleep_s: JSONNumber = 0.0


async def handle(ctx: JobContext, payload: FlakyPayload) -> dict[str, Any]:
    marker = Path(payload.marker_dir) / f"{ctx.task_id}.{ctx.attempt}.{uuid.uuid4().hex}.started"
    marker.write_text("")
    ctx.logger.info("flaky: attempt %d started", ctx.attempt)
    try:
        await asyncio.sleep(payload.sleep_s)
    except asyncio.CancelledError:
        marker.with_suffix(".cancelled").write_text("")
        raise
    if payload.permanent:
        raise PermanentError("refused for good")
    if ctx.attempt <= payload.fail_attempts:
        raise RuntimeError(f"failing attempt {ctx.attempt}")
    return {"attempt": ctx.attempt}


job = JobType(
    name="flaky",
    payload=FlakyPayload,
    handler=handle,
    timeout_s=30,
    retry=RetryPolicy(max_attempts=3, backoff_base_s=0.2, backoff_max_s=0.5),
)
