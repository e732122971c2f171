"""What a job module in `jobs/` declares: a payload model, an async handler and its policy."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    import logging
    import uuid
    from collections.abc import Awaitable, Callable, Coroutine, Sequence

    import httpx
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from orchestrator.runner.registry import Registry
    from orchestrator.settings import Settings
    from orchestrator.tasks.models import Task

P = TypeVar("P", bound=BaseModel)


class PermanentError(Exception):
    """Raise from a handler to fail the task now, without retrying (bad input, a 4xx from a remote)."""


class Suspend(Exception):
    """Raise from a handler to end this run without counting it and run again after `delay_s`, or
    as soon as one of the task's children ends (a workflow waiting for its step)."""

    def __init__(self, reason: str, delay_s: float, deliver: Sequence[Task] = ()) -> None:
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
    logger: logging.LoggerAdapter[logging.Logger]
    http: httpx.AsyncClient
    deliver: Callable[[Sequence[Task]], Awaitable[None]]
    """Enqueue tasks the handler recorded (in a transaction it has committed)."""
    job_types: Registry

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt of one task: give it to remotes so a retry is not a second effect."""
        return f"task-{self.task_id}"


@dataclass(frozen=True)
class JobType(Generic[P]):
    """Declare one as `job = JobType(...)` in a module of `jobs/`; the registry finds it."""

    name: str
    payload: type[P]
    handler: Callable[[JobContext, P], Coroutine[Any, Any, dict[str, Any] | None]]
    description: str = ""
    timeout_s: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

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
