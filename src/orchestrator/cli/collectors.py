"""What a command's metrics endpoint collects: every process's values, and, where it runs job
workers, the backlog and the workers' states as PostgreSQL has them at the scrape.

Imported only once PROMETHEUS_MULTIPROC_DIR is set (see exporter): prometheus_client picks its
way of storing values when it is first imported, and the processes forked from here inherit it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from orchestrator.db import connect_args
from orchestrator.workers import registry as worker_registry

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client import Metric

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S = 2.0
# One reading serves every scrape (and health check) within this: PostgreSQL sees at most one
# connection and one query from this endpoint at a time, however often it is asked.
READING_TTL_S = 10.0
DUE_COUNTED = 100_000  # a backlog larger than this shows as this many: its count stays cheap

# The oldest due tasks first (the partial index ix_tasks_due, in run_at order), at most
# DUE_COUNTED of them: their count by type, and each type's oldest.
DUE = text(
    """
    SELECT type, count(*) AS due, extract(epoch FROM now() - min(run_at))::float AS oldest_s
    FROM (SELECT type, run_at FROM tasks WHERE status IN ('PENDING', 'RETRY') AND run_at <= now()
          ORDER BY run_at LIMIT :counted) AS due
    GROUP BY type
    """
)


@dataclass(frozen=True)
class Reading:
    at: float
    due: list[Any]
    workers: dict[str, int]


class Processes(Collector):
    """Every process's values; a gauge of a process that is gone (Granian or the worker pool
    replaced it) stops counting, its counters keep theirs."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.inner = MultiProcessCollector(None, folder)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        for path in Path(self.folder).glob("gauge_live*.db"):
            pid = int(path.stem.rpartition("_")[2])
            if not psutil.pid_exists(pid):
                mark_process_dead(pid, self.folder)  # type: ignore[no-untyped-call]
        metrics: Iterable[Metric] = self.inner.collect()  # type: ignore[no-untyped-call]
        return metrics


class Backlog(Collector):
    """Due tasks by type and the age of the oldest, and workers by state, read at each scrape.
    A database that does not answer in time shows as orchestrator_database_up 0."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.reading: Reading | None = None

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("orchestrator_database_up", "PostgreSQL answered this scrape's queries")
        due = GaugeMetricFamily("orchestrator_tasks_due", "PENDING or RETRY tasks due now", labels=["type"])
        oldest = GaugeMetricFamily(
            "orchestrator_oldest_due_task_age_seconds",
            "How long the oldest due task has waited",
            labels=["type"],
        )
        workers = GaugeMetricFamily("orchestrator_workers", "Worker processes by state", labels=["state"])
        try:
            reading = self._fresh_reading()
        except Exception as exc:  # a scrape must answer; the failure is the metric
            logger.warning("metrics: PostgreSQL did not answer: %r", exc)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        for row in reading.due:
            due.add_metric([row.type], row.due)
            oldest.add_metric([row.type], row.oldest_s)
        for state, count in reading.workers.items():
            workers.add_metric([state], count)
        return [up, due, oldest, workers]

    def _fresh_reading(self) -> Reading:
        with self.lock:  # the HTTP server answers each scrape in a thread of its own
            if self.reading is None or time.monotonic() - self.reading.at > READING_TTL_S:
                due_rows, worker_states = asyncio.run(self._read())
                self.reading = Reading(time.monotonic(), due_rows, worker_states)
            return self.reading

    async def _read(self) -> tuple[list[Any], dict[str, int]]:
        engine = create_async_engine(
            self.settings.sqlalchemy_url, poolclass=NullPool, connect_args=connect_args(self.settings)
        )
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT_S), engine.connect() as connection:
                due_rows = (await connection.execute(DUE, {"counted": DUE_COUNTED})).all()
                worker_states = await worker_registry.states(connection)
            return list(due_rows), worker_states
        finally:
            await engine.dispose()
