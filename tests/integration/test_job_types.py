"""Job types made for tests are off unless a setting turns them on, and no task may take longer
than its type allows: neither can hold every worker slot for a day."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from orchestrator.app import create_app
from orchestrator.job import discover
from tests.helpers import bearer


async def test_test_job_types_are_off_by_default(settings, api_key):
    production = settings.model_copy(update={"test_job_types": False})
    async with AsyncTestClient(app=create_app(production)) as client:
        client.headers.update(bearer(api_key))
        sleeper = await client.post("/tasks", json={"type": "noop", "payload": {"sleep_s": 3600}})
        listed = {job["name"] for job in (await client.get("/jobs")).json()}
        in_a_step = await client.post(
            "/tasks", json={"type": "workflow_execute", "payload": {"steps": [{"type": "noop"}]}}
        )
    assert sleeper.status_code == 422
    assert "unknown job type 'noop'" in sleeper.json()["detail"]
    assert "noop" not in listed
    assert {"email_send", "workflow_execute"} <= listed
    assert in_a_step.status_code == 422
    assert "noop" in in_a_step.json()["detail"]


def test_the_worker_side_registry_leaves_them_out_too():
    assert "noop" not in discover(["jobs"])
    assert "noop" in discover(["jobs"], test_types=True)


@pytest.mark.parametrize(("job_type", "payload"), [("noop", {}), ("email_send", None)])
async def test_a_task_timeout_above_its_types_is_422_naming_the_limit(client, job_type, payload):
    limit = next(job for job in (await client.get("/jobs")).json() if job["name"] == job_type)["timeout_s"]
    body = {"type": job_type, "timeout_s": 86_400}
    if payload is not None:
        body["payload"] = payload
    else:
        body["payload"] = {"to": "someone@example.com", "subject": "Hi", "text": "x"}
    response = await client.post("/tasks", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "timeout_s"
    assert f"at most {limit:g} s" in response.json()["detail"]
    body["timeout_s"] = limit
    assert (await client.post("/tasks", json=body)).status_code == 202
