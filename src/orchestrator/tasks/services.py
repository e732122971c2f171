"""Task business rules for the API: submit, read, list, cancel, retry. Never commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select

from orchestrator.errors import Conflict, NotFound, Unprocessable
from orchestrator.leads.models import Lead
from orchestrator.pagination import page
from orchestrator.tasks import transitions
from orchestrator.tasks.models import Task, TaskEvent
from orchestrator.tasks.submit import record_task

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.ext.asyncio import AsyncSession

    from orchestrator.runner.registry import Registry
    from orchestrator.tasks.schemas import TaskCreate
    from orchestrator.tasks.status import TaskStatus


@dataclass(frozen=True)
class TaskFilters:
    status: TaskStatus | None = None
    type: str | None = None
    lead_id: uuid.UUID | None = None


async def submit_task(session: AsyncSession, registry: Registry, data: TaskCreate) -> Task:
    job_type = registry.get(data.type)
    if job_type is None:
        known = ", ".join(sorted(registry)) or "none"
        raise Unprocessable(f"type: unknown job type {data.type!r}; known types: {known}", field="type")
    try:
        # exclude_unset: a field left out stays left out (PATCH-like payloads rely on it).
        checked = job_type.payload.model_validate(data.payload, context={"job_types": registry})
        payload = checked.model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        raise Unprocessable(f"payload: {_describe(exc)}", field="payload", errors=_errors(exc)) from None
    if data.lead_id is not None and await session.get(Lead, data.lead_id) is None:
        raise Unprocessable(f"lead_id: lead {data.lead_id} does not exist", field="lead_id")
    return await record_task(
        session,
        type=data.type,
        payload=payload,
        max_attempts=data.max_attempts or job_type.retry.max_attempts,
        lead_id=data.lead_id,
        run_at=data.run_at,
        timeout_s=data.timeout_s,
    )


async def submit_tasks(session: AsyncSession, registry: Registry, batch: list[TaskCreate]) -> list[Task]:
    """All or none: the first invalid task refuses the batch, naming its index."""
    tasks = []
    for index, data in enumerate(batch):
        try:
            tasks.append(await submit_task(session, registry, data))
        except Unprocessable as exc:
            field = f"tasks[{index}].{exc.extra.pop('field', '')}".rstrip(".")
            raise Unprocessable(f"tasks[{index}].{exc.detail}", field=field, **exc.extra) from None
    return tasks


async def get_task(session: AsyncSession, task_id: uuid.UUID) -> Task:
    task = await session.get(Task, task_id)
    if task is None:
        raise NotFound(f"Task {task_id} does not exist")
    return task


async def get_history(session: AsyncSession, task_id: uuid.UUID) -> list[TaskEvent]:
    query = select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id)
    return list((await session.scalars(query)).all())


async def get_children(session: AsyncSession, task_id: uuid.UUID) -> list[Task]:
    return list(
        (await session.scalars(select(Task).where(Task.parent_id == task_id).order_by(Task.id))).all()
    )


async def list_tasks(
    session: AsyncSession, filters: TaskFilters, cursor: str | None, limit: int
) -> tuple[list[Task], str | None]:
    query = select(Task)
    if filters.status is not None:
        query = query.where(Task.status == filters.status)
    if filters.type is not None:
        query = query.where(Task.type == filters.type)
    if filters.lead_id is not None:
        query = query.where(Task.lead_id == filters.lead_id)
    return await page(session, query, Task.id, cursor, limit)


async def cancel_task(session: AsyncSession, task_id: uuid.UUID) -> Task:
    """PENDING | RETRY | PROCESSING -> CANCELLED; a running handler stops at its next heartbeat."""
    moved = await transitions.move(session, transitions.CANCEL, task_id, detail={"by": "api"})
    return await _reloaded(session, task_id, moved, "cancel")


async def retry_task(session: AsyncSession, registry: Registry, task_id: uuid.UUID) -> Task:
    """FAILED | CANCELLED -> PENDING with a fresh set of the job type's attempts."""
    task = await get_task(session, task_id)
    job_type = registry.get(task.type)
    fresh = job_type.retry.max_attempts if job_type is not None else 1
    moved = await transitions.move(
        session, transitions.REQUEUE, task_id, detail={"by": "api"}, fresh_attempts=fresh
    )
    return await _reloaded(session, task_id, moved, "retry")


async def _reloaded(session: AsyncSession, task_id: uuid.UUID, moved: Any, action: str) -> Task:
    task = await get_task(session, task_id)
    await session.refresh(task)
    if moved is None:
        raise Conflict(f"Cannot {action} a task that is {task.status}", current_status=task.status.value)
    return task


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors())


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(("payload", *map(str, e["loc"]))), "message": e["msg"], "in": "body"}
        for e in exc.errors()
    ]
