"""POST /tasks and /tasks/batch refuse what cannot be run, naming the field, and store nothing."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import lead_body


async def _task_count(client) -> int:
    return len((await client.get("/tasks", params={"limit": 200})).json()["items"])


async def test_a_task_for_a_lead_that_does_not_exist_is_404_naming_lead_id(client):
    missing = str(uuid.uuid4())
    response = await client.post("/tasks", json={"type": "noop", "lead_id": missing})
    assert response.status_code == 404
    assert response.json()["field"] == "lead_id"
    assert missing in response.json()["detail"]
    assert await _task_count(client) == 0


async def test_a_batch_with_one_missing_lead_stores_none_of_its_tasks(client):
    lead = (await client.post("/leads", json=lead_body())).json()
    before = await _task_count(client)  # the lead's own crm_update
    batch = {
        "tasks": [{"type": "noop", "lead_id": lead["id"]}, {"type": "noop", "lead_id": str(uuid.uuid4())}]
    }
    response = await client.post("/tasks/batch", json=batch)
    assert response.status_code == 404
    assert response.json()["field"] == "tasks[1].lead_id"
    assert await _task_count(client) == before


async def test_an_unknown_job_type_is_422_naming_the_known_ones(client):
    response = await client.post("/tasks", json={"type": "nope"})
    assert response.status_code == 422
    assert response.json()["field"] == "type"
    assert "noop" in response.json()["detail"]


async def test_a_task_detail_carries_its_history_in_order(client):
    task = (await client.post("/tasks", json={"type": "noop", "run_at": "2999-01-01T00:00:00Z"})).json()
    await client.post(f"/tasks/{task['id']}/cancel")
    detail = (await client.get(f"/tasks/{task['id']}")).json()
    moves = [(event["from_status"], event["to_status"]) for event in detail["history"]]
    assert moves == [(None, "PENDING"), ("PENDING", "CANCELLED")]
    assert detail["children"] == []


@pytest.mark.parametrize(
    "run_at", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]
)
async def test_a_run_at_at_the_edge_of_time_is_422_naming_it(client, run_at):
    for body in ({"type": "noop", "run_at": run_at}, {"tasks": [{"type": "noop", "run_at": run_at}]}):
        response = await client.post("/tasks" if "type" in body else "/tasks/batch", json=body)
        assert response.status_code == 422, response.text
        assert "run_at" in response.json()["detail"]
