"""`ticking`: does nothing, on the schedule its module declares (every five seconds)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestrator.job import JobContext, JobType, Scheduled

DECLARED = "ticking-every-5s"


class TickingPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = ""


async def handle(ctx: JobContext, payload: TickingPayload) -> dict[str, Any]:
    return {"note": payload.note}


job = JobType(
    name="ticking",
    payload=TickingPayload,
    handler=handle,
    schedules=(Scheduled(name=DECLARED, cron="*/5 * * * * *", payload={"note": "declared"}),),
    for_tests=True,
)
