"""A lead write racing the lead's delete: the write's answer is 404, never a 500 (the fuzz test
found PATCH {} losing to a concurrent DELETE: its crm_update named a lead that was gone)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from orchestrator.db import in_transaction
from orchestrator.errors import NotFound
from orchestrator.job import registry_for
from orchestrator.leads.schemas import LeadPatch
from orchestrator.leads.services import SyncedWrites, delete_lead, patch_lead
from orchestrator.queue import Deliveries
from tests.factories import lead_body


async def test_a_patch_that_loses_to_a_delete_is_404(client, settings):
    lead = (await client.post("/leads", json=lead_body())).json()
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            # The PATCH has read the lead and changed nothing; then the delete commits; then
            # the PATCH records the lead's crm_update.
            patched = await patch_lead(session, lead["id"], LeadPatch(), None)
            await in_transaction(settings, lambda other: delete_lead(other, lead["id"], None))
            writes = SyncedWrites(session, registry_for(settings), Deliveries())
            with pytest.raises(NotFound):
                await writes._synced(patched)
    finally:
        await engine.dispose()
