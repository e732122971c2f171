"""run_task: the one function SAQ calls. Claim the attempt, run the handler, record how it ended."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import DBAPIError
from structlog.contextvars import bound_contextvars

from orchestrator import metrics, tracing
from orchestrator.db import server_away, sqlstate, transient
from orchestrator.errors import PermanentError, Unprocessable
from orchestrator.job import JobContext, Superseded, Suspend
from orchestrator.metrics import TaskEvent
from orchestrator.queue import Delivery, enqueue, nudge
from orchestrator.runner.batching import Batcher
from orchestrator.runner.limits import Throttled, claim_limited
from orchestrator.runner.wakeups import wake_workflows
from orchestrator.tasks import transitions
from orchestrator.tasks.status import TaskStatus
from orchestrator.tasks.transitions import Moved

if TYPE_CHECKING:
    from collections.abc import Coroutine, Sequence

    import httpx
    from saq.queue import Queue
    from saq.types import Context
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
    from sqlalchemy.sql.elements import TextClause

    from orchestrator.job import JobType, Registry
    from orchestrator.queue import Deliverable
    from orchestrator.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A task whose type this worker does not know comes back ever later (5 s, 10 s, ... 5 min), so
# that old workers do not pass it between them while a deploy rolls on, and fails after
# MAX_HAND_BACKS (about 75 minutes in all) when no worker ever knows the type.
HAND_BACK_DELAY_S = 5.0
HAND_BACK_DELAY_MAX_S = 300.0
MAX_HAND_BACKS = 20
# SQLSTATE classes of a row PostgreSQL refuses for what it holds (data, constraints, sizes, a
# trigger's RAISE): written again, alone or later, it is refused again.
REFUSED_ROW = ("22", "23", "54", "P0001")
STATEMENT_TIMEOUT = "57014"
# The context key under which run_task leaves a delivery for after its SAQ job has ended.
REDELIVER = "redeliver"
ENDS = {TaskStatus.FAILED: TaskEvent.FAILED, TaskStatus.RETRY: TaskEvent.RETRIED}


@dataclass
class Runner:
    """Everything run_task needs, made once per worker process."""

    engine: AsyncEngine  # AUTOCOMMIT unless through a transaction pooler: one statement per transition
    sessions: async_sessionmaker[AsyncSession]
    queue: Queue
    registry: Registry
    settings: Settings
    worker_id: str
    http: httpx.AsyncClient
    claims: Batcher[uuid.UUID, Moved | Throttled | None] = field(init=False)
    completions: Batcher[tuple[uuid.UUID, int, str], bool] = field(init=False)
    _background: set[asyncio.Future[Any]] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.claims = Batcher(self._claim_many)
        self.completions = Batcher(self._complete_many)

    async def _claim_many(self, ids: list[uuid.UUID]) -> list[Moved | Throttled | None]:
        lease_s = self.settings.task_lease_s
        async with self.engine.begin() as db:
            claimed = await transitions.claim_many(db, ids, self.worker_id, lease_s, self.registry.limited())
        results: list[Moved | Throttled | None] = list(claimed.moved)
        if not claimed.held:
            return results
        try:
            limited = await self._claim_limited(claimed.held)
        except Exception as exc:
            # The tasks claimed above are this batch's to run whatever befalls these: theirs is
            # None (not claimed), and they are delivered again (run_task looks once more, then
            # the reconciler).
            logger.warning("claim under limits failed: %r", exc)
            return results
        # pop: a task delivered twice in this batch is claimed once; the first caller wins.
        return [limited.pop(task_id, result) for task_id, result in zip(ids, results, strict=True)]

    async def _claim_limited(self, held: list[uuid.UUID]) -> dict[uuid.UUID, Moved | Throttled]:
        # A transaction of its own (the usual engine runs each statement on its own): it holds the
        # limits' locks from its look at the counts to its claims.
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="READ COMMITTED")
            async with conn.begin():
                return await claim_limited(
                    conn,
                    held,
                    self.registry,
                    self.worker_id,
                    self.settings.task_lease_s,
                    self.settings.limit_recheck_s,
                )

    def _release_claimed(self, claim: asyncio.Future[Moved | Throttled | None]) -> None:
        if not claim.cancelled() and claim.exception() is None and isinstance(task := claim.result(), Moved):
            release = asyncio.ensure_future(self._release(task))
            self._background.add(release)
            release.add_done_callback(self._background.discard)

    async def _complete_many(self, done: list[tuple[uuid.UUID, int, str]]) -> list[bool | Exception]:
        try:
            return list(await self._complete(done))
        except Exception as exc:
            if len(done) == 1 or (transient(exc) and sqlstate(exc) != STATEMENT_TIMEOUT):
                raise  # every caller tries again: alone, each would meet the same outage
        # One row PostgreSQL refuses fails the whole statement: each alone, so that the others
        # land and only that row's caller sees its error.
        return [await self._complete_alone(item) for item in done]

    async def _complete_alone(self, item: tuple[uuid.UUID, int, str]) -> bool | Exception:
        try:
            return (await self._complete([item]))[0]
        except Exception as exc:
            return exc

    async def _complete(self, done: list[tuple[uuid.UUID, int, str]]) -> list[bool]:
        async with self.engine.begin() as db:
            return await transitions.complete_many(db, done, self.worker_id)

    async def run_task(self, ctx: Context, *, task_id: str) -> None:
        task = await self._claim(_uuid(task_id))
        if task is None:
            task = await self._claim_when_due(_uuid(task_id))
        if isinstance(task, Throttled):
            # Its job key is this job's: it can be enqueued again only once this job has ended.
            ctx[REDELIVER] = task.delivery  # type: ignore[literal-required]
            return
        if task is None:
            return  # duplicate, late or cancelled delivery: nothing to run
        metrics.task_event(task.type, TaskEvent.STARTED)
        # Both by the database's clock: the claim's now() and when the attempt was due.
        waited_s = (task.updated_at - task.run_at).total_seconds()
        metrics.observe(metrics.QUEUE_WAIT_SECONDS, max(0.0, waited_s), task.type)
        # Every log line of this attempt, the handler's own included, says which it is.
        context = {"task_id": str(task.id), "task_type": task.type, "attempt": task.attempts}
        with (
            bound_contextvars(**context, worker_id=self.worker_id),
            tracing.attempt_span(task.type, task.trace_context, **context),
        ):
            await self._attempt(task)
        if task.concurrency_key is not None or self.registry.limits(task.type).concurrency is not None:
            await self._next_in_line(task)

    async def _next_in_line(self, task: Moved) -> None:
        """This attempt freed its key, or a slot of its type: the tasks held back for it go now,
        not at their next look (their delivery waits in SAQ's schedule)."""
        limit = self.registry.limits(task.type).concurrency if task.concurrency_key is None else 1
        try:
            async with self.engine.begin() as db:
                waiting = await transitions.next_in_line(db, task.concurrency_key, task.type, limit or 1)
            await nudge(self.queue, [Delivery(row.id, row.attempts) for row in waiting])
        except Exception as exc:  # they still come at their next look
            logger.warning("task %s: the tasks waiting behind it were not woken: %r", task.id, exc)

    async def _attempt(self, task: Moved) -> None:
        try:
            checked = self.registry.check(task.type, task.payload)
        except Unprocessable as exc:
            if exc.extra.get("field") == "type":
                await self._hand_back(task)
            else:  # this worker knows the type, and its model refuses the payload: for good
                await self._fail(task, f"{exc.detail} (as this worker's job packages declare it)")
            return
        await self._run(task, checked.job_type, checked.model)

    async def redeliver(self, ctx: Context) -> None:
        """SAQ's after-process hook: deliver again what a limit held back, now that its job ended."""
        delivery = ctx.get(REDELIVER)
        if isinstance(delivery, Delivery):
            await enqueue(self.queue, [delivery], self.settings.saq_job_ttl_s)

    async def _claim(self, task_id: uuid.UUID) -> Moved | Throttled | None:
        claim = self.claims.enqueue(task_id)
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            # Shutting down mid-claim: whatever the claim took is handed straight back.
            claim.add_done_callback(self._release_claimed)
            raise

    async def _claim_when_due(self, task_id: uuid.UUID) -> Moved | Throttled | None:
        """A delivery before its task is due (SAQ's scheduler ran on a host whose clock is ahead
        of the one that enqueued it) waits, by the database's clock, up to about a reconciler
        round; one due later than that is left to the reconciler, which delivers due tasks."""
        for _ in range(3):  # timers may wake a little early: look again, a few times
            async with self.engine.begin() as db:
                wait_s = await transitions.due_in(db, task_id)
            if (
                wait_s is None
                or wait_s > self.settings.reconcile_interval_s + self.settings.reconcile_grace_s
            ):
                return None
            await asyncio.sleep(wait_s + 0.01)
            if (task := await self._claim(task_id)) is not None:
                return task
        return None

    async def _run(self, task: Moved, job_type: JobType[Any], payload: Any) -> None:
        timeout_s = min(task.timeout_s or job_type.timeout_s, job_type.timeout_s)
        context = JobContext(
            task_id=task.id,
            attempt=task.attempts,
            lead_id=task.lead_id,
            sessions=self.sessions,
            settings=self.settings,
            logger=logging.getLogger(f"jobs.{task.type}"),
            http=self.http,
            deliver=self._deliver,
            job_types=self.registry,
            protect=self._tracked,
            timeout_s=timeout_s,
        )
        clock = asyncio.get_running_loop().time
        started = clock()
        handler = asyncio.create_task(job_type.handler(context, payload))
        handler.add_done_callback(
            lambda _: metrics.observe(metrics.RUN_SECONDS, clock() - started, task.type)
        )
        lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep_lease(task, handler, lost))
        try:
            result = await asyncio.wait_for(handler, timeout_s)
        except asyncio.CancelledError:
            if _being_cancelled():
                await self._release(task)  # worker shutting down: hand the task back, uncounted
                raise
            if lost.is_set():
                logger.info("task %s: cancelled or taken away while running; handler stopped", task.id)
                return
            # The handler itself raised CancelledError (say, from a task it awaited): a failure.
            await self._retry_or_fail(task, job_type, "CancelledError raised by the handler")
        except TimeoutError:
            await self._retry_or_fail(task, job_type, f"timed out after {timeout_s:g} s")
        except Suspend as exc:
            moved = await self._finish(
                transitions.SUSPEND, task, detail={"waiting": exc.reason}, delay_s=exc.delay_s
            )
            if moved is not None:  # children go out only now, so that their end finds us waiting
                # ... and if one ended while we ran, its wake-up made us due now: go again.
                woken = [moved] if Delivery.of(moved).delay_s == 0 else []
                await self._deliver([*exc.deliver, *woken])
        except Superseded:
            logger.info("task %s: attempt %d was cancelled or taken over; it stopped", task.id, task.attempts)
        except PermanentError as exc:
            await self._fail(task, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            await self._retry_or_fail(task, job_type, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            await self._succeed(task, result)
        finally:
            keeper.cancel()
            await asyncio.wait([keeper])  # never leave a renewal holding a connection behind

    async def _succeed(self, task: Moved, result: Any) -> None:
        try:
            landed = await self._tracked(self._record_success(task, _json(result)))
        except DBAPIError as exc:
            if not sqlstate(exc).startswith((*REFUSED_ROW, STATEMENT_TIMEOUT)):
                raise  # not the result's doing: the lease runs out and the task is tried again
            # PostgreSQL refuses the result itself (or cannot write it in time): no attempt can.
            await self._fail(task, f"the handler's result could not be stored: {_database_error(exc)}")
            return
        if not landed:
            logger.info("task %s: completion refused; it was cancelled or taken over", task.id)
            return
        metrics.task_event(task.type, TaskEvent.COMPLETED)
        if task.parent_id is not None:
            await self._wake(task.parent_id)

    async def _record_success(self, task: Moved, result: str) -> bool:
        """Write the attempt's success until it lands (True) or the row says the attempt is no
        longer ours (False). The statement is fenced by the attempt, so writing it again can never
        complete twice; a database away for a moment never turns a success into a re-run. The
        lease is renewed meanwhile, so the task stays ours while the database answers at all.
        Other passing errors (a serialization failure, a statement timeout, resources) are tried
        for one lease at most: they may be this row's own doing, every time."""
        clock = asyncio.get_running_loop().time
        give_up_at = clock() + self.settings.task_lease_s
        delay_s = 0.05
        while True:
            try:
                return await self.completions.submit((task.id, task.attempts, result))
            except Exception as exc:
                if not (server_away(exc) or (transient(exc) and clock() < give_up_at)):
                    raise
                logger.warning(
                    "task %s: recording its success failed (%s %s); trying again",
                    task.id,
                    type(exc).__name__,
                    sqlstate(exc),
                )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)

    async def _keep_lease(self, task: Moved, handler: asyncio.Task[Any], lost: asyncio.Event) -> None:
        """Renew the lease; when the row says we no longer own the attempt, or when renewals have
        failed for most of a lease (the reconciler may hand the task to another worker), stop."""
        clock = asyncio.get_running_loop().time
        renewed = clock()
        lease_s = self.settings.task_lease_s
        while True:  # until cancelled: after the handler too, while its success is being written
            await asyncio.sleep(self.settings.task_heartbeat_s)
            try:
                # A renewal that hangs must not outlast the lease it is renewing.
                async with asyncio.timeout(max(0.0, renewed + 0.8 * lease_s - clock())):
                    async with self.engine.begin() as db:
                        owned = await transitions.heartbeat(db, task.id, task.attempts, lease_s)
            except Exception:  # a database blip must not kill the handler while the lease holds
                logger.warning("task %s: lease renewal failed", task.id, exc_info=True)
                owned = clock() - renewed < 0.8 * lease_s
            else:
                renewed = clock() if owned else renewed
            if not owned:
                lost.set()
                handler.cancel()
                return

    async def _retry_or_fail(self, task: Moved, job_type: JobType[Any], error: str, trace: str = "") -> None:
        detail = {"error": error, "traceback": trace[-4000:]} if trace else {"error": error}
        if task.attempts >= task.max_attempts:
            await self._finish(transitions.FAIL, task, error=error, detail=detail)
            return
        delay_s = job_type.retry.delay_s(task.attempts)
        moved = await self._finish(transitions.RETRY, task, error=error, delay_s=delay_s, detail=detail)
        if moved is not None:
            await self._deliver([moved])

    async def _fail(self, task: Moved, error: str) -> None:
        await self._finish(transitions.FAIL, task, error=error, detail={"error": error})

    async def _release(self, task: Moved, detail: dict[str, Any] | None = None, delay_s: float = 0.0) -> None:
        detail = detail or {"reason": "worker shutdown"}
        await self._finish(transitions.RELEASE, task, detail=detail, delay_s=delay_s)

    async def _hand_back(self, task: Moved) -> None:
        """The API accepted the type, so another release of the job packages knows it (a rolling
        deploy): hand the task back uncounted, saying why, for a worker that can run it; ever
        later, and after MAX_HAND_BACKS it fails, so a type no worker knows does not loop."""
        async with self.engine.begin() as db:
            handed = await transitions.hand_backs(db, task.id)
        if handed >= MAX_HAND_BACKS:
            await self._fail(task, f"no worker knows job type {task.type!r} (handed back {handed} times)")
            return
        reason = f"this worker does not know job type {task.type!r}; handed back for one that does"
        delay_s = min(HAND_BACK_DELAY_S * 2**handed, HAND_BACK_DELAY_MAX_S)
        await self._release(task, {"reason": reason, "hand_back": handed + 1}, delay_s)

    async def _wake(self, parent_id: uuid.UUID) -> None:
        """A step ended: its workflow, if it is waiting, is due now."""
        await wake_workflows(self.engine, self.queue, [parent_id], self.settings.saq_job_ttl_s)

    async def _deliver(self, tasks: Sequence[Deliverable]) -> None:
        deliveries = [Delivery.of(task) for task in tasks]
        await enqueue(self.queue, deliveries, self.settings.saq_job_ttl_s)

    async def _finish(
        self,
        statement: TextClause,
        task: Moved,
        detail: dict[str, Any] | None = None,
        **params: Any,
    ) -> Moved | None:
        return await self._tracked(self._write(statement, task, detail, params))

    async def _tracked(self, write: Coroutine[Any, Any, T]) -> T:
        """Shielded and tracked: a write that ends an attempt must land even when the worker is
        being cancelled, and shutdown waits for it (drain) before closing the pool."""
        future = asyncio.ensure_future(write)
        self._background.add(future)
        future.add_done_callback(self._background.discard)
        return await asyncio.shield(future)

    async def drain(self, timeout_s: float) -> None:
        """Wait for every pending write, batched ones included."""
        pending = [*self._background, *self.claims.busy(), *self.completions.busy()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    async def _write(
        self,
        statement: TextClause,
        task: Moved,
        detail: dict[str, Any] | None,
        params: dict[str, Any],
    ) -> Moved | None:
        async with self.engine.begin() as db:
            moved = await transitions.move(
                db, statement, task.id, worker=self.worker_id, detail=detail, attempt=task.attempts, **params
            )
        if moved is None:
            logger.info("task %s: its end was refused; it was cancelled or taken over", task.id)
            return None
        if (what := ENDS.get(moved.status)) is not None:
            metrics.task_event(moved.type, what)
        if moved.status == TaskStatus.FAILED and moved.parent_id is not None:
            await self._wake(moved.parent_id)
        return moved


def _being_cancelled() -> bool:
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


def _database_error(exc: BaseException) -> str:
    """What PostgreSQL said, without the statement and parameters that SQLAlchemy's message
    carries (the parameters are the result: they may be anything)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig.args[0] if exc.orig.args else exc.orig)
    return f"{type(exc).__name__}: {exc}"


def _json(result: Any) -> str:
    return json.dumps(result, default=str)


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)
