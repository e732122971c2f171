"""A request that PostgreSQL aborts to break a deadlock is told to retry (503, Retry-After): its
transaction was rolled back, and the same request may pass a moment later. The deadlock is
real: a lead's DELETE holds the lead and waits for a task row (its ON DELETE SET NULL), while
another transaction holds that row and inserts a step for the lead, as a running workflow does.
(Real API processes: the in-process client runs one request at a time.)"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests.factories import lead_body
from tests.helpers import bearer

WAITING = """SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"""


async def test_a_delete_that_deadlocks_is_503_to_retry(start_api, api_key, settings):
    api = await start_api(workers=1)
    async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(api_key), timeout=30) as client:
        lead = (await client.post("/leads", json=lead_body())).json()
        task = (await client.post("/tasks", json={"type": "noop", "lead_id": lead["id"]})).json()
        db = await asyncpg.connect(str(settings.database_url))
        transaction = db.transaction()
        await transaction.start()
        try:
            await db.execute("SELECT 1 FROM tasks WHERE id = $1 FOR NO KEY UPDATE", task["id"])
            delete = asyncio.create_task(client.delete(f"/leads/{lead['id']}"))
            async with asyncio.timeout(10):  # the DELETE holds the lead and waits for the task row
                while not await db.fetchval(WAITING):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            # The DELETE waited first, so its server process finds the cycle first and gives up.
            await db.execute(
                "INSERT INTO tasks (id, type, status, payload, attempts, max_attempts, lead_id, run_at)"
                " VALUES (gen_random_uuid(), 'noop', 'PENDING', '{}', 0, 1, $1, now())",
                lead["id"],
            )
            response = await asyncio.wait_for(delete, 10)
        finally:
            await transaction.rollback()
            await db.close()
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert (await client.get(f"/leads/{lead['id']}")).status_code == 200  # nothing was deleted
