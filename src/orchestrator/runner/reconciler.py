"""The reconciler: repairs the gap between PostgreSQL (the truth) and Redis (the queue).

Every worker process runs the loop; a round-start row in PostgreSQL lets one of them act per
interval across all processes and hosts, so any number of workers can run and any can die.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from saq.job import Status
from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.exc import DBAPIError

from orchestrator import metrics
from orchestrator.db import sqlstate
from orchestrator.idempotency import forget_expired
from orchestrator.metrics import TaskEvent
from orchestrator.queue import Delivery, enqueue
from orchestrator.runner.wakeups import wake_workflows
from orchestrator.tasks.transitions import expire_leases

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from typing import Any

    from saq.queue.redis import RedisQueue
    from sqlalchemy.engine import Row
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

# One round an interval across every process and host, by PostgreSQL's clock: whoever moves the
# round's start first leads it; the others, even a moment later, find it too recent and skip.
ROUND = text(
    """
    INSERT INTO reconciler_rounds AS r (name, started_at) VALUES (:name, now())
    ON CONFLICT (name) DO UPDATE SET started_at = now()
    WHERE r.started_at <= now() - make_interval(secs => :interval_s)
    RETURNING due_after_run_at, due_after_id
    """
)

# Due tasks untouched for a few seconds (fresh ones were just enqueued by whoever wrote them,
# and checking each against Redis under load would cost the workers a quarter of their time),
# from where the last round stopped: rightly queued tasks, however many, never hide the others.
# The partial index ix_tasks_due bounds each scan to the rows it returns.
DUE = text(
    """
    SELECT id, attempts, run_at FROM tasks
    WHERE status IN ('PENDING', 'RETRY') AND run_at <= now() - make_interval(secs => :grace_s)
      AND (run_at, id) > (coalesce(:after_run_at, '-infinity'),
                          coalesce(:after_id, '00000000-0000-0000-0000-000000000000'))
      AND updated_at <= now() - make_interval(secs => :grace_s)
    ORDER BY run_at, id LIMIT :limit
    """
).bindparams(bindparam("after_run_at", type_=TIMESTAMP(timezone=True)), bindparam("after_id", type_=Uuid))
DUE_NEXT = text(
    "UPDATE reconciler_rounds SET due_after_run_at = :run_at, due_after_id = :id WHERE name = 'reconcile'"
).bindparams(bindparam("run_at", type_=TIMESTAMP(timezone=True)), bindparam("id", type_=Uuid))

# The SAQ jobs, of those given as (task id, attempt it delivered), that their task went on
# without: no row any more, or a row that is neither running that job's attempt nor waiting for
# that delivery, and has not changed for the grace by the database's clock (so a job whose run
# has just ended is finished by its own worker, not here).
LEFT_BEHIND = text(
    """
    SELECT j.id, j.attempt FROM unnest(CAST(:ids AS UUID[]), CAST(:attempts AS INT[])) AS j(id, attempt)
    LEFT JOIN tasks AS t ON t.id = j.id
    WHERE t.id IS NULL
       OR (NOT (t.status = 'PROCESSING' AND t.attempts = j.attempt + 1)
           AND NOT (t.status IN ('PENDING', 'RETRY') AND t.attempts = j.attempt)
           AND t.updated_at <= now() - make_interval(secs => :grace_s))
    """
)
ACTIVE_CHECKED = 1000  # per round: the oldest ones first
LISTS_CHECKED = 10_000  # queued + active job ids read in a round, at most
# A holder frozen between statements keeps its locks only until PostgreSQL ends its idle
# session; one cut off in the middle of a statement is not idle, and TCP keepalives find its
# peer gone within about 25 s instead of the kernel's two hours. Transaction-scoped, as a pooler
# in transaction mode needs; one round trip.
STEP_BOUNDS = text(
    "SELECT set_config('idle_in_transaction_session_timeout', '10s', true),"
    " set_config('tcp_keepalives_idle', '10', true), set_config('tcp_keepalives_interval', '5', true),"
    " set_config('tcp_keepalives_count', '3', true)"
)
ROUND_LOCK_TIMEOUT = text("SET LOCAL lock_timeout = '1s'")
LOCK_NOT_AVAILABLE = "55P03"


async def reconcile_once(
    engine: AsyncEngine, queue: RedisQueue, settings: Settings, limit: int = 5000
) -> int | None:
    """One round: expire lost leases, then deliver again every due task whose delivery Redis lost
    or holds stuck, then finish the SAQ jobs that killed workers left ACTIVE. Returns how many
    were enqueued; None when this interval's round is another process's. Each step commits on
    its own: a scan that fails (a statement timeout, Redis away) undoes no step before it."""
    # The round's row also says where the last round's due scan stopped.
    led = await lead_round(engine, "reconcile", settings.reconcile_interval_s)
    if led is None:
        return None
    metrics.count(metrics.RECONCILER_ROUNDS)
    async with step(engine) as db:
        expired = await expire_leases(db)
    metrics.count(metrics.LEASE_EXPIRIES, len(expired.outcomes))
    for task_type, status in expired.outcomes:  # their attempts ended here, not in a worker
        metrics.task_event(task_type, TaskEvent.RETRIED if status == "RETRY" else TaskEvent.FAILED)
    await wake_workflows(engine, queue, expired.ended_steps_of, settings.saq_job_ttl_s)
    async with step(engine) as db:
        await forget_expired(db)
    async with step(engine) as db:
        params = {"limit": limit, "grace_s": settings.reconcile_grace_s}
        after = {"after_run_at": led.due_after_run_at, "after_id": led.due_after_id}
        rows = (await db.execute(DUE, params | after)).all()
        # A full page: the next round goes on after it; a short one: the next starts over.
        last = rows[-1] if len(rows) == limit else None
        await db.execute(DUE_NEXT, {"run_at": last.run_at if last else None, "id": last.id if last else None})
        due = [Delivery(row.id, row.attempts) for row in rows]
    redeliver = await _undelivered(queue, due, settings.reconcile_grace_s) if due else []
    enqueued = await enqueue(queue, redeliver, settings.saq_job_ttl_s) if redeliver else 0
    metrics.count(metrics.REDELIVERIES, enqueued)
    if enqueued:
        logger.info("reconciler: delivered %d task(s) again", enqueued)
    await _finish_left_behind(engine, queue, settings.reconcile_grace_s)
    return enqueued


async def lead_round(engine: AsyncEngine, name: str, interval_s: float) -> Row[Any] | None:
    """The round row `name` if this process leads this interval's round, else None (another
    process led it within the interval, or one frozen mid-round holds the row: skipped, its
    session will end)."""
    try:
        async with step(engine) as db:
            await db.execute(ROUND_LOCK_TIMEOUT)
            led: Row[Any] | None = (await db.execute(ROUND, {"name": name, "interval_s": interval_s})).first()
            return led
    except DBAPIError as exc:
        if sqlstate(exc) != LOCK_NOT_AVAILABLE:
            raise
        return None


@asynccontextmanager
async def step(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One step's transaction. A process frozen or cut off inside it (SIGSTOP, a partition)
    keeps its locks only until PostgreSQL ends its idle session, not for the TCP timeout's
    hours; SET LOCAL keeps it to this transaction, as a pooler in transaction mode needs."""
    async with engine.begin() as db:
        await db.execute(STEP_BOUNDS)
        yield db


async def _finish_left_behind(engine: AsyncEngine, queue: RedisQueue, grace_s: float) -> None:
    """SAQ keeps a job ACTIVE until its worker finishes it, and with SAQ's timeouts and
    heartbeats off (PostgreSQL's leases do that work) nothing else ever does: a worker killed
    mid-job leaves it in Redis for good. Finish those whose task went on without them."""
    ids = await queue.redis.lrange(queue.namespace("active"), 0, ACTIVE_CHECKED - 1)  # oldest first
    # Dequeued over the grace ago by SAQ's clock too: a job just taken is its worker's to finish.
    taken_before_ms = (time.time() - grace_s) * 1000
    jobs = [
        job
        for raw in (await queue.redis.mget(ids) if ids else [])
        if raw and (job := queue.deserialize(raw)) and (job.started or 0) < taken_before_ms
    ]
    by_delivery = {delivery: job for job in jobs if (delivery := _delivery_of(job.key)) is not None}
    if not by_delivery:
        return
    params = {
        "ids": [delivery.task_id for delivery in by_delivery],
        "attempts": [delivery.attempts for delivery in by_delivery],
        "grace_s": grace_s,
    }
    async with engine.begin() as db:
        left = [Delivery(row.id, row.attempt) for row in await db.execute(LEFT_BEHIND, params)]
    for delivery in left:
        await queue.finish(
            by_delivery[delivery], Status.ABORTED, error="its worker was lost; the task went on"
        )
    if left:
        logger.info("reconciler: finished %d SAQ job(s) that lost workers left active", len(left))


def _delivery_of(job_key: str) -> Delivery | None:
    task_id, _, attempt = job_key.rpartition(":")
    try:
        return Delivery(uuid.UUID(task_id), int(attempt))
    except ValueError:
        return None  # not a job of ours


async def _undelivered(queue: RedisQueue, due: list[Delivery], grace_s: float) -> list[Delivery]:
    """The due tasks Redis will not run: job missing; its id left in SAQ's incomplete set with
    no data (evicted, deleted by hand); QUEUED but in no list a worker pops (checked while the
    lists are short); scheduled for later than the task is due (a retry by hand of a cancelled
    task); or ACTIVE for over `grace_s` while the task was never claimed (its worker died
    between dequeue and claim). Such jobs are finished or cleared in SAQ so the key frees up."""
    incomplete = queue.namespace("incomplete")
    async with queue.redis.pipeline(transaction=False) as pipe:
        for delivery in due:
            # The incomplete set holds every queued, scheduled and running SAQ job.
            pipe.zscore(incomplete, queue.job_id(delivery.job_key))
        scores = await pipe.execute()
    now = time.time()
    # A job dequeued a moment ago is ACTIVE before its claim commits, while our PENDING row was
    # read: judging it then would abort a live run and deliver it twice.
    dequeued_before_ms = (now - grace_s) * 1000
    missing = [delivery for delivery, score in zip(due, scores, strict=True) if score is None]
    held = [delivery for delivery, score in zip(due, scores, strict=True) if score is not None]
    stale_later = {
        d.job_key for d, score in zip(due, scores, strict=True) if score is not None and score > now
    }
    jobs = await queue.jobs(delivery.job_key for delivery in held) if held else []
    poppable = await _poppable(queue) if any(job and job.status == Status.QUEUED for job in jobs) else None
    for delivery, job in zip(held, jobs, strict=True):
        if job is None:  # only its id is left: SAQ's enqueue would take it for a live job
            await queue.redis.zrem(incomplete, queue.job_id(delivery.job_key))
            await queue.redis.lrem(queue.namespace("queued"), 0, queue.job_id(delivery.job_key))
            missing.append(delivery)
            continue
        stuck = job.status == Status.ACTIVE and (job.started or 0) < dequeued_before_ms
        unreachable = job.status == Status.QUEUED and poppable is not None and job.id not in poppable
        if stuck or unreachable or delivery.job_key in stale_later:
            await queue.finish(job, Status.ABORTED, error="not claimed in time; delivered again")
            missing.append(delivery)
    return missing


async def _poppable(queue: RedisQueue) -> set[str] | None:
    """Every job id a worker may be about to pop or has just popped (the queued and active
    lists); None when they are too long to read this round (a backlog is draining)."""
    async with queue.redis.pipeline(transaction=True) as pipe:
        pipe.llen(queue.namespace("queued"))
        pipe.llen(queue.namespace("active"))
        lengths = await pipe.execute()
    if sum(lengths) > LISTS_CHECKED:
        return None
    async with queue.redis.pipeline(transaction=True) as pipe:
        pipe.lrange(queue.namespace("queued"), 0, -1)
        pipe.lrange(queue.namespace("active"), 0, -1)
        queued, active = await pipe.execute()
    return {job_id.decode() for job_id in (*queued, *active)}


async def reconcile_forever(engine: AsyncEngine, queue: RedisQueue, settings: Settings) -> None:
    while True:
        try:
            await reconcile_once(engine, queue, settings)
        except asyncio.CancelledError:
            raise
        except Exception:  # PostgreSQL or Redis away: try again next round, never die
            logger.warning("reconciler round failed", exc_info=True)
        await asyncio.sleep(settings.reconcile_interval_s)
