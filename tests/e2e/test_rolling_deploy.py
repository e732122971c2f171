"""A rolling deploy: a worker that does not know a task's job type hands the task back, saying
why, instead of failing it; a worker that knows the type runs it, the hand-back uncounted."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest

from load.service import Service
from tests.helpers import runs, settings_env, submit, transitions, wait_for


@pytest.fixture(scope="module")
def worker_extra_env() -> dict[str, str]:
    """This module's workers are the old release: they know only the built-in job types."""
    return {"JOB_PACKAGES": json.dumps(["jobs"])}


async def _handed_back(api, task_id: str) -> dict:
    async with asyncio.timeout(20):
        while True:
            task = (await api.get(f"/tasks/{task_id}")).json()
            if task["status"] == "FAILED" or ("PROCESSING", "PENDING") in transitions(task):
                return task
            await asyncio.sleep(0.1)


async def test_a_task_of_a_type_the_worker_does_not_know_waits_for_one_that_does(
    api, settings, markers, tmp_path, workers
):
    task_id = await submit(api, "flaky", {"marker_dir": str(markers)}, max_attempts=1)
    handed_back = await _handed_back(api, task_id)
    assert handed_back["status"] == "PENDING", handed_back["error"]
    assert "does not know job type 'flaky'" in handed_back["history"][-1]["detail"]["reason"]
    assert handed_back["attempts"] == 0  # the hand-back is not counted

    # The new release comes up, then the old one goes, as a rolling deploy does.
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= settings_env(settings) | {"PYTHONUNBUFFERED": "1"}
    new = Service(["worker", "--processes", "1"], env, tmp_path / "new-worker.log")
    new.start()
    try:
        workers.stop(signal.SIGTERM)
        task = await wait_for(api, task_id, timeout_s=60)
    finally:
        new.kill_leftovers()
    assert task["status"] == "COMPLETED", task["error"]
    assert task["attempts"] == 1
    assert runs(markers, task_id) == [1]
