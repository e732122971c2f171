"""Claims under limits: a job type's concurrency and rate limits, and concurrency keys.

The usual claim (one statement, `transitions.CLAIM_MANY`) leaves such tasks to this one, which
decides in a transaction holding an advisory lock per limited type and per key (taken in one
order, so two claimers cannot deadlock): while it decides, no other claimer of those types or
keys can, and a count it reads stays true until it commits. Every count is of task rows and
every time PostgreSQL's, so any number of processes and hosts share one limit, and a worker
that dies frees its slots when its lease expires.

A task held back stays due in PostgreSQL, in its place in line (a key's order is the order the
tasks were recorded), its updated_at stamped so that the reconciler leaves it alone for a grace:
the worker that held it back delivers it again after a delay (LIMIT_RECHECK_S for a concurrency
limit or a key, when a start comes free for a rate) once its SAQ job has ended, and if that
worker dies first, the reconciler delivers it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from orchestrator import metrics
from orchestrator.queue import Delivery
from orchestrator.tasks import transitions

if TYPE_CHECKING:
    import uuid

    from sqlalchemy.ext.asyncio import AsyncConnection

    from orchestrator.job import Registry
    from orchestrator.tasks.transitions import Moved


@dataclass(frozen=True)
class Throttled:
    """A delivery a limit held back: to be delivered again once this one's SAQ job has ended."""

    delivery: Delivery


WAITING = text(
    """
    SELECT id, type, concurrency_key FROM tasks
    WHERE id = ANY(CAST(:ids AS UUID[])) AND status IN ('PENDING', 'RETRY')
      AND run_at <= statement_timestamp()
    ORDER BY created_at, id
    """
)
# A claimer frozen or cut off while it holds a lock blocks its types and keys only this long
# (its session ends, its transaction with it); one waiting that long gives up and is delivered
# again. Transaction-scoped, as a pooler in transaction mode needs.
BOUNDS = text(
    "SELECT set_config('lock_timeout', '2s', true),"
    " set_config('idle_in_transaction_session_timeout', '10s', true)"
)
LOCK = text(
    """
    SELECT pg_advisory_xact_lock(hashtextextended(name, 0))
    FROM (SELECT name FROM unnest(CAST(:names AS TEXT[])) AS name ORDER BY name) AS ordered
    """
)
# Per key: its running task if it has one, else its first waiting one (the only one that may go).
# A task waiting to retry holds its place; one submitted to run later does not hold the line
# before it is due (else a task for next year would stop its key until then).
KEY_HEADS = text(
    """
    SELECT DISTINCT ON (concurrency_key) concurrency_key, id, status,
        greatest(0, extract(epoch FROM run_at - statement_timestamp())) AS due_in_s
    FROM tasks
    WHERE concurrency_key = ANY(CAST(:keys AS TEXT[]))
      AND (status IN ('RETRY', 'PROCESSING') OR (status = 'PENDING' AND run_at <= statement_timestamp()))
    ORDER BY concurrency_key, status = 'PROCESSING' DESC, created_at, id
    """
)
RUNNING = text(
    """
    SELECT type, count(*) AS running FROM tasks
    WHERE status = 'PROCESSING' AND type = ANY(CAST(:types AS TEXT[])) GROUP BY type
    """
)
# A type's starts in its current window, one time each: up to :wanted more are granted while it
# holds fewer than :amount; `wait_s` is when the oldest leaves the window (a start comes free).
# The time is the moment of the claim (clock_timestamp), not its transaction's start: a claim
# that waited for the lock must not count as having started before the one it waited for.
NEW_WINDOW = text(
    "INSERT INTO rate_windows (name, starts) VALUES (:name, '{}') ON CONFLICT (name) DO NOTHING"
)
TAKE_STARTS = text(
    """
    WITH live AS (
        SELECT name, ARRAY(SELECT s FROM unnest(starts) AS s
                           WHERE s > clock_timestamp() - make_interval(secs => :period_s)
                           ORDER BY s) AS starts
        FROM rate_windows WHERE name = :name
    ), granted AS (
        SELECT name, starts || array_fill(clock_timestamp(),
                                          ARRAY[greatest(0, least(:wanted, :amount - cardinality(starts)))])
                     AS starts
        FROM live
    )
    UPDATE rate_windows AS w SET starts = g.starts
    FROM granted AS g, live AS l WHERE w.name = g.name
    RETURNING cardinality(g.starts) - cardinality(l.starts) AS granted,
        extract(epoch FROM g.starts[1] + make_interval(secs => :period_s) - clock_timestamp()) AS wait_s
    """
)


async def claim_limited(
    db: AsyncConnection,
    ids: list[uuid.UUID],
    registry: Registry,
    worker: str,
    lease_s: float,
    recheck_s: float,
) -> dict[uuid.UUID, Moved | Throttled]:
    """In `db`'s transaction (the caller commits): claim those of `ids` their limits let run, in
    the order they were recorded, and hold the others back."""
    await db.execute(BOUNDS)
    waiting = (await db.execute(WAITING, {"ids": ids})).all()
    if not waiting:
        return {}
    limits = {row.type: registry.limits(row.type) for row in waiting}
    keys = sorted({row.concurrency_key for row in waiting if row.concurrency_key is not None})
    limited = sorted(name for name, limit in limits.items() if limit)
    names = [f"key:{key}" for key in keys] + [f"type:{name}" for name in limited]
    await db.execute(LOCK, {"names": names})

    delays: dict[uuid.UUID, float] = {}
    going = list(waiting)
    if keys:
        heads = {row.concurrency_key: row for row in await db.execute(KEY_HEADS, {"keys": keys})}
        for row in going:
            head = heads.get(row.concurrency_key)
            if row.concurrency_key is not None and (
                head is None or head.id != row.id or head.status == "PROCESSING"
            ):
                # Behind a task waiting to retry: not before that one is due. Behind a running
                # one: its end hands the key on; the look again is for an end that never comes.
                waiting_s = float(head.due_in_s) if head is not None and head.status == "RETRY" else 0.0
                delays[row.id] = waiting_s + _recheck(recheck_s)
        going = [row for row in going if row.id not in delays]
    running = (
        {row.type: row.running for row in await db.execute(RUNNING, {"types": limited})} if limited else {}
    )
    by_type: dict[str, list[Any]] = defaultdict(list)
    for row in going:
        by_type[row.type].append(row)
    for name, rows in by_type.items():
        limit = limits[name]
        if limit.concurrency is not None:
            free = max(0, limit.concurrency - running.get(name, 0))
            for row in rows[free:]:
                delays[row.id] = _recheck(recheck_s)
            rows[free:] = []
        if limit.rate is not None and rows:
            amount, period_s = limit.rate
            params = {"name": name, "wanted": len(rows), "amount": amount, "period_s": period_s}
            await db.execute(NEW_WINDOW, {"name": name})
            taken = (await db.execute(TAKE_STARTS, params)).one()
            for place, row in enumerate(rows[taken.granted :]):
                # When a start comes free for it: the first `amount` in line at the next one,
                # the next `amount` a period later, and so on, spread within their period.
                spread = random.uniform(0, period_s / amount)  # noqa: S311
                delays[row.id] = max(0.01, float(taken.wait_s)) + (place // amount) * period_s + spread
            rows[taken.granted :] = []
    chosen = [row.id for rows in by_type.values() for row in rows]
    results: dict[uuid.UUID, Moved | Throttled] = {}
    if chosen:
        claimed = await transitions.claim_many(db, chosen, worker, lease_s)
        results |= {task.id: task for task in claimed.moved if task is not None}
    if delays:
        for row in await transitions.hold_back(db, list(delays)):
            results[row.id] = Throttled(Delivery(row.id, row.attempts, delays[row.id]))
        for row in waiting:
            if row.id in delays:
                metrics.task_event(row.type, metrics.TaskEvent.HELD_BACK)
    return results


def _recheck(recheck_s: float) -> float:
    # Jittered: tasks held back together do not all come back at one moment.
    return recheck_s * random.uniform(0.5, 1.5)  # noqa: S311
