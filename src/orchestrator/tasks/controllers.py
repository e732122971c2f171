"""HTTP endpoints of /tasks, /leads/{id}/tasks and /jobs."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.errors import problems
from orchestrator.idempotency import IdempotencyKeyHeader, idempotent
from orchestrator.leads.services import get_lead
from orchestrator.pagination import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from orchestrator.runner.registry import Registry
from orchestrator.tasks import services
from orchestrator.tasks.schemas import (
    JobTypeRead,
    TaskBatch,
    TaskBatchRead,
    TaskCreate,
    TaskDetail,
    TaskEventRead,
    TaskPage,
    TaskRead,
)
from orchestrator.tasks.status import TaskStatus
from orchestrator.tasks.submit import deliver_after_response

if TYPE_CHECKING:
    from orchestrator.tasks.models import Task

Cursor = Annotated[str | None, Parameter(max_length=64)]
Limit = Annotated[int, Parameter(ge=1, le=PAGE_SIZE_MAX)]


def _accepted(task: Task) -> Response[TaskRead]:
    headers = {"Location": f"/tasks/{task.id}"}
    return Response(TaskRead.model_validate(task), status_code=HTTP_202_ACCEPTED, headers=headers)


class TaskController(Controller):
    path = "/tasks"
    tags = ["tasks"]

    @post("/", status_code=HTTP_202_ACCEPTED, responses=problems(400, 409, 413, 422))
    async def submit_task(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        registry: NamedDependency[Registry],
        data: JSONBody[TaskCreate],
        idempotency_key: IdempotencyKeyHeader,
    ) -> Response[TaskRead]:
        async def create() -> Response[TaskRead]:
            task = await services.submit_task(db_session, registry, data)
            deliver_after_response(request, task)
            return _accepted(task)

        body = data.model_dump(mode="json")
        return await idempotent(db_session, request, idempotency_key, body, create)

    @post("/batch", status_code=HTTP_202_ACCEPTED, responses=problems(400, 409, 413, 422))
    async def submit_tasks(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        registry: NamedDependency[Registry],
        data: JSONBody[TaskBatch],
        idempotency_key: IdempotencyKeyHeader,
    ) -> Response[TaskBatchRead]:
        """Many tasks in one request and one transaction: the way to submit in bulk."""

        async def create() -> Response[TaskBatchRead]:
            tasks = await services.submit_tasks(db_session, registry, data.tasks)
            deliver_after_response(request, *tasks)
            items = [TaskRead.model_validate(task) for task in tasks]
            return Response(TaskBatchRead(items=items), status_code=HTTP_202_ACCEPTED)

        body = data.model_dump(mode="json")
        return await idempotent(db_session, request, idempotency_key, body, create)

    @get("/", responses=problems(400, 422))
    async def list_tasks(
        self,
        db_session: NamedDependency[AsyncSession],
        status: FromQuery[TaskStatus | None] = None,
        type: Annotated[str | None, Parameter(max_length=100)] = None,
        lead_id: FromQuery[uuid.UUID | None] = None,
        cursor: Cursor = None,
        limit: Limit = PAGE_SIZE_DEFAULT,
    ) -> TaskPage:
        filters = services.TaskFilters(status=status, type=type, lead_id=lead_id)
        tasks, next_cursor = await services.list_tasks(db_session, filters, cursor, limit)
        return TaskPage(items=[TaskRead.model_validate(task) for task in tasks], next_cursor=next_cursor)

    @get("/{task_id:uuid}", responses=problems(404))
    async def get_task(
        self, db_session: NamedDependency[AsyncSession], task_id: FromPath[uuid.UUID]
    ) -> TaskDetail:
        task = await services.get_task(db_session, task_id)
        history = await services.get_history(db_session, task_id)
        children = await services.get_children(db_session, task_id)
        return TaskDetail.model_validate(
            {
                **TaskRead.model_validate(task).model_dump(),
                "history": [TaskEventRead.model_validate(event) for event in history],
                "children": [TaskRead.model_validate(child) for child in children],
            }
        )

    @post("/{task_id:uuid}/cancel", status_code=HTTP_200_OK, responses=problems(404, 409))
    async def cancel_task(
        self, db_session: NamedDependency[AsyncSession], task_id: FromPath[uuid.UUID]
    ) -> TaskRead:
        return TaskRead.model_validate(await services.cancel_task(db_session, task_id))

    @post("/{task_id:uuid}/retry", status_code=HTTP_202_ACCEPTED, responses=problems(404, 409))
    async def retry_task(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        registry: NamedDependency[Registry],
        task_id: FromPath[uuid.UUID],
    ) -> Response[TaskRead]:
        task = await services.retry_task(db_session, registry, task_id)
        deliver_after_response(request, task)
        return _accepted(task)


class LeadTaskController(Controller):
    path = "/leads/{lead_id:uuid}/tasks"
    tags = ["leads", "tasks"]

    @get("/", responses=problems(400, 404, 422))
    async def list_lead_tasks(
        self,
        db_session: NamedDependency[AsyncSession],
        lead_id: FromPath[uuid.UUID],
        cursor: Cursor = None,
        limit: Limit = PAGE_SIZE_DEFAULT,
    ) -> TaskPage:
        await get_lead(db_session, lead_id)
        tasks, next_cursor = await services.list_tasks(
            db_session, services.TaskFilters(lead_id=lead_id), cursor, limit
        )
        return TaskPage(items=[TaskRead.model_validate(task) for task in tasks], next_cursor=next_cursor)


class JobTypeController(Controller):
    path = "/jobs"
    tags = ["jobs"]

    @get("/")
    async def list_job_types(self, registry: NamedDependency[Registry]) -> list[JobTypeRead]:
        """Every job type this service can run, with its payload JSON schema and policy."""
        return [JobTypeRead.model_validate(registry[name].describe()) for name in sorted(registry)]
