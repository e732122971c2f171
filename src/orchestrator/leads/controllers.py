"""HTTP endpoints of /leads: parse, call a service, shape the response."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from orchestrator.errors import problems
from orchestrator.etags import etag
from orchestrator.idempotency import IdempotencyKeyHeader, idempotent
from orchestrator.leads import services
from orchestrator.leads.models import Lead, LeadStatus
from orchestrator.leads.schemas import LeadPage, LeadPatch, LeadRead, LeadWrite
from orchestrator.pagination import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from orchestrator.tasks.submit import deliver_after_response, record_task

if TYPE_CHECKING:
    from orchestrator.runner.registry import Registry

IfMatch = Annotated[
    str | None, HeaderParameter(name="If-Match", required=False, description="An ETag from a previous read")
]


async def _sync_to_crm(request: Request[Any, Any, Any], session: AsyncSession, lead: Lead) -> None:
    """Every API write to a lead records a crm_update task in the same transaction."""
    registry: Registry = request.app.state.registry
    task = await record_task(
        session,
        type="crm_update",
        payload={"lead_id": str(lead.id)},
        max_attempts=registry["crm_update"].retry.max_attempts,
        lead_id=lead.id,
    )
    deliver_after_response(request, task)


def _lead_response(lead: Lead, status_code: int = HTTP_200_OK) -> Response[LeadRead]:
    headers = {"ETag": etag(lead.version)}
    if status_code == HTTP_201_CREATED:
        headers["Location"] = f"/leads/{lead.id}"
    return Response(LeadRead.model_validate(lead), status_code=status_code, headers=headers)


class LeadController(Controller):
    path = "/leads"
    tags = ["leads"]

    @post("/", status_code=HTTP_201_CREATED, responses=problems(400, 409, 413, 422))
    async def create_lead(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        data: JSONBody[LeadWrite],
        idempotency_key: IdempotencyKeyHeader,
    ) -> Response[LeadRead]:
        async def create() -> Response[LeadRead]:
            lead = await services.create_lead(db_session, data)
            await _sync_to_crm(request, db_session, lead)
            return _lead_response(lead, HTTP_201_CREATED)

        body = data.model_dump(mode="json")
        return await idempotent(db_session, request, idempotency_key, body, create)

    @get("/", responses=problems(400, 422))
    async def list_leads(
        self,
        db_session: NamedDependency[AsyncSession],
        email: Annotated[str | None, Parameter(max_length=320)] = None,
        company: Annotated[str | None, Parameter(max_length=200)] = None,
        source: Annotated[str | None, Parameter(max_length=100)] = None,
        status: FromQuery[LeadStatus | None] = None,
        cursor: Annotated[str | None, Parameter(max_length=64)] = None,
        limit: Annotated[int, Parameter(ge=1, le=PAGE_SIZE_MAX)] = PAGE_SIZE_DEFAULT,
    ) -> LeadPage:
        filters = services.LeadFilters(email=email, company=company, source=source, status=status)
        leads, next_cursor = await services.list_leads(db_session, filters, cursor, limit)
        return LeadPage(items=[LeadRead.model_validate(lead) for lead in leads], next_cursor=next_cursor)

    @get("/{lead_id:uuid}", responses=problems(404))
    async def get_lead(
        self, db_session: NamedDependency[AsyncSession], lead_id: FromPath[uuid.UUID]
    ) -> Response[LeadRead]:
        return _lead_response(await services.get_lead(db_session, lead_id))

    @put("/{lead_id:uuid}", responses=problems(400, 404, 409, 412, 413, 422))
    async def replace_lead(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[LeadWrite],
        if_match: IfMatch,
    ) -> Response[LeadRead]:
        lead = await services.replace_lead(db_session, lead_id, data, if_match)
        await _sync_to_crm(request, db_session, lead)
        return _lead_response(lead)

    @patch("/{lead_id:uuid}", responses=problems(400, 404, 409, 412, 413, 422))
    async def patch_lead(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[LeadPatch],
        if_match: IfMatch,
    ) -> Response[LeadRead]:
        lead = await services.patch_lead(db_session, lead_id, data, if_match)
        await _sync_to_crm(request, db_session, lead)
        return _lead_response(lead)

    @delete("/{lead_id:uuid}", status_code=HTTP_204_NO_CONTENT, responses=problems(404, 412, 422))
    async def delete_lead(
        self, db_session: NamedDependency[AsyncSession], lead_id: FromPath[uuid.UUID], if_match: IfMatch
    ) -> None:
        await services.delete_lead(db_session, lead_id, if_match)
