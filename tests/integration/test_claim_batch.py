"""Deliveries of one task that land in the same claim batch: run_task itself, in one worker's
event loop, against real PostgreSQL and Redis. Only one of them may run the handler."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import in_process_runner, runs, submit, transitions


@pytest.fixture
async def runner(settings, client):
    async with in_process_runner(settings, settings.job_packages) as runner:
        yield runner


async def test_duplicates_in_one_claim_batch_run_the_handler_once(runner, client, tmp_path):
    task_id = await submit(client, "flaky", {"marker_dir": str(tmp_path)})
    # Started in one tick: the claims go out together, in one CLAIM_MANY statement.
    await asyncio.gather(*(runner.run_task({}, task_id=task_id) for _ in range(3)))
    assert runs(tmp_path, task_id) == [1]
    task = (await client.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "COMPLETED"
    assert transitions(task) == [(None, "PENDING"), ("PENDING", "PROCESSING"), ("PROCESSING", "COMPLETED")]
