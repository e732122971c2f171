"""HTTP endpoints of /tasks and /jobs."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.auth.keys import Caller
from orchestrator.auth.models import Scope
from orchestrator.job import Registry
from orchestrator.pagination import PAGE_SIZE_DEFAULT
from orchestrator.plain_text import NO_CONTROLS
from orchestrator.queue import Deliveries
from orchestrator.tasks import services
from orchestrator.tasks.schemas import (
    SHOW_TRACEBACKS,
    JobTypeRead,
    TaskBatch,
    TaskBatchRead,
    TaskCreate,
    TaskDetail,
    TaskPage,
    TaskRead,
)
from orchestrator.tasks.status import TaskStatus
from orchestrator.web.params import Cursor, Limit
from orchestrator.web.problems import problems
from orchestrator.web.replay import IdempotencyKeyHeader, idempotent
from orchestrator.web.transactions import ONE_STATEMENT_OPT

if TYPE_CHECKING:
    from orchestrator.tasks.models import Task


def _accepted(task: Task) -> Response[TaskRead]:
    headers = {"Location": f"/tasks/{task.id}"}
    return Response(TaskRead.model_validate(task), status_code=HTTP_202_ACCEPTED, headers=headers)


class TaskController(Controller):
    path = "/tasks"
    tags = ["tasks"]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        responses=problems(400, 404, 409, 413, 415, 422),
        opt=ONE_STATEMENT_OPT,
    )
    async def submit_task(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        registry: NamedDependency[Registry],
        deliveries: NamedDependency[Deliveries],
        data: JSONBody[TaskCreate],
        idempotency_key: IdempotencyKeyHeader,
    ) -> Response[TaskRead]:
        async def create() -> Response[TaskRead]:
            return _accepted(await services.submit_task(db_session, registry, deliveries, data))

        body = data.model_dump(mode="json")
        return await idempotent(db_session, request, idempotency_key, body, create)

    @post("/batch", status_code=HTTP_202_ACCEPTED, responses=problems(400, 404, 409, 413, 415, 422))
    async def submit_tasks(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        registry: NamedDependency[Registry],
        deliveries: NamedDependency[Deliveries],
        data: JSONBody[TaskBatch],
        idempotency_key: IdempotencyKeyHeader,
    ) -> Response[TaskBatchRead]:
        """Many tasks in one request and one transaction: the way to submit in bulk."""

        async def create() -> Response[TaskBatchRead]:
            tasks = await services.submit_tasks(db_session, registry, deliveries, data.tasks)
            items = [TaskRead.model_validate(task) for task in tasks]
            return Response(TaskBatchRead(items=items), status_code=HTTP_202_ACCEPTED)

        body = data.model_dump(mode="json")
        return await idempotent(db_session, request, idempotency_key, body, create)

    @get("/", responses=problems(400, 422))
    async def list_tasks(
        self,
        db_session: NamedDependency[AsyncSession],
        status: FromQuery[TaskStatus | None] = None,
        type: Annotated[str | None, Parameter(max_length=100, pattern=NO_CONTROLS)] = None,
        lead_id: FromQuery[uuid.UUID | None] = None,
        cursor: Cursor = None,
        limit: Limit = PAGE_SIZE_DEFAULT,
    ) -> TaskPage:
        filters = services.TaskFilters(status=status, type=type, lead_id=lead_id)
        tasks, next_cursor = await services.list_tasks(db_session, filters, cursor, limit)
        return TaskPage(items=[TaskRead.model_validate(task) for task in tasks], next_cursor=next_cursor)

    @get("/{task_id:uuid}", responses=problems(404))
    async def get_task(
        self,
        request: Request[Caller, Any, Any],
        db_session: NamedDependency[AsyncSession],
        task_id: FromPath[uuid.UUID],
    ) -> TaskDetail:
        """The task, its history and its steps; a failed attempt's traceback for admin keys only."""
        task = await services.get_task_detail(db_session, task_id)
        context = {SHOW_TRACEBACKS: request.user.scope.allows(Scope.ADMIN)}
        return TaskDetail.model_validate(task, context=context)

    @post("/{task_id:uuid}/cancel", status_code=HTTP_200_OK, responses=problems(404, 409))
    async def cancel_task(
        self,
        db_session: NamedDependency[AsyncSession],
        deliveries: NamedDependency[Deliveries],
        task_id: FromPath[uuid.UUID],
    ) -> TaskRead:
        return TaskRead.model_validate(await services.cancel_task(db_session, deliveries, task_id))

    @post("/{task_id:uuid}/retry", status_code=HTTP_202_ACCEPTED, responses=problems(404, 409))
    async def retry_task(
        self,
        db_session: NamedDependency[AsyncSession],
        registry: NamedDependency[Registry],
        deliveries: NamedDependency[Deliveries],
        task_id: FromPath[uuid.UUID],
    ) -> Response[TaskRead]:
        return _accepted(await services.retry_task(db_session, registry, deliveries, task_id))


class JobTypeController(Controller):
    path = "/jobs"
    tags = ["jobs"]

    @get("/", responses=problems())
    async def list_job_types(self, registry: NamedDependency[Registry]) -> list[JobTypeRead]:
        """Every job type this service can run, with its payload JSON schema and policy."""
        return [JobTypeRead.model_validate(registry.describe(name)) for name in sorted(registry)]
