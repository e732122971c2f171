"""Effects once per task (orchestrator.effects) against real PostgreSQL: once, and never by an
attempt that no longer holds its task."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from orchestrator import effects
from orchestrator.tasks import transitions
from tests.helpers import submit


@pytest.fixture
async def sessions(settings):
    engine = create_async_engine(settings.sqlalchemy_url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


async def _running(client, sessions) -> uuid.UUID:
    """A task held by attempt 1."""
    task_id = uuid.UUID(await submit(client, "noop", run_at="2999-01-01T00:00:00Z"))
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE tasks SET run_at = now() WHERE id = :id"), {"id": task_id})
        [claimed] = (await transitions.claim_many(session, [task_id], "test-host:1", 30.0)).moved
    assert claimed is not None
    assert claimed.attempts == 1
    return task_id


async def _claim(sessions, task_id: uuid.UUID, attempt: int, name: str = "send") -> bool:
    async with sessions() as session, session.begin():
        return await effects.claim(session, task_id, attempt, name, hold_s=10)


async def _blocked_on_a_lock(sessions) -> None:
    """Until a backend of this database waits for a row lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(10):
        while True:
            # A transaction each: pg_stat_activity is read once per transaction.
            async with sessions() as session:
                if await session.scalar(query):
                    return
            await asyncio.sleep(0.02)


async def test_an_effect_is_claimed_once_per_task(client, sessions):
    task_id = await _running(client, sessions)
    assert await _claim(sessions, task_id, 1) is True
    assert await _claim(sessions, task_id, 1) is False
    assert await _claim(sessions, task_id, 1, "another") is True


async def test_a_claim_rolled_back_leaves_the_effect_to_the_next_claim(client, sessions):
    task_id = await _running(client, sessions)
    async with sessions() as session, session.begin():
        assert await effects.claim(session, task_id, 1, "send", hold_s=10) is True
        await session.rollback()
    assert await _claim(sessions, task_id, 1) is True


async def test_a_second_claim_waits_for_the_first_and_then_finds_it_done(client, sessions):
    task_id = await _running(client, sessions)
    async with sessions() as first, first.begin():
        assert await effects.claim(first, task_id, 1, "send", hold_s=10) is True
        second = asyncio.ensure_future(_claim(sessions, task_id, 1))
        await _blocked_on_a_lock(sessions)
        assert not second.done()  # waiting on the first claim's uncommitted row
    assert await second is False


@pytest.mark.parametrize("how", ["cancelled", "taken over"])
async def test_an_attempt_that_no_longer_holds_its_task_claims_nothing(client, sessions, how):
    task_id = await _running(client, sessions)
    if how == "cancelled":
        assert (await client.post(f"/tasks/{task_id}/cancel")).status_code == 200
    else:
        async with sessions() as session, session.begin():
            await session.execute(text("UPDATE tasks SET attempts = 2 WHERE id = :id"), {"id": task_id})
    with pytest.raises(effects.Superseded):
        await _claim(sessions, task_id, 1)
    async with sessions() as session:
        assert (
            await session.execute(
                text("SELECT count(*) FROM task_effects WHERE task_id = :id"), {"id": task_id}
            )
        ).scalar() == 0
