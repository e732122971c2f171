"""What a command's metrics endpoint collects: every process's values, and, where it runs job
workers, the backlog and the workers' states as PostgreSQL has them at the scrape.

Imported only once PROMETHEUS_MULTIPROC_DIR is set (see exporter): prometheus_client picks its
way of storing values when it is first imported, and the processes forked from here inherit it.
"""

from __future__ import annotations

import asyncio
import logging
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

# Uses the partial index of due tasks: its cost grows with the backlog, not with the table.
DUE = text(
    """
    SELECT type, count(*) AS due, extract(epoch FROM now() - min(run_at))::float AS oldest_s
    FROM tasks WHERE status IN ('PENDING', 'RETRY') AND run_at <= now() GROUP BY type
    """
)


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
            due_rows, worker_states = asyncio.run(self._read())
        except Exception as exc:  # a scrape must answer; the failure is the metric
            logger.warning("metrics: PostgreSQL did not answer: %r", exc)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        for row in due_rows:
            due.add_metric([row.type], row.due)
            oldest.add_metric([row.type], row.oldest_s)
        for state, count in worker_states.items():
            workers.add_metric([state], count)
        return [up, due, oldest, workers]

    async def _read(self) -> tuple[list[Any], dict[str, int]]:
        engine = create_async_engine(
            self.settings.sqlalchemy_url, poolclass=NullPool, connect_args=connect_args(self.settings)
        )
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT_S), engine.connect() as connection:
                due_rows = (await connection.execute(DUE)).all()
                worker_states = await worker_registry.states(connection)
            return list(due_rows), worker_states
        finally:
            await engine.dispose()
