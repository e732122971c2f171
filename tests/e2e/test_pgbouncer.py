"""The API and the workers through a real PgBouncer in transaction pooling mode: each transaction
may land on another server connection, with many clients to few server connections."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from chaos.pgbouncer import PgBouncer, installed
from load.service import free_port
from orchestrator.db import engine_options, prepare
from tests.helpers import bearer, one_worker, wait_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from orchestrator.settings import Settings


@pytest.fixture
async def bouncer(settings: Settings) -> AsyncIterator[PgBouncer]:
    if not installed():
        if os.environ.get("CI"):
            pytest.fail("pgbouncer is missing: .ci/system-packages installs it")
        pytest.skip("pgbouncer is not installed (Debian's package pgbouncer)")
    if make_url(str(settings.database_url)).query.get("host"):
        # PgBouncer runs as its own user, which cannot reach the embedded server's private
        # socket; the suite's pass against a PostgreSQL on TCP (CI makes both) runs this.
        pytest.skip("the embedded PostgreSQL listens on a private Unix socket only")
    # Two server connections for everything: transactions of many clients share each one.
    pooler = PgBouncer(str(settings.database_url), free_port(), pool_size=2)
    pooler.start()
    await pooler.wait_ready()
    yield pooler
    pooler.stop()


async def test_statement_timeout_holds_in_every_transaction_through_the_pooler(settings, bouncer):
    pooled = settings.model_copy(
        update={"database_url": bouncer.url(str(settings.database_url)), "db_transaction_pooler": True}
    )
    engine = prepare(create_async_engine(pooled.sqlalchemy_url, **engine_options(pooled)), pooled)
    try:
        for _ in range(5):
            async with engine.begin() as connection:
                timeout = await connection.scalar(
                    text("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")
                )
                assert timeout == str(pooled.db_statement_timeout_ms)
                # Prepared statements of one client must never collide with another's.
                await connection.execute(text("SELECT CAST(:n AS int)"), {"n": 1})
    finally:
        await engine.dispose()


async def test_api_and_workers_run_every_job_type_through_the_pooler(
    settings, bouncer, start_api, services, api_key, tmp_path
):
    pooled = {"DATABASE_URL": bouncer.url(str(settings.database_url)), "DB_TRANSACTION_POOLER": "true"}
    api = await start_api(workers=2, **pooled)
    worker = one_worker(settings, tmp_path / "worker.log", **pooled)
    services.append(worker)
    worker.start()
    async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(api_key), timeout=30) as client:
        leads = await asyncio.gather(
            *(client.post("/leads", json={"email": f"{uuid.uuid4().hex}@example.com"}) for _ in range(20))
        )
        assert {lead.status_code for lead in leads} == {201}
        for lead in leads[:5]:
            body = lead.json()
            patched = await client.patch(
                f"/leads/{body['id']}", json={"company": "Pooled"}, headers={"If-Match": lead.headers["etag"]}
            )
            assert patched.status_code == 200, patched.text
        lead_id = leads[0].json()["id"]
        bodies = [{"type": "noop", "payload": {"echo": {"n": n}}} for n in range(30)] + [
            {"type": "lead_process", "payload": {"lead_id": lead_id}},
            {"type": "workflow_execute", "lead_id": lead_id, "payload": {"workflow": "new_lead_followup"}},
        ]
        submitted = await asyncio.gather(*(client.post("/tasks", json=body) for body in bodies))
        assert {response.status_code for response in submitted} == {202}
        for response in submitted:
            task = await wait_for(client, response.json()["id"], timeout_s=60)
            assert task["status"] == "COMPLETED", task
            # No attempt lost to the pooler: a statement parsed on one server connection and
            # run on another fails, and its task is tried again.
            if task["type"] != "workflow_execute":  # a workflow is claimed again after each step
                assert task["attempts"] == 1, task["history"]
    # Statements closed in another transaction than their own pile up on a server connection
    # unless the pooler cleans it (server_reset_query = DEALLOCATE ALL, which the README asks for).
    connection = await asyncpg.connect(bouncer.url(str(settings.database_url)), statement_cache_size=0)
    try:
        for _ in range(6):  # both server connections, whichever the pooler hands out
            async with connection.transaction():
                left = await connection.fetchval("SELECT count(*) FROM pg_prepared_statements")
            assert left < 5, f"{left} prepared statements left on a server connection"
    finally:
        await connection.close()
    log = (tmp_path / "worker.log").read_text()
    assert "does not exist" not in log, log[-3000:]
    worker.assert_running()
    api.assert_running()
