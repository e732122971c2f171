"""GET /workers: every worker process PostgreSQL has heard from, live, stopped or lost."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.auth.middleware import admin_only
from orchestrator.web.problems import problems
from orchestrator.workers.registry import MISSED_BEATS, listed


class WorkerRead(BaseModel):
    id: str = Field(description="host-pid-nonce, as in a task's worker_id")
    host: str
    pid: int
    queue: str
    concurrency: int = Field(description="Jobs it runs at once")
    running: int = Field(description="Jobs it held at its last heartbeat")
    state: Literal["live", "stopped", "lost"] = Field(
        description=f"lost: no heartbeat for {MISSED_BEATS} of its intervals and no clean stop"
        " (killed, frozen, or cut off from the database)"
    )
    started_at: dt.datetime
    last_seen_at: dt.datetime
    last_seen_s: float = Field(description="Seconds since its last heartbeat, by the database's clock")
    stopped_at: dt.datetime | None


class WorkerList(BaseModel):
    live: int
    items: list[WorkerRead]


class WorkerController(Controller):
    path = "/workers"
    tags = ["operations"]
    guards = [admin_only]

    @get("/", responses=problems())
    async def list_workers(self, db_engine: NamedDependency[AsyncEngine]) -> WorkerList:
        """Every worker process seen in the last 7 days: live, stopped cleanly, or lost (admin keys)."""
        async with db_engine.connect() as connection:
            items = [WorkerRead.model_validate(row) for row in await listed(connection)]
        return WorkerList(live=sum(item.state == "live" for item in items), items=items)
