"""The SAQ adapter, shared by the API and the workers: the queue, the one function name, the job key
of an attempt, and the enqueue. The API imports this, never the worker.

A SAQ job carries nothing but the task id: payload, attempts and policy are read from PostgreSQL,
so Redis holds nothing that cannot be rebuilt from the task rows.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from saq.queue.redis import RedisQueue

if TYPE_CHECKING:
    import datetime as dt
    import uuid
    from collections.abc import Iterable

    from saq.queue import Queue

    from orchestrator.settings import Settings

__all__ = ["RUN_TASK", "Deliverable", "Deliveries", "Delivery", "enqueue", "make_queue", "nudge"]

logger = logging.getLogger(__name__)

# The one function registered with SAQ: claim, run the handler, record how it ended.
RUN_TASK = "run_task"


class Deliverable(Protocol):
    """A task row as the statement that wrote it left it (a `Task`)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def attempts(self) -> int: ...
    @property
    def run_at(self) -> dt.datetime: ...
    @property
    def updated_at(self) -> dt.datetime: ...


@dataclass(frozen=True)
class Delivery:
    """What SAQ needs to deliver one attempt of a task: which one, and in how many seconds.

    The delay is a difference of two times PostgreSQL wrote, never a time compared with this
    host's clock: a host behind the database would hold an immediate task back, one ahead
    would deliver early."""

    task_id: uuid.UUID
    attempts: int
    delay_s: float = 0.0

    @classmethod
    def of(cls, task: Deliverable) -> Delivery:
        # Both by the database's clock: run_at as of the statement that wrote the row.
        return cls(task.id, task.attempts, max(0.0, (task.run_at - task.updated_at).total_seconds()))

    @property
    def job_key(self) -> str:
        # One key per attempt: re-enqueueing the same attempt is a no-op in SAQ, while the next
        # attempt never collides with the job still finishing the previous one.
        return f"{self.task_id}:{self.attempts}"


class Deliveries:
    """Tasks a unit of work recorded, to be enqueued once its transaction has committed. A
    rolled-back task is harmless if enqueued anyway: its job finds no row to claim."""

    def __init__(self) -> None:
        self.pending: list[Delivery] = []

    def add(self, *tasks: Deliverable) -> None:
        self.pending.extend(Delivery.of(task) for task in tasks)

    def add_due(self, task_id: uuid.UUID, attempts: int) -> None:
        """A task a statement of this unit of work made due now (a woken workflow)."""
        self.pending.append(Delivery(task_id, attempts))


def make_queue(settings: Settings) -> RedisQueue:
    """The SAQ queue on its own Redis pool. redis-py's default pool fails at once past 100
    connections; a blocking pool waits for one instead, and SAQ's own throttle (20 operations
    by default) is raised so that enqueue bursts are not serialised."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_dsn,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )
    throttle = settings.redis_max_connections // 2
    return RedisQueue(Redis(connection_pool=pool), name=settings.queue_name, max_concurrent_ops=throttle)


# A delivery scheduled for later, made poppable now: what SAQ's own schedule timer does when
# its time comes, in one atomic step with it (a job it already moved is left alone).
_NUDGE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) > 0 then
    redis.call('ZADD', KEYS[1], 0, ARGV[1])
    redis.call('RPUSH', KEYS[2], ARGV[1])
    return 1
end
return 0
"""


async def nudge(queue: Queue, deliveries: Iterable[Delivery]) -> int:
    """Deliver now the given deliveries that wait in SAQ's schedule; how many did."""
    if not isinstance(queue, RedisQueue):
        return 0
    script = queue.redis.register_script(_NUDGE)
    keys = [queue.namespace("incomplete"), queue.namespace("queued")]
    moved = 0
    for delivery in deliveries:
        moved += int(await script(keys=keys, args=[queue.job_id(delivery.job_key)]))
    return moved


async def enqueue(queue: Queue, deliveries: Iterable[Delivery], job_ttl_s: int) -> int:
    """Hand deliveries to SAQ; returns how many were new to Redis. Redis errors are logged, not raised:
    the task row is the outbox, and the reconciler delivers what did not get through."""
    results = await asyncio.gather(
        *(_enqueue_one(queue, delivery, job_ttl_s) for delivery in deliveries), return_exceptions=True
    )
    failures = [result for result in results if isinstance(result, RedisError | OSError)]
    if failures:
        logger.warning("%d enqueue(s) failed (%s); the reconciler will retry", len(failures), failures[0])
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, RedisError | OSError):
            raise result
    return sum(1 for result in results if result is True)


async def _enqueue_one(queue: Queue, delivery: Delivery, job_ttl_s: int) -> bool:
    # SAQ's scheduler moves a job when the clock of the worker that runs it says so: a delay is
    # as good as the hosts' clocks agree; one that runs early finds the task not yet due
    # (run_task waits for it), one that runs late is delivered by the reconciler.
    scheduled = math.ceil(time.time() + delivery.delay_s) if delivery.delay_s > 0 else 0
    job = await queue.enqueue(
        RUN_TASK,
        key=delivery.job_key,
        task_id=str(delivery.task_id),
        scheduled=scheduled,
        # Attempts, timeouts and retries live in PostgreSQL and in run_task, not in SAQ: its
        # defaults (10 s timeout, one attempt) would cut long jobs short or drop failures.
        timeout=0,
        retries=1,
        heartbeat=0,
        ttl=job_ttl_s,
    )
    return job is not None
