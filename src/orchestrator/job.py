"""The job authors' API: what a module in `jobs/` declares, what its handler gets, and how the
service finds it. A job module imports these names from here and nothing from the runner.

    job = JobType(name="greet", payload=GreetPayload, handler=handle, retry=RetryPolicy(max_attempts=5))
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from orchestrator import effects
from orchestrator.effects import Superseded
from orchestrator.errors import PermanentError, Unprocessable
from orchestrator.rates import RATE_LIMIT_MAX_PER_WINDOW, parse_limit

if TYPE_CHECKING:
    import logging
    import uuid
    from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence

    import httpx
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from orchestrator.queue import Deliverable
    from orchestrator.settings import Settings

__all__ = [
    "CheckedPayload",
    "JobContext",
    "JobType",
    "PermanentError",
    "Registry",
    "RetryPolicy",
    "Scheduled",
    "Superseded",
    "Suspend",
    "discover",
]

P = TypeVar("P", bound=BaseModel)


class Suspend(Exception):
    """Raise from a handler to end this run without counting it and run again after `delay_s`, or
    as soon as one of the task's children ends (a workflow waiting for its step)."""

    def __init__(self, reason: str, delay_s: float, deliver: Sequence[Deliverable] = ()) -> None:
        super().__init__(reason)
        self.reason, self.delay_s, self.deliver = reason, delay_s, deliver


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0

    def delay_s(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": never zero, never above the cap."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** max(attempt - 1, 0))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311  (jitter, not crypto)


@dataclass(frozen=True)
class JobContext:
    """What a handler gets besides its payload."""

    task_id: uuid.UUID
    attempt: int
    lead_id: uuid.UUID | None
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    logger: logging.Logger  # its lines carry the task's id, type, attempt and worker
    http: httpx.AsyncClient
    deliver: Callable[[Sequence[Deliverable]], Awaitable[None]]
    """Enqueue tasks the handler recorded (in a transaction it has committed)."""
    job_types: Registry
    protect: Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]]
    """Run work to its end even when this attempt is stopped (a cancel, its timeout, a shutdown:
    the worker waits for it before it exits); for an effect that must not be cut halfway."""
    timeout_s: float
    """How long this attempt may run."""

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt of one task: give it to remotes so a retry is not a second effect."""
        return f"task-{self.task_id}"

    async def once(self, session: AsyncSession, effect: str, hold_s: float | None = None) -> bool:
        """Claim `effect` in `session`'s open transaction: True when this attempt is to perform
        it, False when an earlier attempt of the task did. Perform it, then let the transaction
        commit: while it is open, another attempt's claim of the same effect waits for it; if it
        rolls back, the effect counts as not done. Writes made in the same transaction happen
        exactly once per task. Raises Superseded when this attempt no longer holds the task
        (cancelled, or taken over by another attempt), so a zombie performs nothing. A claim held
        past `hold_s` (default: this attempt's timeout) is ended by PostgreSQL, so a frozen or
        cut-off process does not hold it for good: give an effect that may outlive the attempt
        (one shielded from cancellation) a `hold_s` longer than it can take."""
        hold_s = self.timeout_s if hold_s is None else hold_s
        return await effects.claim(session, self.task_id, self.attempt, effect, hold_s=hold_s)


@dataclass(frozen=True)
class Scheduled:
    """A schedule a job module declares for its type: created, or updated by name, when a worker
    starts. Its fields are the code's: the API may only pause it (`enabled`)."""

    name: str
    cron: str
    """Five fields, or six with seconds first."""
    timezone: str = "UTC"
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobType(Generic[P]):
    """Declare one as `job = JobType(...)` in a module of `jobs/`; `discover` finds it."""

    name: str
    payload: type[P]
    handler: Callable[[JobContext, P], Coroutine[Any, Any, dict[str, Any] | None]]
    description: str = ""
    timeout_s: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    schedules: tuple[Scheduled, ...] = ()
    concurrency: int | None = None
    """At most this many of its tasks run at once, across every process and host (JOB_LIMITS
    may override it)."""
    rate_limit: str | None = None
    """At most this many of its tasks start in any window, across every process and host, such
    as "10/second" for a remote's quota (JOB_LIMITS may override it)."""
    # Made for tests and benchmarks (a task that sleeps an hour): off unless TEST_JOB_TYPES is set.
    for_tests: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "payload_schema": self.payload.model_json_schema(),
            "timeout_s": self.timeout_s,
            "max_attempts": self.retry.max_attempts,
            "backoff_base_s": self.retry.backoff_base_s,
            "backoff_max_s": self.retry.backoff_max_s,
        }


@dataclass(frozen=True)
class Limits:
    """What holds a job type's tasks back at their claim."""

    concurrency: int | None = None
    rate: tuple[int, float] | None = None
    """(starts, per seconds)"""

    def __bool__(self) -> bool:
        return self.concurrency is not None or self.rate is not None


class Registry:
    """The job types by name. A plain class rather than a dict so that Litestar, which validates
    injected dependencies, treats it as one opaque object."""

    def __init__(self, types: dict[str, JobType[Any]], settings: Settings | None = None) -> None:
        self._types = types
        # What payload rules may depend on (the domains email_send may mail); None: the strictest.
        self.settings = settings
        self._limits: dict[str, Limits] = {}
        self._limited: list[str] | None = None

    def get(self, name: str) -> JobType[Any] | None:
        return self._types.get(name)

    def __getitem__(self, name: str) -> JobType[Any]:
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def _declared_limits(self, name: str) -> tuple[int | None, str | None]:
        """(concurrency, rate limit) of the type, as the settings' JOB_LIMITS override its module's."""
        job_type = self._types.get(name)
        override = self.settings.job_limits.get(name) if self.settings is not None else None
        concurrency = job_type.concurrency if job_type is not None else None
        rate_limit = job_type.rate_limit if job_type is not None else None
        if override is not None:
            concurrency = override.concurrency if "concurrency" in override.model_fields_set else concurrency
            rate_limit = override.rate_limit if "rate_limit" in override.model_fields_set else rate_limit
        return concurrency, rate_limit

    def limits(self, name: str) -> Limits:
        """Read for every claim: worked out once per type."""
        if (known := self._limits.get(name)) is not None:
            return known
        concurrency, rate_limit = self._declared_limits(name)
        if rate_limit is None:
            limits = Limits(concurrency)
        else:
            item = parse_limit(rate_limit, max_per_window=RATE_LIMIT_MAX_PER_WINDOW)
            limits = Limits(concurrency, (item.amount, float(item.get_expiry())))
        self._limits[name] = limits
        return limits

    def describe(self, name: str) -> dict[str, Any]:
        """What GET /jobs shows of the type: its declaration, with the limits in force."""
        concurrency, rate_limit = self._declared_limits(name)
        return self._types[name].describe() | {"concurrency": concurrency, "rate_limit": rate_limit}

    def limited(self) -> list[str]:
        """The types with a concurrency or rate limit."""
        if self._limited is None:
            self._limited = sorted(name for name in self._types if self.limits(name))
        return self._limited

    def job_type(self, name: str) -> JobType[Any]:
        """The type called `name`; Unprocessable naming the known ones otherwise."""
        job_type = self._types.get(name)
        if job_type is None:
            known = ", ".join(sorted(self._types)) or "none"
            raise Unprocessable(f"type: unknown job type {name!r}; known types: {known}", field="type")
        return job_type

    def check(self, name: str, payload: dict[str, Any]) -> CheckedPayload:
        """`payload` as the type's model accepts it: the one check of a payload, made at submit
        time, by the worker and for every workflow step. Unprocessable naming each bad field."""
        job_type = self.job_type(name)
        try:
            model = job_type.payload.model_validate(
                payload, context={"job_types": self, "settings": self.settings}
            )
        except ValidationError as exc:
            raise Unprocessable(f"payload: {_describe(exc)}", field="payload", errors=_errors(exc)) from None
        return CheckedPayload(job_type, model)


@dataclass(frozen=True)
class CheckedPayload:
    job_type: JobType[Any]
    model: BaseModel

    @property
    def tasks_made(self) -> int:
        """The tasks this one leads to, itself included: a payload that makes more says so."""
        made = getattr(self.model, "tasks_made", 1)
        return made if isinstance(made, int) else 1

    def stored(self) -> dict[str, Any]:
        """What the task row keeps. exclude_unset: a field left out stays left out (PATCH-like
        payloads rely on it)."""
        return self.model.model_dump(mode="json", exclude_unset=True)


def registry_for(settings: Settings) -> Registry:
    """The job types these settings run, checking payloads by these settings. JOB_LIMITS naming
    a type none of them declares is a mistake that would leave a limit unkept: it stops here."""
    registry = discover(settings.job_packages, test_types=settings.test_job_types, settings=settings)
    if unknown := sorted(set(settings.job_limits) - set(registry)):
        known = ", ".join(sorted(registry))
        raise ValueError(
            f"JOB_LIMITS names job types that do not exist: {', '.join(unknown)} (known: {known})"
        )
    return registry


def discover(
    packages: Iterable[str], *, test_types: bool = False, settings: Settings | None = None
) -> Registry:
    """Import every module of each package and collect its module-level `job`; the ones made
    for tests only when `test_types`."""
    found: dict[str, JobType[Any]] = {}
    for package_name in packages:
        package = importlib.import_module(package_name)
        for module_info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package_name}.{module_info.name}")
            job = getattr(module, "job", None)
            if not isinstance(job, JobType) or (job.for_tests and not test_types):
                continue
            if job.name in found:
                raise RuntimeError(f"job type {job.name!r} is declared twice ({module.__name__})")
            if job.rate_limit is not None:
                parse_limit(job.rate_limit, max_per_window=RATE_LIMIT_MAX_PER_WINDOW)  # wrong: stop here
            if job.concurrency is not None and job.concurrency < 1:
                raise RuntimeError(f"job type {job.name!r}: concurrency {job.concurrency} would never run it")
            found[job.name] = job
    return Registry(found, settings)


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors())


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(("payload", *map(str, e["loc"]))), "message": e["msg"], "in": "body"}
        for e in exc.errors()
    ]
