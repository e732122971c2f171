"""HTTP endpoints of /schedules."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.job import Registry
from orchestrator.pagination import PAGE_SIZE_DEFAULT
from orchestrator.plain_text import NO_CONTROLS
from orchestrator.schedules import services
from orchestrator.schedules.schemas import (
    ScheduleCreate,
    ScheduleDetail,
    SchedulePage,
    SchedulePatch,
    ScheduleRead,
)
from orchestrator.tasks.schemas import TaskRead
from orchestrator.web.params import Cursor, Limit
from orchestrator.web.problems import problems


class ScheduleController(Controller):
    path = "/schedules"
    tags = ["schedules"]

    @post("/", status_code=HTTP_201_CREATED, responses=problems(400, 404, 409, 413, 415, 422))
    async def create_schedule(
        self,
        db_session: NamedDependency[AsyncSession],
        registry: NamedDependency[Registry],
        data: JSONBody[ScheduleCreate],
    ) -> Response[ScheduleRead]:
        """Make a task of `type` with `payload` at each tick of `cron` in `timezone`: exactly
        one per tick, however many workers run. After downtime, the latest missed tick fires
        once; the older ones are skipped."""
        schedule = await services.create_schedule(db_session, registry, data)
        headers = {"Location": f"/schedules/{schedule.id}"}
        return Response(ScheduleRead.model_validate(schedule), status_code=HTTP_201_CREATED, headers=headers)

    @get("/", responses=problems(400, 422))
    async def list_schedules(
        self,
        db_session: NamedDependency[AsyncSession],
        type: Annotated[str | None, Parameter(max_length=100, pattern=NO_CONTROLS)] = None,
        enabled: FromQuery[bool | None] = None,
        cursor: Cursor = None,
        limit: Limit = PAGE_SIZE_DEFAULT,
    ) -> SchedulePage:
        schedules, next_cursor = await services.list_schedules(db_session, type, enabled, cursor, limit)
        return SchedulePage(
            items=[ScheduleRead.model_validate(s) for s in schedules], next_cursor=next_cursor
        )

    @get("/{schedule_id:uuid}", responses=problems(404))
    async def get_schedule(
        self, db_session: NamedDependency[AsyncSession], schedule_id: FromPath[uuid.UUID]
    ) -> ScheduleDetail:
        """The schedule, its next tick, and the tasks of its latest ticks."""
        schedule = await services.get_schedule(db_session, schedule_id)
        tasks = await services.recent_tasks(db_session, schedule_id)
        read = ScheduleRead.model_validate(schedule)
        return ScheduleDetail(**vars(read), recent_tasks=[TaskRead.model_validate(task) for task in tasks])

    @patch("/{schedule_id:uuid}", responses=problems(400, 404, 409, 413, 415, 422))
    async def patch_schedule(
        self,
        db_session: NamedDependency[AsyncSession],
        registry: NamedDependency[Registry],
        schedule_id: FromPath[uuid.UUID],
        data: JSONBody[SchedulePatch],
    ) -> ScheduleRead:
        """Change the fields given. A new cron or timezone, or enabling it again, fires next at
        the first tick after now: ticks missed while paused are not made up."""
        return ScheduleRead.model_validate(
            await services.patch_schedule(db_session, registry, schedule_id, data)
        )

    @delete("/{schedule_id:uuid}", status_code=HTTP_204_NO_CONTENT, responses=problems(404))
    async def delete_schedule(
        self, db_session: NamedDependency[AsyncSession], schedule_id: FromPath[uuid.UUID]
    ) -> None:
        """Its tasks stay (their schedule_id becomes null)."""
        await services.delete_schedule(db_session, schedule_id)
