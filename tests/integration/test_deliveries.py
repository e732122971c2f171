"""Every task the API records is handed to SAQ as soon as its answer is sent, and a refused
request hands over nothing. No worker and no reconciler run here, so a missing enqueue shows."""

from __future__ import annotations

import uuid

import pytest

from orchestrator.queue import make_queue
from tests.factories import lead_body

LATER = "2999-01-01T00:00:00Z"  # scheduled far ahead: nothing would run it even with a worker


@pytest.fixture
async def queue(settings):
    queue = make_queue(settings)
    yield queue
    await queue.disconnect()


async def _enqueued(queue, *tasks: dict) -> list[bool]:
    jobs = await queue.jobs([f"{task['id']}:{task['attempts']}" for task in tasks])
    return [job is not None for job in jobs]


async def test_each_lead_write_enqueues_its_crm_update(client, queue):
    lead = (await client.post("/leads", json=lead_body())).json()
    assert (await client.patch(f"/leads/{lead['id']}", json={"company": "Patched"})).status_code == 200
    assert (await client.put(f"/leads/{lead['id']}", json=lead_body())).status_code == 200
    syncs = (await client.get(f"/leads/{lead['id']}/tasks")).json()["items"]
    assert [task["type"] for task in syncs] == ["crm_update"] * 3
    assert await _enqueued(queue, *syncs) == [True] * 3


async def test_a_submitted_task_a_batch_and_a_retry_are_enqueued(client, queue):
    single = (await client.post("/tasks", json={"type": "noop", "run_at": LATER})).json()
    batch = (
        await client.post("/tasks/batch", json={"tasks": [{"type": "noop", "run_at": LATER}] * 3})
    ).json()
    assert await _enqueued(queue, single, *batch["items"]) == [True] * 4

    assert (await client.post(f"/tasks/{single['id']}/cancel")).status_code == 200
    # Forget the first delivery, as a Redis that lost it would: the retry must deliver on its own.
    job_id = queue.job_id(f"{single['id']}:0")
    await queue.redis.delete(job_id)
    await queue.redis.zrem(queue.namespace("incomplete"), job_id)
    assert await _enqueued(queue, single) == [False]
    retried = (await client.post(f"/tasks/{single['id']}/retry")).json()
    assert await _enqueued(queue, retried) == [True]


async def test_a_refused_batch_enqueues_none_of_its_tasks(client, queue):
    before = await queue.redis.zcard(queue.namespace("incomplete"))
    bad = {
        "tasks": [{"type": "noop", "run_at": LATER}] * 3 + [{"type": "noop", "lead_id": str(uuid.uuid4())}]
    }
    response = await client.post("/tasks/batch", json=bad)
    assert response.status_code == 404
    assert response.json()["field"] == "tasks[3].lead_id"
    assert await queue.redis.zcard(queue.namespace("incomplete")) == before


async def test_a_refused_task_does_not_spend_its_idempotency_key(client):
    key = f"key-{uuid.uuid4()}"
    refused = {"type": "noop", "lead_id": str(uuid.uuid4())}
    for _ in range(2):
        response = await client.post("/tasks", json=refused, headers={"Idempotency-Key": key})
        assert response.status_code == 404
        assert response.json()["field"] == "lead_id"
    accepted = await client.post("/tasks", json={"type": "noop"}, headers={"Idempotency-Key": key})
    assert accepted.status_code == 202
