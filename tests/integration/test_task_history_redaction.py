"""A failed attempt's traceback (paths, the Python version, source lines) is for admin keys only."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from orchestrator.auth.keys import issue_key
from orchestrator.auth.models import Scope
from tests.helpers import bearer, in_process_runner, submit

REPOSITORY = str(Path(__file__).resolve().parents[2])
TRACEBACK_HEADER = "Traceback (most recent call last)"


@pytest.fixture
async def failed_task_id(settings, client, tmp_path) -> str:
    """A task whose one attempt raised in its handler, run by run_task itself."""
    payload = {"marker_dir": str(tmp_path), "fail_attempts": 1}
    task_id = await submit(client, "flaky", payload, max_attempts=1)
    async with in_process_runner(settings, settings.job_packages) as runner:
        await runner.run_task({}, task_id=task_id)
    return task_id


async def test_an_admin_key_sees_the_traceback_of_a_failed_attempt(client, failed_task_id):
    task = (await client.get(f"/tasks/{failed_task_id}")).json()
    failure = task["history"][-1]
    assert (task["status"], failure["to_status"]) == ("FAILED", "FAILED")
    assert failure["detail"]["error"] == "RuntimeError: failing attempt 1"
    assert failure["detail"]["traceback"].startswith(TRACEBACK_HEADER)


@pytest.mark.parametrize("scope", [Scope.READ, Scope.WRITE])
async def test_read_and_write_keys_see_the_failure_without_its_traceback(
    settings, client, failed_task_id, scope
):
    key = await issue_key(settings, f"{scope}-{uuid.uuid4().hex[:6]}", scope)
    response = await client.get(f"/tasks/{failed_task_id}", headers=bearer(key))
    assert response.status_code == 200
    failure = response.json()["history"][-1]
    assert failure["detail"] == {"error": "RuntimeError: failing attempt 1"}
    # The history only: the payload holds the test's own marker directory, a path of its own.
    history = json.dumps(response.json()["history"])
    for leak in (TRACEBACK_HEADER, "/site-packages/", REPOSITORY, '"traceback"'):
        assert leak not in history
