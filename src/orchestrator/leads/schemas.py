"""Request and response bodies of the leads API."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Self

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue, WithJsonSchema

from orchestrator.json_bounds import BoundedJSON
from orchestrator.json_types import AS_INTEGER, present
from orchestrator.leads.models import LeadStatus
from orchestrator.plain_text import plain

if TYPE_CHECKING:
    from pydantic_core import CoreSchema

Name = Annotated[str, StringConstraints(max_length=200), AfterValidator(plain)]


def _any_case(word: str) -> str:
    # `-` left as it is: escaped, it is an error in a JavaScript validator's pattern (u flag).
    return "".join(
        f"[{c.lower()}{c.upper()}]" if c.isalpha() else c if c == "-" else re.escape(c) for c in word
    )


# What email-validator accepts, as a pattern the API also applies, so that the document and the
# API agree: an ASCII dot-atom of at most 64 characters, @, a domain of labels of at most 63
# characters with a non-numeric top-level label, not a special-use domain (x@host.test), at
# most 254 characters in all. Internationalised addresses are not taken.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"
_SPECIAL_USE = "|".join(map(_any_case, SPECIAL_USE_DOMAIN_NAMES))
EMAIL_PATTERN = (
    r"^(?=.{1,254}$)(?=[^@]{1,64}@)(?![^@]*@(?:[^.]*\.)*[^.]{64})"
    rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
    rf"@(?!(?:{_LABEL}\.)*(?:{_SPECIAL_USE})$)(?:{_LABEL}\.)+(?=[A-Za-z0-9-]*[A-Za-z]){_LABEL}$"
)
_EMAIL = re.compile(EMAIL_PATTERN)
# A JSON Schema `format` of our own: an address whose domain the settings must allow. The OpenAPI
# document replaces it with recipient_pattern(those domains).
RECIPIENT_MARK = "email-recipient"


# A free recipient's local part: no % or ! (source routes some servers still follow elsewhere).
_RECIPIENT_ATEXT = r"[A-Za-z0-9_+-]"


def recipient_pattern(domains: list[str]) -> str:
    """Plain addresses at exactly these domains, in any case."""
    at = "|".join(_any_case(domain) for domain in domains)
    return rf"^(?=.{{1,254}}$)(?=[^@]{{1,64}}@){_RECIPIENT_ATEXT}+(?:\.{_RECIPIENT_ATEXT}+)*@(?:{at})$"


def _email_shape(email: str) -> str:
    if not _EMAIL.match(email):
        raise ValueError("not an address this API takes (an ASCII address at a public domain)")
    return email


EMAIL_SCHEMA = {"type": "string", "format": "email", "maxLength": 254, "pattern": EMAIL_PATTERN}
Email = Annotated[
    EmailStr,
    StringConstraints(max_length=254),
    AfterValidator(plain),
    AfterValidator(_email_shape),
    WithJsonSchema(EMAIL_SCHEMA),
]
# Stored as sent ("555-5678" included): normalising to E.164 is the lead_process job's work.
Phone = Annotated[str, StringConstraints(max_length=50), AfterValidator(plain)]
Source = Annotated[str, StringConstraints(max_length=100), AfterValidator(plain)]
Score = Annotated[int, Field(ge=0, le=100), AS_INTEGER]


class _Strict(BaseModel):
    # A misspelt field is refused rather than silently dropped.
    model_config = ConfigDict(extra="forbid")


class LeadWrite(_Strict):
    """Every writable field: the body of POST (create) and PUT (full replace)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [present("email"), present("phone")],
            "examples": [
                {"email": "ada@example.com", "first_name": "Ada", "company": "Acme", "source": "web"},
                {
                    "phone": "+14155552671",
                    "status": "contacted",
                    "score": 70,
                    "attributes": {"tags": ["vip"]},
                },
            ],
        },
    )

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


class NeverNull:
    """Schema of a field that may be left out but not sent as null: the null branch goes."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        branches = [branch for branch in schema.pop("anyOf", []) if branch != {"type": "null"}]
        if len(branches) == 1:
            schema.update(branches[0])
        schema.pop("default", None)
        return schema


class LeadPatch(_Strict):
    """PATCH: only the fields sent change; `attributes` is merged as in RFC 7396 (null removes a key)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "qualified", "attributes": {"campaign": "spring"}}]},
    )

    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    company: Name | None = None
    source: Source | None = None
    # Absent, never null: the schema says so; the validator below says why.
    status: Annotated[LeadStatus | None, NeverNull()] = None
    score: Score | None = None
    attributes: Annotated[BoundedJSON | None, NeverNull()] = None

    @field_validator("status", "attributes")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep it")
        return value


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
