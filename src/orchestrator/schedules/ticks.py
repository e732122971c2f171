"""Firing schedules: a task for each due tick, exactly one, and the schedules job modules declare.

Every worker process fires: each takes the due schedules no other holds (SKIP LOCKED), and the
unique index on (schedule_id, scheduled_for) refuses a second task for a tick whatever happens
to the locks (a process frozen past its session's end, a schedule changed meanwhile). Times are
the database's: `now()` of the transaction decides which tick is due.

Ticks missed by a round that came late, by up to SCHEDULE_CATCH_UP_S (a busy host, workers
restarting), all fire, each once. After longer downtime the ticks older than that are skipped,
and when none is younger the latest missed one fires once, as a nightly job wants: a week away
makes one run, not seven at once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import TIMESTAMP
from uuid_utils.compat import uuid7

from orchestrator.job import RetryPolicy
from orchestrator.schedules.cron import Cron
from orchestrator.tasks import transitions

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from orchestrator.job import Registry, Scheduled

logger = logging.getLogger(__name__)

DUE = text(
    """
    SELECT id, name, type, payload, cron, timezone, lead_id, callback_url, next_run_at, now() AS now
    FROM schedules
    WHERE enabled AND next_run_at <= now()
    ORDER BY next_run_at LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)
FIRED = text(
    "UPDATE schedules SET next_run_at = :next, last_run_at = coalesce(:tick, last_run_at), updated_at = now()"
    " WHERE id = :id"
).bindparams(bindparam("tick", type_=TIMESTAMP(timezone=True)))
# A round holds the schedule; a lead's delete holds the lead, then clears it from its schedules:
# the round waits for no lead (that order would deadlock) and skips a schedule whose lead is
# held, until the next round.
LOCK_LEAD = text("SELECT true FROM leads WHERE id = :id FOR KEY SHARE SKIP LOCKED")
# A schedule whose cron no longer computes (its timezone gone from this host's database) is
# looked at again in a minute rather than every round.
LATER = text("UPDATE schedules SET next_run_at = now() + interval '1 minute' WHERE id = :id")
NOW = text("SELECT now()")
# A round fires at most this many ticks of one schedule; the next round goes on from there.
TICKS_PER_ROUND = 100

# Created by name, or brought to what the code says; `enabled` stays as an operator left it, and
# a schedule whose cron and timezone did not change keeps its next tick.
DECLARE = text(
    """
    INSERT INTO schedules AS s (id, name, type, payload, cron, timezone, enabled, declared_by, next_run_at)
    VALUES (:id, :name, :type, CAST(:payload AS JSONB), :cron, :timezone, true, :type, :next_run_at)
    ON CONFLICT (name) DO UPDATE SET
        type = excluded.type, payload = excluded.payload, declared_by = excluded.declared_by,
        cron = excluded.cron, timezone = excluded.timezone, lead_id = NULL, updated_at = now(),
        next_run_at = CASE WHEN (s.cron, s.timezone) = (excluded.cron, excluded.timezone)
                           THEN s.next_run_at ELSE excluded.next_run_at END
    WHERE s.declared_by IS NOT NULL
      AND (s.type, s.payload, s.cron, s.timezone, s.declared_by, s.lead_id)
          IS DISTINCT FROM (excluded.type, excluded.payload, excluded.cron, excluded.timezone,
                            excluded.declared_by, NULL)
    RETURNING id
    """
)
# A schedule the API made under a declared name stays the API's: the declaration is not applied.
MADE_BY_API = text("SELECT true FROM schedules WHERE name = :name AND declared_by IS NULL")


async def fire_due(db: AsyncConnection, registry: Registry, catch_up_s: float, limit: int = 100) -> list[Any]:
    """Record the tasks of each due schedule's missed ticks (see above) and move it to its next;
    returns the tasks recorded (to deliver once `db`'s transaction commits)."""
    recorded = []
    for schedule in (await db.execute(DUE, {"limit": limit})).all():
        try:
            cron = Cron(schedule.cron, schedule.timezone)
            window = max(schedule.next_run_at, schedule.now - dt.timedelta(seconds=catch_up_s))
            ticks = cron.between(window, schedule.now, TICKS_PER_ROUND)
            if not ticks and (latest := cron.latest_until(schedule.now)) >= schedule.next_run_at:
                ticks = [latest]
            # A round cut short at TICKS_PER_ROUND leaves the rest due for the next one.
            following = cron.next_after(ticks[-1] if len(ticks) == TICKS_PER_ROUND else schedule.now)
            last = None
        except (ValueError, KeyError, LookupError) as exc:
            logger.warning("schedule %s: cron %r no longer computes: %r", schedule.name, schedule.cron, exc)
            await db.execute(LATER, {"id": schedule.id})
            continue
        if schedule.lead_id is not None and not await db.scalar(LOCK_LEAD, {"id": schedule.lead_id}):
            continue  # its lead is being deleted (which clears it from the schedule): next round
        job_type = registry.get(schedule.type)
        for tick in ticks:
            task = await transitions.record_tick(
                db,
                schedule_id=schedule.id,
                tick=tick,
                type=schedule.type,
                payload=schedule.payload,
                # A type this worker does not know (a rolling deploy): the default policy's attempts.
                max_attempts=(job_type.retry if job_type is not None else RetryPolicy()).max_attempts,
                lead_id=schedule.lead_id,
                callback_url=schedule.callback_url,
            )
            if task is not None:
                recorded.append(task)
                last = tick
        await db.execute(FIRED, {"id": schedule.id, "next": following, "tick": last})
    return recorded


def check_declared(registry: Registry) -> list[tuple[str, Scheduled]]:
    """Each job type's declared schedules, checked as the API checks one; (type, declaration).
    A wrong declaration is a bug in a job module: ValueError naming it."""
    declared: dict[str, tuple[str, Scheduled]] = {}
    for type_name in registry:
        for scheduled in registry[type_name].schedules:
            where = f"job type {type_name!r}, schedule {scheduled.name!r}"
            if scheduled.name in declared:
                raise ValueError(f"{where}: the name is declared twice")
            try:
                Cron.parse(scheduled.cron, scheduled.timezone)
                registry.check(type_name, scheduled.payload)
            except Exception as exc:
                raise ValueError(f"{where}: {exc}") from exc
            declared[scheduled.name] = (type_name, scheduled)
    return list(declared.values())


async def declare(db: AsyncConnection, registry: Registry) -> int:
    """Create or update the schedules the job modules declare; how many changed."""
    now: dt.datetime = await db.scalar(NOW)
    changed = 0
    for type_name, scheduled in check_declared(registry):
        cron = Cron.parse(scheduled.cron, scheduled.timezone)
        params = {
            "id": uuid7(),
            "name": scheduled.name,
            "type": type_name,
            "payload": json.dumps(registry.check(type_name, scheduled.payload).stored()),
            "cron": cron.expression,
            "timezone": cron.timezone,
            "next_run_at": cron.next_after(now),
        }
        if (await db.execute(DECLARE, params)).first() is not None:
            changed += 1
        elif await db.scalar(MADE_BY_API, {"name": scheduled.name}):
            logger.warning(
                "schedule %r declared by job type %r is not applied: a schedule of that name was made"
                " through the API (rename one of them)",
                scheduled.name,
                type_name,
            )
    return changed
