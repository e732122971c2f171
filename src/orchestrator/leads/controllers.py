"""HTTP endpoints of /leads and /leads/{id}/tasks: parse, call a service, shape the response."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.etags import IF_MATCH_PATTERN, etag
from orchestrator.job import Registry  # noqa: TC001  (Litestar reads it at runtime)
from orchestrator.leads import services
from orchestrator.leads.models import Lead, LeadStatus
from orchestrator.leads.schemas import LeadPage, LeadPatch, LeadRead, LeadWrite
from orchestrator.pagination import PAGE_SIZE_DEFAULT
from orchestrator.plain_text import NO_CONTROLS
from orchestrator.queue import Deliveries  # noqa: TC001  (Litestar reads it at runtime)
from orchestrator.tasks import services as task_services
from orchestrator.tasks.schemas import TaskPage, TaskRead
from orchestrator.web.params import Cursor, Limit
from orchestrator.web.problems import problems
from orchestrator.web.replay import IdempotencyKeyHeader, idempotent
from orchestrator.web.transactions import ONE_STATEMENT_OPT

if TYPE_CHECKING:
    from sqlalchemy.engine import Row

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        pattern=IF_MATCH_PATTERN,
        description='An ETag from a previous read ("3"), a list of them, or *',
        examples=[Example(value='"1"')],
    ),
]


def _lead_response(lead: Lead | Row[Any], status_code: int = HTTP_200_OK) -> Response[LeadRead]:
    headers = {"ETag": etag(lead.version)}
    if status_code == HTTP_201_CREATED:
        headers["Location"] = f"/leads/{lead.id}"
    return Response(LeadRead.model_validate(lead), status_code=status_code, headers=headers)


def _synced_writes(
    db_session: NamedDependency[AsyncSession],
    registry: NamedDependency[Registry],
    deliveries: NamedDependency[Deliveries],
) -> services.SyncedWrites:
    return services.SyncedWrites(db_session, registry, deliveries)


class LeadController(Controller):
    path = "/leads"
    tags = ["leads"]
    dependencies = {"writes": Provide(_synced_writes, sync_to_thread=False)}

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        responses=problems(400, 409, 413, 415, 422),
        opt=ONE_STATEMENT_OPT,
    )
    async def create_lead(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        writes: NamedDependency[services.SyncedWrites],
        data: JSONBody[LeadWrite],
        idempotency_key: IdempotencyKeyHeader,
    ) -> Response[LeadRead]:
        async def create() -> Response[LeadRead]:
            return _lead_response(await writes.create(data), HTTP_201_CREATED)

        body = data.model_dump(mode="json")
        return await idempotent(db_session, request, idempotency_key, body, create)

    @get("/", responses=problems(400, 422))
    async def list_leads(
        self,
        db_session: NamedDependency[AsyncSession],
        email: Annotated[str | None, Parameter(max_length=320, pattern=NO_CONTROLS)] = None,
        company: Annotated[str | None, Parameter(max_length=200, pattern=NO_CONTROLS)] = None,
        source: Annotated[str | None, Parameter(max_length=100, pattern=NO_CONTROLS)] = None,
        status: FromQuery[LeadStatus | None] = None,
        cursor: Cursor = None,
        limit: Limit = PAGE_SIZE_DEFAULT,
    ) -> LeadPage:
        filters = services.LeadFilters(email=email, company=company, source=source, status=status)
        leads, next_cursor = await services.list_leads(db_session, filters, cursor, limit)
        return LeadPage(items=[LeadRead.model_validate(lead) for lead in leads], next_cursor=next_cursor)

    @get("/{lead_id:uuid}", responses=problems(404), opt=ONE_STATEMENT_OPT)
    async def get_lead(
        self, db_session: NamedDependency[AsyncSession], lead_id: FromPath[uuid.UUID]
    ) -> Response[LeadRead]:
        return _lead_response(await services.read_lead(db_session, lead_id))

    @put("/{lead_id:uuid}", responses=problems(400, 404, 409, 412, 413, 415, 422), opt=ONE_STATEMENT_OPT)
    async def replace_lead(
        self,
        writes: NamedDependency[services.SyncedWrites],
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[LeadWrite],
        if_match: IfMatch,
    ) -> Response[LeadRead]:
        return _lead_response(await writes.replace(lead_id, data, if_match))

    @patch("/{lead_id:uuid}", responses=problems(400, 404, 409, 412, 413, 415, 422))
    async def patch_lead(
        self,
        writes: NamedDependency[services.SyncedWrites],
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[LeadPatch],
        if_match: IfMatch,
    ) -> Response[LeadRead]:
        return _lead_response(await writes.patch(lead_id, data, if_match))

    @delete("/{lead_id:uuid}", status_code=HTTP_204_NO_CONTENT, responses=problems(404, 412, 422))
    async def delete_lead(
        self, db_session: NamedDependency[AsyncSession], lead_id: FromPath[uuid.UUID], if_match: IfMatch
    ) -> None:
        await services.delete_lead(db_session, lead_id, if_match)


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
        await services.get_lead(db_session, lead_id)
        filters = task_services.TaskFilters(lead_id=lead_id)
        tasks, next_cursor = await task_services.list_tasks(db_session, filters, cursor, limit)
        return TaskPage(items=[TaskRead.model_validate(task) for task in tasks], next_cursor=next_cursor)
