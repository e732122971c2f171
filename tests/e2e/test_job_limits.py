"""Limits kept by real worker processes (two, ten jobs each): a type's concurrency limit sampled
from PostgreSQL while 200 of its tasks run, a rate limit's window, and a concurrency key's order."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.helpers import submit

COUNTS = text(
    """
    SELECT count(*) FILTER (WHERE status = 'PROCESSING') AS running,
           count(*) FILTER (WHERE status <> 'COMPLETED') AS unfinished
    FROM tasks WHERE type = :type AND created_at >= :since
    """
)


@pytest.fixture(scope="module")
def worker_extra_env() -> dict[str, str]:
    # Held-back tasks look again only after half a minute, and the reconciler leaves due tasks to
    # their workers for twenty seconds: what moves them on here is the end of the task they wait
    # for, which hands its slot or key to the next in line at once.
    return {"LIMIT_RECHECK_S": "30", "RECONCILE_GRACE_S": "20"}


@pytest.fixture
async def engine(settings):
    made = create_async_engine(settings.sqlalchemy_url)
    yield made
    await made.dispose()


async def until_done(api, task_ids: list[str], timeout_s: float = 120) -> list[dict]:
    async with asyncio.timeout(timeout_s):
        while True:
            tasks = [(await api.get(f"/tasks/{task_id}")).json() for task_id in task_ids]
            if all(task["status"] == "COMPLETED" for task in tasks):
                return tasks
            await asyncio.sleep(0.5)


@pytest.mark.timeout(240)
async def test_a_concurrency_limit_is_never_exceeded_by_200_tasks(api, workers, engine):
    async with engine.connect() as db:
        since = await db.scalar(text("SELECT now()"))
    batch = {"tasks": [{"type": "limited", "payload": {"sleep_s": 0.05}} for _ in range(200)]}
    response = await api.post("/tasks/batch", json=batch)
    assert response.status_code == 202, response.text
    samples = []
    async with asyncio.timeout(180):
        while True:
            async with engine.connect() as db:
                row = (await db.execute(COUNTS, {"type": "limited", "since": since})).one()
            samples.append(row.running)
            if row.unfinished == 0:
                break
            await asyncio.sleep(0.02)
    assert max(samples) == 3, max(samples)  # `limited` declares concurrency=3: reached, never passed
    assert len(samples) > 50


async def test_a_rate_limit_keeps_starts_within_its_window(api, workers):
    tasks = [await submit(api, "rated") for _ in range(20)]
    starts = sorted(task["result"]["started"] for task in await until_done(api, tasks))
    # `rated` declares 5/second: any six starts span a second (less the handlers' own delays:
    # those are milliseconds, the margin is a quarter of a second for a loaded machine).
    for first, sixth in zip(starts, starts[5:], strict=False):
        assert sixth - first >= 0.75, starts


async def test_a_concurrency_key_serialises_its_tasks_in_submission_order(api, workers):
    keyed = [await submit(api, "noop", {"sleep_s": 0.1}, concurrency_key="lead:e2e") for _ in range(8)]
    # Each hands the key to the next as it ends: eight in a minute, where waiting for each one's
    # next look would take four.
    tasks = await until_done(api, keyed, timeout_s=60)
    started = [task["started_at"] for task in tasks]
    assert started == sorted(started)
    for earlier, later in itertools.pairwise(tasks):
        assert later["started_at"] >= earlier["finished_at"], (earlier, later)
