"""Request and response bodies of the schedules API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from orchestrator.json_bounds import BoundedJSON
from orchestrator.plain_text import plain
from orchestrator.schedules.cron import CRON_PATTERN, cron_syntax, known_timezone, timezones
from orchestrator.tasks.schemas import CallbackUrl, JobTypeName, TaskRead

Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(plain)]
CronText = Annotated[
    str,
    StringConstraints(max_length=200),
    AfterValidator(cron_syntax),
    WithJsonSchema({"type": "string", "maxLength": 200, "pattern": CRON_PATTERN}),
    Field(
        description="Five fields (minute hour day month weekday), or six with seconds first",
        examples=["0 3 * * *", "*/10 * * * * *"],
    ),
]
Timezone = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(known_timezone),
    WithJsonSchema({"type": "string", "enum": sorted(timezones())}),
    Field(
        description="An IANA timezone name; daylight-saving changes are followed", examples=["Europe/Paris"]
    ),
]


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Unique")
    type: JobTypeName
    payload: BoundedJSON = Field(default_factory=dict, description="Validated against the type's schema")
    cron: CronText
    timezone: Timezone = "UTC"
    enabled: bool = True
    lead_id: uuid.UUID | None = None
    callback_url: CallbackUrl | None = Field(default=None, description="Given to each task it makes")


class SchedulePatch(BaseModel):
    """Only the fields given change; `lead_id: null` clears the lead, `callback_url: null` the
    callback. A new `payload` comes with its `type` (the same one or another), as the type
    decides its schema."""

    model_config = ConfigDict(extra="forbid")

    name: Name | SkipJsonSchema[None] = None
    type: JobTypeName | SkipJsonSchema[None] = None
    payload: BoundedJSON | SkipJsonSchema[None] = None
    cron: CronText | SkipJsonSchema[None] = None
    timezone: Timezone | SkipJsonSchema[None] = None
    enabled: bool | SkipJsonSchema[None] = None
    lead_id: uuid.UUID | None = None
    callback_url: CallbackUrl | None = None

    @model_validator(mode="after")
    def _as_documented(self) -> SchedulePatch:
        for name in self.model_fields_set - {"lead_id", "callback_url"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name}: may not be null (leave it out to keep it)")
        if "payload" in self.model_fields_set and "type" not in self.model_fields_set:
            raise ValueError("payload: give `type` with it (its type decides its schema)")
        return self

    def given(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class ScheduleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    type: str
    payload: dict[str, Any]
    cron: str
    timezone: str
    enabled: bool
    lead_id: uuid.UUID | None
    callback_url: str | None = Field(default=None, description="Given to each task it makes")
    declared_by: str | None = Field(
        description="The job type whose module declares it: only `enabled` may change here"
    )
    next_run_at: dt.datetime = Field(description="The next tick it fires at, when enabled")
    last_run_at: dt.datetime | None = Field(description="The last tick it fired")
    created_at: dt.datetime
    updated_at: dt.datetime


class ScheduleDetail(ScheduleRead):
    recent_tasks: list[TaskRead] = Field(description="The tasks of its latest ticks, newest first")


class SchedulePage(BaseModel):
    items: list[ScheduleRead]
    next_cursor: str | None
