"""`lead_process`: normalise a lead, validate its email, detect a duplicate and score it.

The rules are in orchestrator.leads.quality. Running it twice changes nothing the second time:
the lead is written (and its version bumped) only when something differs.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.job import JobContext, JobType, RetryPolicy
from orchestrator.leads.quality import find_original, normalise, score
from orchestrator.leads.services import get_lead


class LeadProcessPayload(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"lead_id": "01a23391-261d-758d-8727-70b42c7ce381"}]}
    )

    lead_id: uuid.UUID = Field(description="The lead to normalise and score")


async def handle(ctx: JobContext, payload: LeadProcessPayload) -> dict[str, Any]:
    async with ctx.sessions() as session, session.begin():
        lead = await get_lead(session, payload.lead_id)  # gone: NotFound, permanent
        clean = normalise(lead, ctx.settings.default_phone_region)
        original = await find_original(session, lead, clean.email, clean.phone if clean.phone_valid else None)
        duplicate_of = original.id if original is not None else None
        wanted: dict[str, Any] = {
            "first_name": clean.first_name,
            "last_name": clean.last_name,
            "phone": clean.phone,
            "score": score(lead, clean, duplicate_of),
            "attributes": lead.attributes
            | {
                "duplicate_of": str(duplicate_of) if duplicate_of else None,
                "email_valid": clean.email_valid,
                "phone_valid": clean.phone_valid,
            },
        }
        # A lower-case email that another lead already has stays as it is: the lead is marked
        # a duplicate instead of colliding with the other's unique email.
        if original is None or (original.email or "").lower() != clean.email:
            wanted["email"] = clean.email
        changed = sorted(name for name, value in wanted.items() if getattr(lead, name) != value)
        for name in changed:
            setattr(lead, name, wanted[name])
        await session.flush()
        version = lead.version
    return {
        "changed": changed,
        "score": wanted["score"],
        "duplicate_of": wanted["attributes"]["duplicate_of"],
        "email_valid": clean.email_valid,
        "phone": clean.phone,
        "lead_version": version,
    }


job = JobType(
    name="lead_process",
    payload=LeadProcessPayload,
    handler=handle,
    description="Normalise a lead (names, email, E.164 phone), detect a duplicate, score it 0-100.",
    timeout_s=30,
    retry=RetryPolicy(max_attempts=5, backoff_base_s=1.0, backoff_max_s=60.0),
)
