"""Workflows: an ordered list of steps, each a job type and its payload, run as child tasks.

A step's payload may refer to the workflow's lead and to earlier steps' results with strings
that are exactly `${lead_id}` or `${steps.N.path.to.value}` (N counts from 1); they are
replaced with the value itself, of whatever JSON type.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.tasks.schemas import JobTypeName

REFERENCE = re.compile(r"^\$\{(lead_id|steps\.(\d+)((?:\.\w+)*))\}$")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: JobTypeName
    payload: dict[str, Any] = Field(default_factory=dict)


NAMED: dict[str, list[Step]] = {
    "new_lead_followup": [
        Step(type="lead_process", payload={"lead_id": "${lead_id}"}),
        Step(type="crm_update", payload={"lead_id": "${lead_id}"}),
        Step(
            type="email_send",
            payload={
                "lead_id": "${lead_id}",
                "subject": "Thanks for getting in touch, {first_name}",
                "text": "Hello {first_name},\n\nthank you for your interest. We will call you shortly.\n",
            },
        ),
    ],
}


class UnresolvedReference(ValueError):
    pass


def resolve(value: Any, lead_id: str | None, results: list[Any]) -> Any:
    """`value` with every reference replaced; refers only to steps that already ran."""
    if isinstance(value, dict):
        return {key: resolve(item, lead_id, results) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, lead_id, results) for item in value]
    if not isinstance(value, str) or (match := REFERENCE.match(value)) is None:
        return value
    if match[1] == "lead_id":
        if lead_id is None:
            raise UnresolvedReference("${lead_id} used, but the workflow has no lead")
        return lead_id
    step = int(match[2])
    if not 1 <= step <= len(results):
        raise UnresolvedReference(f"{value} refers to a step that has not run")
    found = results[step - 1]
    for key in filter(None, match[3].split(".")):
        if not isinstance(found, dict) or key not in found:
            raise UnresolvedReference(f"{value}: step {step}'s result has no {key!r}")
        found = found[key]
    return found


def references(value: Any) -> list[str]:
    """Every reference string in `value`, for checks at submit time."""
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in references(item)]
    return [value] if isinstance(value, str) and REFERENCE.match(value) else []
