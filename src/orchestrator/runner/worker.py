"""A worker process: SAQ's Worker running run_task, plus the reconciler loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

import httpx
from saq import Worker
from saq.types import Context, WorkerInfo
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from orchestrator import metrics, tracing
from orchestrator.db import engine_options, prepare
from orchestrator.job import registry_for
from orchestrator.queue import RUN_TASK, make_queue
from orchestrator.runner.callbacks import callbacks_forever
from orchestrator.runner.execute import Runner
from orchestrator.runner.reconciler import reconcile_forever
from orchestrator.runner.retention import retention_forever
from orchestrator.runner.ticker import tick_forever
from orchestrator.schedules.ticks import check_declared
from orchestrator.workers import registry as workers
from orchestrator.workers.registry import WorkerIdentity

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

DRAIN_S = 30.0


class PromptWorker(Worker[Context]):
    """SAQ's Worker, stopping promptly and never cancelled by Redis.

    SAQ's upkeep loops sleep out their timer (sweep: a minute) before they look at the stop
    event, and `stop()` waits for them as for jobs: every SIGTERM cost the whole grace period.
    They hold no work, so they are cancelled first; the job tasks keep their grace."""

    def __init__(
        self, *args: Any, grace_s: int, identity: WorkerIdentity, engine: AsyncEngine, **kwargs: Any
    ) -> None:
        super().__init__(*args, id=identity.id, shutdown_grace_period_s=grace_s, **kwargs)
        self.grace_s, self.identity, self.engine = grace_s, identity, engine

    async def worker_info(self, ttl: int = 60) -> WorkerInfo:
        """SAQ's heartbeat, which its UI lists, and ours in PostgreSQL, which outlives Redis and
        shows a worker that stopped beating."""
        running = len(self.job_task_contexts)
        self._metadata = {
            "host": self.identity.host,
            "pid": self.identity.pid,
            "concurrency": self.concurrency,
            "running": running,
        }
        # Redis first, kept for three beats: a slow PostgreSQL must not blank the SAQ UI's list.
        info = await super().worker_info(ttl * 3)
        try:
            await workers.beat(self.engine, self.identity, running)
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("worker %s: heartbeat not written to PostgreSQL: %r", self.id, exc)
        return info

    async def stop(self) -> None:
        # A stop that waits out the grace period for running jobs looks like a hang; say so.
        running = len(self.job_task_contexts)
        logger.info(
            "worker %s stopping: %d job(s) running, up to %d s to finish", self.id, running, self.grace_s
        )
        self.event.set()
        for loop in list(self.tasks):
            if loop.get_name() != "process":
                loop.cancel()
        await super().stop()

    async def abort(self, abort_threshold: float) -> None:
        """Never cancel a running job because its Redis record says ABORTED. The reconciler marks
        so a job whose claim it judged lost (one slower than the grace may still land), a Redis
        restored from a snapshot may carry old marks, and an operator cancels through the API:
        a handler stops when PostgreSQL says its attempt is over (the lease keeper), only then."""


async def serve(settings: Settings, concurrency: int) -> None:
    """Run until SIGTERM/SIGINT; in-flight jobs get `shutdown_grace_s`, the rest are handed back."""
    # Claims and completions are batched; each running job still renews its lease. Keep
    # processes x (pool + overflow) under PostgreSQL's max_connections.
    pool_size = settings.worker_db_pool_size or min(concurrency + 2, 30)
    options = engine_options(settings) | {
        "pool_size": pool_size,
        "max_overflow": settings.worker_db_max_overflow,
    }
    engine = prepare(create_async_engine(settings.sqlalchemy_url, **options), settings)
    metrics.watch_pool(engine, "worker")
    tracing.start(settings, "orchestrator-worker")
    queue = make_queue(settings)
    # No colon: SAQ's UI finds a worker's info by the last `:`-separated part of its Redis key.
    host = socket.gethostname().replace(":", "-")
    identity = WorkerIdentity(
        # host-pid, and a nonce: a container restarted with the same hostname and pid (or two
        # sharing the host's network and name) is another worker, with a row of its own.
        id=f"{host}-{os.getpid()}-{secrets.token_hex(2)}",
        host=host,
        pid=os.getpid(),
        queue=settings.queue_name,
        concurrency=concurrency,
        heartbeat_s=settings.worker_heartbeat_s,
    )
    worker_id = identity.id
    # Each transition is one statement: in autocommit it costs one round trip. Not through a
    # transaction pooler, which may hand a statement's parse and its execution, made outside a
    # transaction, to two different server connections.
    transitions_engine = (
        engine if settings.db_transaction_pooler else engine.execution_options(isolation_level="AUTOCOMMIT")
    )
    runner = Runner(
        engine=transitions_engine,
        sessions=async_sessionmaker(engine, expire_on_commit=False),
        queue=queue,
        registry=registry_for(settings),
        settings=settings,
        worker_id=worker_id,
        http=httpx.AsyncClient(timeout=settings.crm_webhook_timeout_s, follow_redirects=False),
    )
    check_declared(runner.registry)  # a job module's wrong schedule stops the start, named
    background: list[asyncio.Task[None]] = []

    async def startup(_: Context) -> None:
        try:
            await workers.started(transitions_engine, identity)
        except (SQLAlchemyError, OSError) as exc:  # the beats write the row once it answers
            logger.warning("worker %s: not registered in PostgreSQL yet: %r", worker_id, exc)
        background.append(asyncio.create_task(reconcile_forever(engine, queue, settings)))
        background.append(asyncio.create_task(retention_forever(transitions_engine, settings)))
        background.append(asyncio.create_task(tick_forever(engine, queue, runner.registry, settings)))
        background.append(asyncio.create_task(callbacks_forever(engine, settings)))
        logger.info("worker %s: %d job types, concurrency %d", worker_id, len(runner.registry), concurrency)

    async def shutdown(_: Context) -> None:
        # Writes that end attempts, and effects under way (an SMTP exchange), finish first.
        await runner.drain(timeout_s=DRAIN_S)
        with contextlib.suppress(SQLAlchemyError, OSError):  # then it shows as lost, not stopped
            await workers.stopped(transitions_engine, worker_id)
        for loop in background:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await runner.http.aclose()
        await queue.disconnect()
        await engine.dispose()

    worker = PromptWorker(
        queue,
        functions=[(RUN_TASK, runner.run_task)],
        identity=identity,
        engine=transitions_engine,
        concurrency=concurrency,
        startup=startup,
        shutdown=shutdown,
        after_process=runner.redeliver,
        grace_s=settings.shutdown_grace_s,
        # After the grace period SAQ cancels the jobs; give handlers time to unwind and the
        # hand-back (PROCESSING -> PENDING) time to be written. SAQ's default is 1 s.
        cancellation_hard_deadline_s=5.0,
        # sweep: SAQ's own stuck-job check. Our leases and the reconciler do that job from
        # PostgreSQL; SAQ's sweep only tidies Redis, so once a minute is plenty.
        timers={"schedule": 1, "sweep": 60, "abort": 1, "worker_info": settings.worker_heartbeat_s},
        dequeue_timeout=1.0,
    )
    await queue.connect()
    await worker.start()
