"""The load suite's verifier catches every kind of loss in a real PostgreSQL, and nothing else."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from load.ledger import Ledger, LedgerWriter
from load.verify import database_now, verify
from orchestrator.settings import to_libpq_url

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterator
    from pathlib import Path

    from litestar import Litestar
    from litestar.testing import AsyncTestClient

    from orchestrator.settings import Settings


def lead_fields(name: str) -> dict[str, Any]:
    return {
        "first_name": name,
        "last_name": "Verify",
        "email": f"{name}-{uuid.uuid4().hex[:8]}@example.com",
        "phone": "+12125550100",
        "company": "Acme",
        "source": "web",
        "status": "new",
        "score": 10,
        "attributes": {"tags": ["a"], "nested": {"n": 1}},
    }


async def create_lead(client: AsyncTestClient[Litestar], name: str, ledger: LedgerWriter) -> dict[str, Any]:
    fields = lead_fields(name)
    ledger.intent(fields["email"], fields)
    state: dict[str, Any] = (await client.post("/leads", json=fields)).json()
    ledger.lead(state)
    return state


async def submit(client: AsyncTestClient[Litestar], ledger: LedgerWriter) -> str:
    task_id: str = (await client.post("/tasks", json={"type": "noop"})).json()["id"]
    ledger.task(task_id, "noop", None, {})
    return task_id


async def complete(db: asyncpg.Connection[Any], task_id: str, times: int = 1) -> None:
    await db.execute("UPDATE tasks SET status = 'COMPLETED', attempts = 1 WHERE id = $1", uuid.UUID(task_id))
    for _ in range(times):
        await db.execute(
            "INSERT INTO task_events (task_id, from_status, to_status, attempt)"
            " VALUES ($1, 'PROCESSING', 'COMPLETED', 1)",
            uuid.UUID(task_id),
        )


@pytest.fixture
def url(settings: Settings) -> str:
    return to_libpq_url(str(settings.database_url))


@pytest.fixture
async def since(client: AsyncTestClient[Litestar], url: str) -> dt.datetime:
    """The run starts after the table truncation that `client` performs."""
    return await database_now(url)


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[LedgerWriter]:
    ledger = LedgerWriter(tmp_path / "ledger.jsonl")
    yield ledger
    ledger.close()


async def test_verify_reports_lost_changed_and_unfinished_work_and_passes_the_rest(
    client: AsyncTestClient[Litestar], url: str, since: dt.datetime, writer: LedgerWriter, tmp_path: Path
) -> None:
    kept = await create_lead(client, "kept", writer)
    changed = await create_lead(client, "changed", writer)
    gone = await create_lead(client, "gone", writer)
    never_answered = lead_fields("unanswered")  # sent, no answer, never stored: allowed
    writer.intent(never_answered["email"], never_answered)
    done, twice, stuck = [await submit(client, writer) for _ in range(3)]
    lost_task = str(uuid.uuid4())
    writer.task(lost_task, "noop", None, {})
    writer.close()

    db = await asyncpg.connect(url)
    try:
        await db.execute("UPDATE leads SET company = 'Tampered' WHERE id = $1", uuid.UUID(changed["id"]))
        await db.execute("DELETE FROM leads WHERE id = $1", uuid.UUID(gone["id"]))
        await complete(db, done)
        await complete(db, twice, times=2)
        # The lead syncs recorded by the three creates are no concern of this test.
        await db.execute("UPDATE tasks SET status = 'CANCELLED' WHERE type = 'crm_update'")
    finally:
        await db.close()

    verdict = await verify(url, Ledger.read(tmp_path / "ledger.jsonl"), since)

    assert verdict.acknowledged_writes == 3
    assert verdict.leads_checked == 4
    assert len(verdict.lost_writes) == 2
    assert any(changed["id"] in line and "Tampered" in line for line in verdict.lost_writes)
    assert any(gone["id"] in line and "missing" in line for line in verdict.lost_writes)
    assert not any(kept["id"] in line for line in verdict.lost_writes)
    assert verdict.lost_tasks == [f"task {lost_task} (noop) was accepted and is missing"]
    assert [line.split()[1] for line in verdict.unfinished_tasks] == [stuck]
    assert [line.split()[1] for line in verdict.completed_twice] == [twice]
    assert [line.split()[1] for line in verdict.failed_tasks] == [stuck]
    assert not verdict.ok


async def test_an_unanswered_write_may_have_landed_or_not_but_nothing_else(
    client: AsyncTestClient[Litestar], url: str, since: dt.datetime, writer: LedgerWriter, tmp_path: Path
) -> None:
    landed, not_landed, other = [await create_lead(client, name, writer) for name in ("a", "b", "c")]
    unanswered = {
        state["id"]: lead_fields("x") | {"email": state["email"]} for state in (landed, not_landed, other)
    }
    for state in (landed, not_landed, other):
        writer.intent(state["email"], unanswered[state["id"]], state["id"])
    writer.close()
    # The answers never reach the user: one PUT landed, one did not, one landed as something else.
    await client.put(f"/leads/{landed['id']}", json=unanswered[landed["id"]])
    await client.put(f"/leads/{other['id']}", json=lead_fields("y") | {"email": other["email"]})
    db = await asyncpg.connect(url)
    try:
        await db.execute("UPDATE tasks SET status = 'CANCELLED'")
    finally:
        await db.close()

    verdict = await verify(url, Ledger.read(tmp_path / "ledger.jsonl"), since)

    assert [line.split(":")[0] for line in verdict.lost_writes] == [f"lead {other['id']}"]
