"""Request and response bodies of the tasks and jobs API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from orchestrator.json_bounds import BoundedJSON
from orchestrator.plain_text import plain
from orchestrator.tasks.status import TaskStatus


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Annotated[str, StringConstraints(max_length=100), AfterValidator(plain)] = Field(
        description="A job type from GET /jobs"
    )
    payload: BoundedJSON = Field(default_factory=dict, description="Validated against the type's schema")
    lead_id: uuid.UUID | None = None
    run_at: AwareDatetime | None = Field(default=None, description="Not before this time (with a timezone)")
    max_attempts: int | None = Field(default=None, ge=1, le=100, description="Default: the job type's")
    timeout_s: float | None = Field(default=None, gt=0, le=86_400, description="Default: the job type's")


BATCH_MAX = 500


class TaskBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tasks: list[TaskCreate] = Field(min_length=1, max_length=BATCH_MAX, description="Submitted all or none")


class TaskEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: TaskStatus | None
    to_status: TaskStatus
    attempt: int
    at: dt.datetime
    worker_id: str | None
    detail: dict[str, Any] | None


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
    worker_id: str | None = Field(description="host:pid of the worker that last claimed it")


class TaskDetail(TaskRead):
    history: list[TaskEventRead]
    children: list[TaskRead] = Field(default_factory=list, description="Steps of a workflow, in order")


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
