"""Request and response bodies of the leads API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from orchestrator.json_bounds import BoundedJSON
from orchestrator.leads.models import LeadStatus
from orchestrator.plain_text import plain

Name = Annotated[str, StringConstraints(max_length=200), AfterValidator(plain)]
Email = Annotated[EmailStr, StringConstraints(max_length=320), AfterValidator(plain)]
# Stored as sent ("555-5678" included): normalising to E.164 is the lead_process job's work.
Phone = Annotated[str, StringConstraints(max_length=50), AfterValidator(plain)]
Source = Annotated[str, StringConstraints(max_length=100), AfterValidator(plain)]
Score = Annotated[int, Field(ge=0, le=100)]


class _Strict(BaseModel):
    # A misspelt field is refused rather than silently dropped.
    model_config = ConfigDict(extra="forbid")


class LeadWrite(_Strict):
    """Every writable field: the body of POST (create) and PUT (full replace)."""

    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    company: Name | None = None
    source: Source | None = None
    status: LeadStatus = LeadStatus.NEW
    score: Score | None = None
    attributes: BoundedJSON = Field(default_factory=dict)

    @model_validator(mode="after")
    def _reachable(self) -> Self:
        if self.email is None and self.phone is None:
            raise ValueError("a lead needs an email or a phone")
        return self


class LeadPatch(_Strict):
    """PATCH: only the fields sent change; `attributes` is merged as in RFC 7396 (null removes a key)."""

    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    company: Name | None = None
    source: Source | None = None
    status: LeadStatus | None = None
    score: Score | None = None
    attributes: BoundedJSON | None = None

    @model_validator(mode="after")
    def _not_null(self) -> Self:
        for name in ("status", "attributes"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class LeadRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    company: str | None
    source: str | None
    status: LeadStatus
    score: int | None
    attributes: dict[str, Any]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class LeadPage(BaseModel):
    items: list[LeadRead]
    next_cursor: str | None = Field(description="Pass as `cursor` to read the next page; null on the last")
