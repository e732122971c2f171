"""`crm_update`: apply field and status changes to a lead, then push its state to the CRM.

Every API write to a lead records one (with no changes) so the CRM hears of it. The changes
are applied once per task, whichever attempts run: a retry after a failed push pushes the lead
as it is then, and never writes the old changes over a newer write. The push goes to
CRM_WEBHOOK_URL, signed (see orchestrator.webhooks). With no webhook configured the sync
is reported as skipped.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from orchestrator.job import JobContext, JobType, RetryPolicy
from orchestrator.leads.crm_sync import push_lead
from orchestrator.leads.schemas import LeadPatch, LeadRead
from orchestrator.leads.services import get_lead, patch_lead


class CrmUpdatePayload(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"lead_id": "01a23391-261d-758d-8727-70b42c7ce381", "changes": {"status": "contacted"}}
            ]
        },
    )

    lead_id: uuid.UUID = Field(description="The lead to update and sync")
    changes: LeadPatch = Field(default_factory=LeadPatch, description="Fields to change first, as in PATCH")


async def handle(ctx: JobContext, payload: CrmUpdatePayload) -> dict[str, Any]:
    async with ctx.sessions() as session, session.begin():
        # A lead that is gone raises NotFound: permanent, the task fails without retrying.
        if payload.changes.model_fields_set and await ctx.once(session, "apply changes"):
            lead = await patch_lead(session, payload.lead_id, payload.changes, if_match=None)
        else:
            lead = await get_lead(session, payload.lead_id)
        state = LeadRead.model_validate(lead).model_dump(mode="json")
        # The signature's timestamp by the database's clock: a receiver refuses one too far from
        # its own, and this host's may be off.
        now = (await session.execute(text("SELECT clock_timestamp()"))).scalar_one()
    result = {"lead_version": state["version"], "changed": sorted(payload.changes.model_fields_set)}
    settings = ctx.settings
    if settings.crm_webhook_url is None or settings.crm_webhook_secret is None:
        return result | {"crm_sync": "skipped", "reason": "CRM_WEBHOOK_URL is not configured"}
    secret = settings.crm_webhook_secret.get_secret_value()
    status = await push_lead(ctx.http, settings.crm_webhook_url, secret, state, ctx.idempotency_key, now)
    return result | {"crm_sync": "sent", "crm_status": status}


job = JobType(
    name="crm_update",
    payload=CrmUpdatePayload,
    handler=handle,
    description="Apply changes to a lead (optimistic version) and sync it to the CRM.",
    timeout_s=30,
    retry=RetryPolicy(max_attempts=5, backoff_base_s=2.0, backoff_max_s=300.0),
)
