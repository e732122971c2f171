"""Lead business rules: async functions over a session that never commit, and `SyncedWrites`, the
API's writes, each of which records a crm_update task so that the CRM hears of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ARRAY, Integer, bindparam, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from uuid_utils.compat import uuid7

from orchestrator import metrics, tracing
from orchestrator.errors import Conflict, NotFound, PreconditionFailed, RefusedChange, Unprocessable
from orchestrator.etags import if_match_allows, if_match_versions
from orchestrator.json_bounds import check_bounds
from orchestrator.leads.models import Lead, LeadStatus
from orchestrator.metrics import TaskEvent
from orchestrator.pagination import page
from orchestrator.tasks import transitions

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.engine import Row
    from sqlalchemy.ext.asyncio import AsyncSession

    from orchestrator.job import Registry
    from orchestrator.leads.schemas import LeadPatch, LeadWrite
    from orchestrator.queue import Deliveries

CRM_SYNC_JOB = "crm_update"
WRITABLE = ("first_name", "last_name", "email", "phone", "company", "source", "status", "score", "attributes")

# A create and a PUT are each one statement: the lead, its crm_update task, the task's event.
_TYPED = (bindparam("attributes", type_=JSONB), bindparam("score", type_=Integer))
# The type each given value is cast to; the rest are TEXT (a cast to VARCHAR(n) would cut a
# longer value short, silently, where the assignment to the column refuses it).
_NOT_TEXT = {"score": "INTEGER", "attributes": "JSONB"}
_CREATE = transitions.recorded_with(
    f"""INSERT INTO leads (id, version, {", ".join(WRITABLE)})
        VALUES (:id, 1, {", ".join(f":{name}" for name in WRITABLE)})
        RETURNING *""",  # noqa: S608  (constants)
    lead_column="id",
).bindparams(*_TYPED)
# A PUT that changes nothing keeps its version and updated_at, as an ORM flush would: a retried
# PUT still matches the If-Match it was sent with. Each value is given once, cast to its column's
# type, and compared with the row as it was; JSON as its text, since jsonb equality takes 1 and
# 1.0 for the same while the stored document changes. :any_version is an If-Match of * (or
# none), else the version must be one of :versions.
_GIVEN = ", ".join(f"CAST(:{name} AS {_NOT_TEXT.get(name, 'TEXT')}) AS {name}" for name in WRITABLE)
_COMPARED = [f"{{}}.{name}::text" if name == "attributes" else f"{{}}.{name}" for name in WRITABLE]
_CHANGED = (
    f"({', '.join(column.format('leads') for column in _COMPARED)})"
    f" IS DISTINCT FROM ({', '.join(column.format('given') for column in _COMPARED)})"
)
_REPLACE = transitions.recorded_with(
    f"""UPDATE leads SET {", ".join(f"{name} = given.{name}" for name in WRITABLE)},
            version = CASE WHEN {_CHANGED} THEN leads.version + 1 ELSE leads.version END,
            updated_at = CASE WHEN {_CHANGED} THEN now() ELSE leads.updated_at END
        FROM (SELECT {_GIVEN}) AS given
        WHERE leads.id = :id AND (:any_version OR leads.version = ANY(:versions))
        RETURNING leads.*""",  # noqa: S608  (constants)
    lead_column="id",
).bindparams(*_TYPED, bindparam("versions", type_=ARRAY(Integer)))


@dataclass(frozen=True)
class LeadFilters:
    email: str | None = None
    company: str | None = None
    source: str | None = None
    status: LeadStatus | None = None


class SyncedWrites:
    """Every API write to a lead (create, PUT, PATCH) records a crm_update task in the same
    transaction, delivered once it commits. The crm_update job itself writes with the plain
    functions below: its own writes must not sync again. (A plain class, not a dataclass:
    Litestar would try to validate a dataclass it injects field by field.)"""

    def __init__(self, session: AsyncSession, registry: Registry, deliveries: Deliveries) -> None:
        self.session, self.registry, self.deliveries = session, registry, deliveries

    async def create(self, data: LeadWrite) -> Row[Any]:
        row = await self._written(_CREATE, {"id": uuid7(), **data.model_dump()})
        assert row is not None  # an INSERT that did not raise wrote its row  # noqa: S101
        return row

    async def replace(self, lead_id: uuid.UUID, data: LeadWrite, if_match: str | None) -> Row[Any]:
        versions = if_match_versions(if_match)
        params = {"id": lead_id, "any_version": versions is None, "versions": versions or []}
        params |= data.model_dump()
        if (row := await self._written(_REPLACE, params)) is None:
            await _get_for_write(self.session, lead_id, if_match)  # 404 or 412, as it now stands
            raise PreconditionFailed(f"If-Match does not match the current version of lead {lead_id}")
        return row

    async def _written(self, statement: Any, params: dict[str, Any]) -> Row[Any] | None:
        job_type = self.registry[CRM_SYNC_JOB]
        params |= {"task_id": uuid7(), "task_type": CRM_SYNC_JOB, "trace_context": tracing.traceparent()}
        params["task_max_attempts"] = job_type.retry.max_attempts
        try:
            row = (await self.session.execute(statement, params)).one_or_none()
            if row is not None:
                metrics.task_event(CRM_SYNC_JOB, TaskEvent.SUBMITTED)
        except IntegrityError as exc:
            _refuse_conflict(exc)
            raise
        if row is not None:
            self.deliveries.add_due(row.task_id, row.task_attempts)
        return row

    async def patch(self, lead_id: uuid.UUID, data: LeadPatch, if_match: str | None) -> Lead:
        return await self._synced(await patch_lead(self.session, lead_id, data, if_match))

    async def _synced(self, lead: Lead) -> Lead:
        # The lead was read locked (`_get_for_write`): no delete can break this insert's key.
        task = await transitions.record(
            self.session,
            type=CRM_SYNC_JOB,
            payload={"lead_id": str(lead.id)},
            max_attempts=self.registry[CRM_SYNC_JOB].retry.max_attempts,
            lead_id=lead.id,
            # As the create's and the PUT's statements key it: one sync of a lead at a time.
            concurrency_key=f"lead:{lead.id}",
        )
        self.deliveries.add(task)
        return lead


async def get_lead(session: AsyncSession, lead_id: uuid.UUID) -> Lead:
    lead = await session.get(Lead, lead_id)
    if lead is None:
        raise NotFound(f"Lead {lead_id} does not exist")
    return lead


# A read for the answer alone: the row, without an ORM instance to track (a third of a read's time).
_READ = select(Lead.__table__).where(Lead.__table__.c.id == bindparam("id"))


async def read_lead(session: AsyncSession, lead_id: uuid.UUID) -> Row[Any]:
    """The lead as a row, for an answer; `get_lead` for one to change."""
    row = (await session.execute(_READ, {"id": lead_id})).one_or_none()
    if row is None:
        raise NotFound(f"Lead {lead_id} does not exist")
    return row


async def list_leads(
    session: AsyncSession, filters: LeadFilters, cursor: str | None, limit: int
) -> tuple[list[Lead], str | None]:
    query = select(Lead)
    if filters.email is not None:
        query = query.where(func.lower(Lead.email) == filters.email.lower())
    for column, value in ((Lead.company, filters.company), (Lead.source, filters.source)):
        if value is not None:
            query = query.where(column == value)
    if filters.status is not None:
        query = query.where(Lead.status == filters.status)
    return await page(session, query, Lead.id, cursor, limit)


async def patch_lead(
    session: AsyncSession, lead_id: uuid.UUID, data: LeadPatch, if_match: str | None
) -> Lead:
    lead = await _get_for_write(session, lead_id, if_match)
    changes = data.model_dump(exclude_unset=True)
    if "attributes" in changes:
        changes["attributes"] = merge_patch(lead.attributes, changes["attributes"])
        try:  # each patch is within the bounds; what they add up to must be too
            check_bounds(changes["attributes"])
        except ValueError as exc:
            raise Unprocessable(f"attributes after the merge: {exc}", field="attributes") from None
    for name, value in changes.items():
        setattr(lead, name, value)
    if lead.email is None and lead.phone is None:
        # Each change may be fine on its own; together with the lead as it is, it is not.
        raise RefusedChange(
            "the change would leave the lead with neither an email nor a phone", field="email"
        )
    await _flush(session)
    return lead


async def delete_lead(session: AsyncSession, lead_id: uuid.UUID, if_match: str | None) -> None:
    lead = await _get_for_write(session, lead_id, if_match, deleting=True)
    await session.delete(lead)
    await session.flush()


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch: objects merge recursively, null deletes a key."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


async def _get_for_write(
    session: AsyncSession, lead_id: uuid.UUID, if_match: str | None, *, deleting: bool = False
) -> Lead:
    """The lead, locked until the transaction ends: a write racing another waits for it and
    then reads what it left (a PATCH merges into it), rather than failing the version check
    that only a write with If-Match asked for. The lock of an UPDATE (NO KEY) for a change."""
    lock = {"key_share": not deleting}
    lead = await session.get(Lead, lead_id, with_for_update=lock, populate_existing=True)
    if lead is None:
        raise NotFound(f"Lead {lead_id} does not exist")
    if not if_match_allows(if_match, lead.version):
        raise PreconditionFailed(
            f"If-Match does not match the current version of lead {lead_id}", current_version=lead.version
        )
    return lead


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        _refuse_conflict(exc)
        raise


def _refuse_conflict(exc: IntegrityError) -> None:
    if "uq_leads_email_lower" in str(exc.orig):
        raise Conflict("A lead with this email already exists", field="email") from None
