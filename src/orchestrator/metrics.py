"""What the service counts for Prometheus, recorded in the process where it happens.

Metric objects live in prometheus_client's process-wide registry, as that library is made to be
used. With `PROMETHEUS_MULTIPROC_DIR` set (the commands set it before they start any API or job
worker process) each process writes its values to files there and the command's metrics
endpoint adds them up: counters of a process that exited still count, so no sum goes backwards.
"""

from __future__ import annotations

import contextlib
import logging
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

# Jobs last from milliseconds to the longest timeout (an hour); queue waits likewise.
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)


class TaskEvent(StrEnum):
    SUBMITTED = "submitted"  # a task row written (an API request, a lead's sync, a workflow step)
    STARTED = "started"  # an attempt claimed by a worker
    COMPLETED = "completed"
    RETRIED = "retried"  # an attempt failed and another is due later
    FAILED = "failed"  # for good: attempts spent, a permanent error, or an expired lease's last
    CANCELLED = "cancelled"  # through the API
    REQUEUED = "requeued"  # a FAILED or CANCELLED task sent back through the API
    HELD_BACK = "held_back"  # due, and held back by its type's limits or its concurrency key


# Requests counted by the histogram's _count; one series per method, route template and status.
HTTP_SECONDS = Histogram(
    "orchestrator_http_request_duration_seconds",
    "HTTP requests: time to the start of the answer",
    ["method", "path", "status_code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TASKS = Counter("orchestrator_tasks", "Task lifecycle events, by job type", ["type", "event"])
RUN_SECONDS = Histogram(
    "orchestrator_task_run_seconds", "How long an attempt's handler ran", ["type"], buckets=SECONDS
)
QUEUE_WAIT_SECONDS = Histogram(
    "orchestrator_task_queue_wait_seconds",
    "From when an attempt was due (submitted, run_at, its retry's time) to its claim, by PostgreSQL's clock",
    ["type"],
    buckets=SECONDS,
)
LEASE_EXPIRIES = Counter("orchestrator_lease_expiries", "Attempts whose lease ran out (worker lost)")
REDELIVERIES = Counter("orchestrator_redeliveries", "Due tasks the reconciler enqueued again")
RECONCILER_ROUNDS = Counter(
    "orchestrator_reconciler_rounds", "Reconciler rounds led (one per interval in all)"
)
# limit: "key" (a key's own rate), "wrong_keys" (an address's failed keys)
RETENTION_DELETED = Counter("orchestrator_retention_deleted", "Finished tasks deleted after TASK_RETENTION")
RATE_LIMITED = Counter("orchestrator_rate_limited", "Requests refused with 429", ["limit"])
CALLBACKS = Counter(
    "orchestrator_callbacks", "Callback POSTs by outcome: delivered, retried, given_up", ["outcome"]
)
for _limit in ("key", "wrong_keys"):  # served from 0, so that a rate sees the first refusal
    RATE_LIMITED.labels(_limit)
DB_CONNECTIONS_IN_USE = Gauge(
    "orchestrator_db_connections_in_use",
    "PostgreSQL connections checked out of the pools",
    ["role"],
    multiprocess_mode="livesum",
)


# Every update goes through these: a metric that cannot be written (a full disk under the
# multiprocess folder) is logged once, and never fails the request or the task it counts.
def count(counter: Counter, amount: float = 1, *labels: str) -> None:
    with _never_raising():
        (counter.labels(*labels) if labels else counter).inc(amount)


def observe(histogram: Histogram, value: float, *labels: str) -> None:
    with _never_raising():
        histogram.labels(*labels).observe(value)


def task_event(type_: str, what: TaskEvent, amount: int = 1) -> None:
    count(TASKS, amount, type_, what)


@contextlib.contextmanager
def _never_raising() -> Iterator[None]:
    global _warned
    try:
        yield
    except Exception:
        if not _warned:
            _warned = True
            logger.warning("a metric could not be recorded; metrics may be incomplete", exc_info=True)


_warned = False


def watch_pool(engine: AsyncEngine, role: str) -> None:
    """Count the engine's checked-out connections in DB_CONNECTIONS_IN_USE."""
    gauge = DB_CONNECTIONS_IN_USE.labels(role)

    def checked_out(*_: Any) -> None:
        with _never_raising():
            gauge.inc()

    def checked_in(*_: Any) -> None:
        with _never_raising():
            gauge.dec()

    event.listen(engine.sync_engine.pool, "checkout", checked_out)
    event.listen(engine.sync_engine.pool, "checkin", checked_in)
