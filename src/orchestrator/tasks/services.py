"""Task business rules for the API: submit, read, list, cancel, retry. Never commit."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ARRAY, Uuid, bindparam, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from orchestrator import metrics
from orchestrator.callbacks import targets
from orchestrator.errors import Conflict, NotFound, Unprocessable
from orchestrator.metrics import TaskEvent
from orchestrator.pagination import page
from orchestrator.tasks import transitions
from orchestrator.tasks.models import LEAD_KEY, Task
from orchestrator.tasks.schemas import BATCH_MAX

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterator

    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.sql.elements import TextClause

    from orchestrator.job import CheckedPayload, Registry
    from orchestrator.queue import Deliveries
    from orchestrator.tasks.schemas import TaskCreate
    from orchestrator.tasks.status import TaskStatus


LOCK_LEADS = text("SELECT id FROM leads WHERE id = ANY(:ids) FOR KEY SHARE").bindparams(
    bindparam("ids", type_=ARRAY(Uuid))
)


@dataclass(frozen=True)
class TaskFilters:
    status: TaskStatus | None = None
    type: str | None = None
    lead_id: uuid.UUID | None = None


async def submit_task(
    session: AsyncSession, registry: Registry, deliveries: Deliveries, data: TaskCreate
) -> Task:
    """Record a task whose payload its job type accepts; it is delivered once the caller commits.
    A missing lead is refused by the foreign key, which aborts the transaction: after an
    Unprocessable from here, the caller must roll back, not go on with the session."""
    return await _record(session, deliveries, data, _checked(registry, data))


def _checked(registry: Registry, data: TaskCreate) -> CheckedPayload:
    settings = registry.settings
    targets.check(data.callback_url, settings.callback_allowed_hosts if settings is not None else [])
    checked = registry.check(data.type, data.payload)
    if data.timeout_s is not None and data.timeout_s > checked.job_type.timeout_s:
        raise Unprocessable(
            f"timeout_s: at most {checked.job_type.timeout_s:g} s for {data.type}", field="timeout_s"
        )
    return checked


def _new_task(data: TaskCreate, checked: CheckedPayload) -> transitions.NewTask:
    return transitions.NewTask(
        type=data.type,
        payload=checked.stored(),
        max_attempts=data.max_attempts or checked.job_type.retry.max_attempts,
        lead_id=data.lead_id,
        run_at=data.run_at,
        timeout_s=data.timeout_s,
        concurrency_key=data.concurrency_key,
        callback_url=data.callback_url,
    )


async def _record(
    session: AsyncSession, deliveries: Deliveries, data: TaskCreate, checked: CheckedPayload
) -> Task:
    try:
        task = await transitions.record(session, **vars(_new_task(data, checked)))
    except IntegrityError as exc:
        # The foreign key decides, so a lead deleted a moment ago is refused too, never a 500.
        if LEAD_KEY in str(exc.orig):
            # 404 as for any id that names nothing, like Stripe's `resource_missing`.
            raise NotFound(f"lead_id: lead {data.lead_id} does not exist", field="lead_id") from None
        raise
    deliveries.add(task)
    return task


async def submit_tasks(
    session: AsyncSession, registry: Registry, deliveries: Deliveries, batch: list[TaskCreate]
) -> list[Task]:
    """All or none: the first invalid task refuses the batch, naming its index, and so does a
    batch whose tasks would make more than BATCH_MAX in all (workflows count their steps)."""
    checked = []
    for index, data in enumerate(batch):
        with _naming_the_task(index):
            checked.append(_checked(registry, data))
    if (made := sum(payload.tasks_made for payload in checked)) > BATCH_MAX:
        raise Unprocessable(
            f"tasks: this batch would make {made} tasks with its workflows' steps;"
            f" one request makes at most {BATCH_MAX}",
            field="tasks",
        )
    await _lock_leads(session, batch)
    new = [_new_task(data, payload) for data, payload in zip(batch, checked, strict=True)]
    tasks = await transitions.record_many(session, new)
    deliveries.add(*tasks)
    return tasks


async def _lock_leads(session: AsyncSession, batch: list[TaskCreate]) -> None:
    """The batch's leads, locked against a delete until the batch commits (the foreign key's
    own lock), so that the tasks' insert cannot fail on one; a missing lead is named by index."""
    wanted = {data.lead_id for data in batch if data.lead_id is not None}
    if not wanted:
        return
    found = set(await session.scalars(LOCK_LEADS, {"ids": list(wanted)}))
    for index, data in enumerate(batch):
        if data.lead_id is not None and data.lead_id not in found:
            with _naming_the_task(index):
                raise NotFound(f"lead_id: lead {data.lead_id} does not exist", field="lead_id")


@contextlib.contextmanager
def _naming_the_task(index: int) -> Iterator[None]:
    """A refusal of one task as the batch's: its detail and field name the task's index."""
    try:
        yield
    except (Unprocessable, NotFound) as exc:
        field = f"tasks[{index}].{exc.extra.pop('field', '')}".rstrip(".")
        raise type(exc)(f"tasks[{index}].{exc.detail}", field=field, **exc.extra) from None


async def get_task(session: AsyncSession, task_id: uuid.UUID) -> Task:
    task = await session.get(Task, task_id)
    if task is None:
        raise NotFound(f"Task {task_id} does not exist")
    return task


async def get_task_detail(session: AsyncSession, task_id: uuid.UUID) -> Task:
    """The task with its history and its children (a workflow's steps) loaded."""
    query = (
        select(Task)
        .where(Task.id == task_id)
        .options(selectinload(Task.history), selectinload(Task.children), selectinload(Task.callbacks))
    )
    task = await session.scalar(query)
    if task is None:
        raise NotFound(f"Task {task_id} does not exist")
    return task


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


async def cancel_task(session: AsyncSession, deliveries: Deliveries, task_id: uuid.UUID) -> Task:
    """PENDING | RETRY | PROCESSING -> CANCELLED, and every unfinished step under it (a
    workflow's); a running handler stops at its next heartbeat."""
    task = await _move(session, transitions.CANCEL, task_id, "cancel")
    metrics.task_event(task.type, TaskEvent.CANCELLED)
    await transitions.cancel_steps(session, task_id, {"by": "api", "with": str(task_id)})
    if task.parent_id is not None and (attempts := await transitions.wake(session, task.parent_id)):
        deliveries.add_due(task.parent_id, attempts)  # its workflow sees the cancel now, not at its poll
    return task


async def retry_task(
    session: AsyncSession, registry: Registry, deliveries: Deliveries, task_id: uuid.UUID
) -> Task:
    """FAILED | CANCELLED -> PENDING with a fresh set of the job type's attempts."""
    job_type = registry.get((await get_task(session, task_id)).type)
    fresh = job_type.retry.max_attempts if job_type is not None else 1
    task = await _move(session, transitions.REQUEUE, task_id, "retry", fresh_attempts=fresh)
    metrics.task_event(task.type, TaskEvent.REQUEUED)
    deliveries.add(task)
    return task


async def _move(
    session: AsyncSession, statement: TextClause, task_id: uuid.UUID, action: str, **params: Any
) -> Task:
    moved = await transitions.move(session, statement, task_id, detail={"by": "api"}, **params)
    task = await get_task(session, task_id)
    await session.refresh(task)
    if moved is None:
        raise Conflict(f"Cannot {action} a task that is {task.status}", current_status=task.status.value)
    return task
