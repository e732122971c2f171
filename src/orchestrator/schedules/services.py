"""Schedule rules for the API: create, read, list, change, delete. Never commit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from orchestrator.callbacks import targets
from orchestrator.errors import Conflict, NotFound, Unprocessable
from orchestrator.pagination import page
from orchestrator.schedules.cron import Cron
from orchestrator.schedules.models import NAME_KEY, Schedule
from orchestrator.settings import Settings
from orchestrator.tasks.models import Task

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.ext.asyncio import AsyncSession

    from orchestrator.job import Registry
    from orchestrator.schedules.schemas import ScheduleCreate, SchedulePatch

RECENT_TASKS = 10
LEAD_KEY = "fk_schedules_lead_id_leads"
# What a schedule a job module declares lets the API change: pausing it, nothing the code says.
DECLARED_CHANGEABLE = frozenset({"enabled"})


async def create_schedule(session: AsyncSession, registry: Registry, data: ScheduleCreate) -> Schedule:
    """A schedule whose type, payload, cron and timezone are valid; it first fires at the next
    tick after now, by the database's clock."""
    payload = registry.check(data.type, data.payload).stored()
    targets.check(data.callback_url, _allowed_hosts(registry))
    cron = Cron.parse(data.cron, data.timezone)
    await _room_for_one_more(session, registry)
    schedule = Schedule(
        name=data.name,
        type=data.type,
        payload=payload,
        cron=cron.expression,
        timezone=cron.timezone,
        enabled=data.enabled,
        lead_id=data.lead_id,
        callback_url=data.callback_url,
        next_run_at=cron.next_after(await _now(session)),
    )
    session.add(schedule)
    await _flush(session, schedule)
    return schedule


async def get_schedule(session: AsyncSession, schedule_id: uuid.UUID, *, lock: bool = False) -> Schedule:
    query = select(Schedule).where(Schedule.id == schedule_id)
    schedule = await session.scalar(query.with_for_update() if lock else query)
    if schedule is None:
        raise NotFound(f"Schedule {schedule_id} does not exist")
    return schedule


async def recent_tasks(session: AsyncSession, schedule_id: uuid.UUID) -> list[Task]:
    query = (
        select(Task)
        .where(Task.schedule_id == schedule_id)
        .order_by(Task.scheduled_for.desc())
        .limit(RECENT_TASKS)
    )
    return list((await session.scalars(query)).all())


async def list_schedules(
    session: AsyncSession, type: str | None, enabled: bool | None, cursor: str | None, limit: int
) -> tuple[list[Schedule], str | None]:
    query = select(Schedule)
    if type is not None:
        query = query.where(Schedule.type == type)
    if enabled is not None:
        query = query.where(Schedule.enabled == enabled)
    return await page(session, query, Schedule.id, cursor, limit)


async def patch_schedule(
    session: AsyncSession, registry: Registry, schedule_id: uuid.UUID, patch: SchedulePatch
) -> Schedule:
    """Change the fields given, checked as on create. A new cron or timezone, or a schedule
    enabled again, fires next at the first tick after now: the ticks missed while it was paused
    are not made up."""
    schedule = await get_schedule(session, schedule_id, lock=True)
    given = patch.given()
    if schedule.declared_by is not None and (fixed := sorted(set(given) - DECLARED_CHANGEABLE)):
        raise Conflict(
            f"{', '.join(fixed)}: schedule {schedule.name!r} is declared by the {schedule.declared_by}"
            " job's module; change it there (only `enabled` may change here)",
            field=fixed[0],
        )
    targets.check(given.get("callback_url"), _allowed_hosts(registry))
    if "payload" in given:
        given["payload"] = registry.check(given["type"], given["payload"]).stored()
    elif "type" in given:
        registry.job_type(given["type"])
        try:
            registry.check(given["type"], schedule.payload)
        except Unprocessable as exc:
            raise Conflict(
                f"type: the stored payload does not fit {given['type']} ({exc.detail});"
                " give a payload with it",
                field="type",
            ) from None
    resume = given.get("enabled") is True and not schedule.enabled
    if {"cron", "timezone"} & set(given) or resume:
        cron = Cron.parse(given.get("cron", schedule.cron), given.get("timezone", schedule.timezone))
        given |= {"cron": cron.expression, "timezone": cron.timezone}
        given["next_run_at"] = cron.next_after(await _now(session))
    for name, value in given.items():
        setattr(schedule, name, value)
    await _flush(session, schedule)
    return schedule


async def delete_schedule(session: AsyncSession, schedule_id: uuid.UUID) -> None:
    """Its tasks stay, no longer linked to it. A declared one comes back at the next worker
    start unless its module no longer declares it: pause it instead."""
    await session.delete(await get_schedule(session, schedule_id, lock=True))
    await session.flush()


_DEFAULTS = Settings.model_construct()
# Creations queue on this lock for the count and the insert, so that two at once cannot both
# take the last place; released when the transaction ends.
ONE_CREATION_AT_A_TIME = text("SELECT pg_advisory_xact_lock(hashtext('orchestrator: create a schedule'))")
MADE_BY_API = select(func.count()).select_from(Schedule).where(Schedule.declared_by.is_(None))


async def _room_for_one_more(session: AsyncSession, registry: Registry) -> None:
    """A hostile or looping client cannot make schedules without end: every one is looked at by
    every worker's rounds, and each tick is a task."""
    most = (registry.settings or _DEFAULTS).schedules_max
    await session.execute(ONE_CREATION_AT_A_TIME)
    if (await session.scalar(MADE_BY_API) or 0) >= most:
        raise Conflict(
            f"schedules: this deployment holds at most {most} schedules made through the API"
            " (SCHEDULES_MAX); delete or change one instead",
            field="name",
        )


def _allowed_hosts(registry: Registry) -> list[str]:
    return registry.settings.callback_allowed_hosts if registry.settings is not None else []


async def _now(session: AsyncSession) -> Any:
    return await session.scalar(select(func.now()))


async def _flush(session: AsyncSession, schedule: Schedule) -> None:
    # Read before the flush: after a failed one, reading an attribute would load it again from
    # a transaction that is over.
    name, lead_id = schedule.name, schedule.lead_id
    try:
        await session.flush()
    except IntegrityError as exc:
        if NAME_KEY in str(exc.orig):
            raise Conflict(f"name: a schedule named {name!r} exists", field="name") from None
        if LEAD_KEY in str(exc.orig):
            raise NotFound(f"lead_id: lead {lead_id} does not exist", field="lead_id") from None
        raise
