"""A lead write racing the lead's delete: the fuzz test found PATCH {} losing to a concurrent
DELETE (its crm_update named a lead that was gone); a write now reads the lead locked."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from orchestrator.db import in_transaction
from orchestrator.job import registry_for
from orchestrator.leads.schemas import LeadPatch
from orchestrator.leads.services import SyncedWrites, delete_lead, patch_lead
from orchestrator.queue import Deliveries
from tests.factories import lead_body


async def test_a_delete_racing_a_patch_waits_for_it(client, settings):
    """The PATCH reads the lead locked: a delete cannot slip in between its read and its
    crm_update (which once made the PATCH a 500, then a 404); it lands after the PATCH."""
    lead = (await client.post("/leads", json=lead_body())).json()
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            async with session.begin():
                patched = await patch_lead(session, lead["id"], LeadPatch(), None)
                delete = asyncio.create_task(
                    in_transaction(settings, lambda other: delete_lead(other, lead["id"], None))
                )
                await asyncio.sleep(0.5)
                assert not delete.done(), "the delete did not wait for the PATCH's lock"
                writes = SyncedWrites(session, registry_for(settings), Deliveries())
                await writes._synced(patched)
            await asyncio.wait_for(delete, 10)
        assert (await client.get(f"/leads/{lead['id']}")).status_code == 404
    finally:
        await engine.dispose()
