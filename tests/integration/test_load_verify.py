"""The load suite's verifier catches every kind of loss in a real PostgreSQL, and nothing else."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from load.effects import EffectsWriter
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


async def complete(
    db: asyncpg.Connection[Any], task_id: str, times: int = 1, attempts: int = 1, status: str = "COMPLETED"
) -> None:
    await db.execute(
        "UPDATE tasks SET status = $2, attempts = $3 WHERE id = $1", uuid.UUID(task_id), status, attempts
    )
    for attempt in range(1, attempts + 1):  # each attempt's claim
        await db.execute(
            "INSERT INTO task_events (task_id, from_status, to_status, attempt)"
            " VALUES ($1, 'PENDING', 'PROCESSING', $2)",
            uuid.UUID(task_id),
            attempt,
        )
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


async def test_verify_reports_a_wrong_version_a_replaced_lead_and_a_task_change_that_is_missing(
    client: AsyncTestClient[Litestar], url: str, since: dt.datetime, writer: LedgerWriter, tmp_path: Path
) -> None:
    behind = await create_lead(client, "behind", writer)
    writer.lead(behind | {"version": behind["version"] + 1})  # acknowledged later than stored
    replaced = await create_lead(client, "replaced", writer)
    writer.lead(replaced | {"id": str(uuid.uuid4())})  # acknowledged under another id
    target = await create_lead(client, "target", writer)
    applied, not_applied = [await submit(client, writer) for _ in range(2)]
    writer.task(applied, "crm_update", target["id"], {"score": target["score"]})
    writer.task(not_applied, "crm_update", target["id"], {"status": "converted"})
    writer.close()
    db = await asyncpg.connect(url)
    try:
        await db.execute("UPDATE tasks SET status = 'CANCELLED'")
        for task_id in (applied, not_applied):
            await complete(db, task_id)
    finally:
        await db.close()

    verdict = await verify(url, Ledger.read(tmp_path / "ledger.jsonl"), since)

    problems = sorted(verdict.lost_writes)
    assert len(problems) == 3, problems
    assert any(line.startswith(f"lead {behind['id']}: version") for line in problems)
    assert any(line.endswith(f"stored as {replaced['id']}") for line in problems)
    assert [line for line in problems if "after task" in line] == [
        f"lead {target['id']} after task {not_applied}: status: acknowledged 'converted', stored 'new'"
    ]


async def test_an_unanswered_create_may_be_absent_or_as_sent_and_a_job_lead_may_change(
    client: AsyncTestClient[Litestar], url: str, since: dt.datetime, writer: LedgerWriter, tmp_path: Path
) -> None:
    as_sent, as_other = lead_fields("sent"), lead_fields("other")
    for fields in (as_sent, as_other):
        writer.intent(fields["email"], fields)  # the create's answer never came
    rewritten = (await client.post("/leads", json=lead_fields("rewritten"))).json()
    writer.lead(rewritten, exact=False)  # a lead handed to jobs that rewrite it
    vanished = (await client.post("/leads", json=lead_fields("vanished"))).json()
    writer.lead(vanished, exact=False)
    writer.close()
    await client.post("/leads", json=as_sent)
    await client.post("/leads", json=as_other | {"company": "Somebody Else"})
    await client.patch(f"/leads/{rewritten['id']}", json={"status": "qualified"})
    db = await asyncpg.connect(url)
    try:
        await db.execute("UPDATE tasks SET status = 'CANCELLED'")
        await db.execute("DELETE FROM tasks WHERE lead_id = $1", uuid.UUID(vanished["id"]))
        await db.execute("DELETE FROM leads WHERE id = $1", uuid.UUID(vanished["id"]))
    finally:
        await db.close()

    verdict = await verify(url, Ledger.read(tmp_path / "ledger.jsonl"), since)

    problems = verdict.lost_writes
    assert len(problems) == 2, problems
    assert any("never acknowledged" in line and "Somebody Else" in line for line in problems)
    assert any(vanished["id"] in line and "missing" in line for line in problems)


async def test_side_effects_are_counted_per_task(
    client: AsyncTestClient[Litestar], url: str, since: dt.datetime, writer: LedgerWriter, tmp_path: Path
) -> None:
    ids = [await submit(client, writer) for _ in range(8)]
    writer.close()
    sent_once, sent_twice, sent_twice_in_two, never_sent, failed_unsent = ids[:5]
    pushed_per_attempt, pushed_twice, never_pushed = ids[5:]
    attempts = {pushed_per_attempt: 2, sent_twice_in_two: 2}
    log = EffectsWriter(tmp_path / "effects.jsonl")
    for task_id, times in ((sent_once, 1), (sent_twice, 2), (sent_twice_in_two, 2)):
        for _ in range(times):
            log.record("email", f"Message-ID: <task-{task_id}@orchestrator>")
    for task_id, times in ((pushed_per_attempt, 2), (pushed_twice, 2)):
        for _ in range(times):
            log.record("push", f"task-{task_id}")
    log.record("push", f"task-{uuid.uuid4()}")  # some other run's task: not this run's concern
    log.close()
    db = await asyncpg.connect(url)
    try:
        await db.execute("UPDATE tasks SET status = 'CANCELLED'")
        emails = (sent_once, sent_twice, sent_twice_in_two, never_sent, failed_unsent)
        for task_id in ids:
            kind = "email_send" if task_id in emails else "crm_update"
            await db.execute("UPDATE tasks SET type = $2 WHERE id = $1", uuid.UUID(task_id), kind)
            status = "FAILED" if task_id == failed_unsent else "COMPLETED"
            await complete(db, task_id, attempts=attempts.get(task_id, 1), status=status)
    finally:
        await db.close()

    verdict = await verify(url, Ledger.read(tmp_path / "ledger.jsonl"), since, tmp_path / "effects.jsonl")

    assert (verdict.emails_received, verdict.crm_pushes_received) == (5, 4)
    assert sorted(verdict.repeated_effects) == sorted(
        [
            f"task {sent_twice} (email_send) sent 2 emails in 1 attempts",
            f"task {pushed_twice} (crm_update) pushed 2 times in 1 attempts",
        ]
    )
    # Within the documented limit: a crash between the server's answer and the commit.
    assert verdict.repeated_after_a_lost_attempt == [
        f"task {sent_twice_in_two} (email_send) sent 2 emails in 2 attempts"
    ]
    assert sorted(verdict.lost_effects) == sorted(
        [
            f"task {never_sent} (email_send) COMPLETED, yet no email reached the server",
            f"task {never_pushed} (crm_update) COMPLETED, yet nothing reached the CRM",
        ]
    )
    assert not verdict.ok
