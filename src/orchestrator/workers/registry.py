"""The statements behind `workers`: a process's heartbeat, its clean stop, and the operators' list."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# A worker that missed this many beats is lost (killed, frozen, or cut off from the database).
MISSED_BEATS = 3


@dataclass(frozen=True)
class WorkerIdentity:
    id: str
    host: str
    pid: int
    queue: str
    concurrency: int
    heartbeat_s: float


# Rows of workers gone a week are dropped when a worker starts: the list is not a history.
_FORGET = text("DELETE FROM workers WHERE last_seen_at < now() - interval '7 days'")
# Every beat, the first included (ids carry a nonce: each process has a row of its own). A row
# removed meanwhile (forgotten, a restored database) is written again.
_BEAT = text(
    """
    INSERT INTO workers (id, host, pid, queue, concurrency, running, heartbeat_s)
    VALUES (:id, :host, :pid, :queue, :concurrency, :running, :heartbeat_s)
    ON CONFLICT (id) DO UPDATE SET running = excluded.running, last_seen_at = now(), stopped_at = NULL
    """
)
_STOPPED = text("UPDATE workers SET running = 0, stopped_at = now() WHERE id = :id")
_STATE = """CASE WHEN stopped_at IS NOT NULL THEN 'stopped'
                WHEN last_seen_at > now() - make_interval(secs => heartbeat_s * :missed_beats) THEN 'live'
                ELSE 'lost' END"""
_LIST = text(
    f"""
    SELECT id, host, pid, queue, concurrency, running, started_at, last_seen_at, stopped_at,
           extract(epoch FROM now() - last_seen_at)::float AS last_seen_s, {_STATE} AS state
    FROM workers ORDER BY host, pid
    """  # noqa: S608  (a constant)
)
# For metrics and alerts: a worker stopped or lost counts for an hour after its last beat, so
# that an alert on lost workers resolves once the replacement has run a while.
_STATES = text(
    f"SELECT {_STATE} AS state, count(*) AS n FROM workers"  # noqa: S608  (a constant)
    " WHERE stopped_at IS NULL OR last_seen_at > now() - interval '1 hour' GROUP BY 1"
)


async def started(engine: AsyncEngine, worker: WorkerIdentity) -> None:
    async with engine.begin() as connection:
        await connection.execute(_FORGET)
        await connection.execute(_BEAT, asdict(worker) | {"running": 0})


async def beat(engine: AsyncEngine, worker: WorkerIdentity, running: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(_BEAT, asdict(worker) | {"running": running})


async def stopped(engine: AsyncEngine, worker_id: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(_STOPPED, {"id": worker_id})


async def listed(connection: AsyncConnection) -> list[dict[str, Any]]:
    return [dict(row) for row in (await connection.execute(_LIST, {"missed_beats": MISSED_BEATS})).mappings()]


async def states(connection: AsyncConnection) -> dict[str, int]:
    """How many workers are live, and stopped or lost within the last hour."""
    counted = {row.state: row.n for row in await connection.execute(_STATES, {"missed_beats": MISSED_BEATS})}
    return {state: counted.get(state, 0) for state in ("live", "stopped", "lost")}
