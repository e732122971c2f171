"""Request and response bodies of the tasks and jobs API."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from orchestrator.json_bounds import BoundedJSON
from orchestrator.json_types import AS_INTEGER, AS_NUMBER
from orchestrator.plain_text import plain
from orchestrator.tasks.status import TaskStatus

# The OpenAPI document lists this service's job types wherever a field carries this mark.
JOB_TYPE_MARK = "job-type"  # a JSON Schema `format` of our own
JobTypeName = Annotated[
    str,
    StringConstraints(max_length=100),
    AfterValidator(plain),
    Field(description="A job type from GET /jobs", json_schema_extra={"format": JOB_TYPE_MARK}),
]


ConcurrencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(plain)]
# Which hosts it may name is the deployment's (CALLBACK_ALLOWED_HOSTS), checked at submit; a
# JSON Schema format of our own, which the OpenAPI document replaces with those hosts' pattern.
CALLBACK_MARK = "callback-url"
CallbackUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://[^\s]+$"),
    AfterValidator(plain),
    WithJsonSchema({"type": "string", "format": CALLBACK_MARK}),
]


# Years 1970 to 9998, as written (offset and all): beyond them PostgreSQL's timestamps and
# Python's datetimes part ways (year 1 comes back as -infinity), and no task is meant for them.
_YEARS = r"(?:19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
# RFC 3339, as JSON Schema's `date-time`: Pydantic alone would also take 1700000000 (a number
# or a string) as seconds since 1970, a space for the T, or no seconds.
_RUN_AT = re.compile(
    rf"{_YEARS}-\d{{2}}-\d{{2}}[Tt]\d{{2}}:\d{{2}}:\d{{2}}(?:\.\d+)?(?:[Zz]|[+-]\d{{2}}:\d{{2}})"
)


def _rfc3339(value: object) -> object:
    if isinstance(value, str) and _RUN_AT.fullmatch(value):
        return value
    raise ValueError("give an RFC 3339 date-time from year 1970 to 9998, such as 2030-01-01T09:00:00Z")


RunAt = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": f"^{_YEARS}-"}),
]


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: JobTypeName
    payload: BoundedJSON = Field(default_factory=dict, description="Validated against the type's schema")
    lead_id: uuid.UUID | None = None
    run_at: RunAt | None = Field(default=None, description="Not before this time (with a timezone)")
    max_attempts: Annotated[int, Field(ge=1, le=100), AS_INTEGER] | None = Field(
        default=None, description="Default: the job type's"
    )
    timeout_s: Annotated[float, Field(gt=0, le=86_400), AS_NUMBER] | None = Field(
        default=None, description="Default: the job type's"
    )
    concurrency_key: ConcurrencyKey | None = Field(
        default=None,
        description="Tasks with the same key never run at once, and run in the order they were submitted",
    )
    callback_url: CallbackUrl | None = Field(
        default=None,
        description="POSTed the task's end, signed (Standard Webhooks), each time it becomes final;"
        " its host must be one the deployment allows",
    )


BATCH_MAX = 500


class TaskBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[TaskCreate] = Field(min_length=1, max_length=BATCH_MAX, description="Submitted all or none")


# A failed attempt's traceback shows paths, the Python version and source lines: an operator's
# business (admin keys, and the worker's log), not every reader's.
TRACEBACK = "traceback"
SHOW_TRACEBACKS = "show_tracebacks"  # the validation context's flag that keeps them


class TaskEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: TaskStatus | None
    to_status: TaskStatus
    attempt: int
    at: dt.datetime
    worker_id: str | None
    detail: dict[str, Any] | None = Field(
        description=f"What the transition recorded; a failed attempt's {TRACEBACK!r} is for admin keys only"
    )

    @field_validator("detail")
    @classmethod
    def _traceback_for_admins(
        cls, detail: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        """Left out unless validated with {SHOW_TRACEBACKS: True}: a reader that does not ask
        sees less, never more."""
        if detail is None or (info.context or {}).get(SHOW_TRACEBACKS) is True:
            return detail
        return {key: value for key, value in detail.items() if key != TRACEBACK}


class TaskRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: str
    status: TaskStatus
    payload: dict[str, Any]
    result: Any
    error: str | None
    lead_id: uuid.UUID | None
    parent_id: uuid.UUID | None
    step: int | None = Field(description="Its number among its workflow's steps, from 1")
    attempts: int
    max_attempts: int
    timeout_s: float | None
    run_at: dt.datetime
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    updated_at: dt.datetime
    worker_id: str | None = Field(
        description="host-pid-nonce of the worker that last claimed it (GET /workers)"
    )
    concurrency_key: str | None = Field(default=None, description="No two tasks with one key run at once")
    schedule_id: uuid.UUID | None = Field(default=None, description="The schedule that made it")
    scheduled_for: dt.datetime | None = Field(default=None, description="The schedule's tick it was made for")
    callback_url: str | None = Field(default=None, description="Where its end is POSTed")


class CallbackRead(BaseModel):
    """One POST of the task's end: its `webhook-id`, and how its delivery went."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The webhook-id header, the same on every attempt")
    url: str
    event: str = Field(description="task.completed, task.failed or task.cancelled")
    attempts: int
    created_at: dt.datetime
    next_at: dt.datetime = Field(
        description="When the next attempt is due, while neither delivered nor given up"
    )
    delivered_at: dt.datetime | None
    given_up_at: dt.datetime | None
    last_error: str | None


class TaskDetail(TaskRead):
    history: list[TaskEventRead]
    children: list[TaskRead] = Field(default_factory=list, description="Steps of a workflow, in order")
    callbacks: list[CallbackRead] = Field(default_factory=list, description="Its ends POSTed to callback_url")


class TaskBatchRead(BaseModel):
    items: list[TaskRead]


class TaskPage(BaseModel):
    items: list[TaskRead]
    next_cursor: str | None


class JobTypeRead(BaseModel):
    name: str
    description: str
    payload_schema: dict[str, Any]
    timeout_s: float
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    concurrency: int | None = Field(description="At most this many run at once, across every worker")
    rate_limit: str | None = Field(description="At most this many start per window, such as 10/second")
