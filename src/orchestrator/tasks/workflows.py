"""Workflows: an ordered list of steps, each a job type and its payload, run as child tasks.

A step's payload may refer to the workflow's lead and to earlier steps' results with strings
that are exactly `${lead_id}` or `${steps.N.path.to.value}` (N counts from 1); they are
replaced with the value itself, of whatever JSON type. A result is data: what it holds is never
read as a reference.

A step may run a workflow (NESTED). Its `steps` are its own, written out in the request: their
references are its lead and its own steps', filled in when it runs, and nothing of this
workflow's results can reach them. So every task a request can lead to is in the request.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.tasks.schemas import JobTypeName

# \Z, not $: "${steps.1}\n" is text, as the step that fills it in reads it.
REFERENCE = re.compile(r"^\$\{(lead_id|steps\.(\d+)((?:\.\w+)*))\}\Z")
LEAD = "${lead_id}"
NESTED = "workflow_execute"


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


def fill(step: Step, lead_id: str | None, results: list[Any]) -> dict[str, Any]:
    """`step`'s payload as it runs: a nested workflow's own steps are left for it to fill."""
    if step.type != NESTED:
        return dict(resolve(step.payload, lead_id, results))
    return {
        key: value if key == "steps" and isinstance(value, list) else resolve(value, lead_id, results)
        for key, value in step.payload.items()
    }


def filled_from_here(step: Step) -> list[str]:
    """The references `fill` replaces in `step`, for checks at submit time."""
    if step.type != NESTED:
        return references(step.payload)
    return [
        ref
        for key, value in step.payload.items()
        if not (key == "steps" and isinstance(value, list))
        for ref in references(value)
    ]


def references(value: Any) -> list[str]:
    """Every reference string in `value`, for checks at submit time."""
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in references(item)]
    return [value] if isinstance(value, str) and REFERENCE.match(value) else []
