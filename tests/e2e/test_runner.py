"""The durable job runner against real worker processes, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import uuid

import pytest
from redis.asyncio import Redis
from saq.job import Status

from orchestrator.queue import make_queue
from tests.helpers import (
    dequeued_unclaimed,
    reconciler_rounds_after_run_at,
    runs,
    saq_job_done,
    submit,
    transitions,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("workers")


async def test_submitted_task_completes_with_its_whole_history(api):
    task_id = await submit(api, "noop", {"echo": {"hello": "world"}})
    task = await wait_for(api, task_id)
    assert task["status"] == "COMPLETED"
    assert task["result"] == {"echo": {"hello": "world"}, "attempt": 1}
    assert task["attempts"] == 1
    assert task["started_at"]
    assert task["finished_at"]
    assert transitions(task) == [(None, "PENDING"), ("PENDING", "PROCESSING"), ("PROCESSING", "COMPLETED")]
    assert task["history"][1]["worker_id"] == task["worker_id"]


async def test_handler_failing_twice_then_succeeding_completes_on_attempt_three(api, markers):
    task_id = await submit(api, "flaky", {"marker_dir": str(markers), "fail_attempts": 2})
    task = await wait_for(api, task_id)
    assert task["status"] == "COMPLETED"
    assert task["attempts"] == 3
    assert transitions(task) == [
        (None, "PENDING"),
        ("PENDING", "PROCESSING"),
        ("PROCESSING", "RETRY"),
        ("RETRY", "PROCESSING"),
        ("PROCESSING", "RETRY"),
        ("RETRY", "PROCESSING"),
        ("PROCESSING", "COMPLETED"),
    ]
    assert "failing attempt 1" in task["history"][2]["detail"]["error"]
    assert runs(markers, task_id) == [1, 2, 3]


async def test_handler_that_always_fails_ends_failed_after_max_attempts(api, markers):
    task_id = await submit(api, "flaky", {"marker_dir": str(markers), "fail_attempts": 99}, max_attempts=2)
    task = await wait_for(api, task_id)
    assert task["status"] == "FAILED"
    assert task["attempts"] == 2
    assert "failing attempt 2" in task["error"]
    assert runs(markers, task_id) == [1, 2]


async def test_permanent_error_fails_at_once(api, markers):
    task_id = await submit(api, "flaky", {"marker_dir": str(markers), "permanent": True})
    task = await wait_for(api, task_id)
    assert task["status"] == "FAILED"
    assert task["attempts"] == 1
    assert "refused for good" in task["error"]


async def test_failed_task_retried_by_hand_runs_again(api, markers):
    task_id = await submit(api, "flaky", {"marker_dir": str(markers), "fail_attempts": 1}, max_attempts=1)
    assert (await wait_for(api, task_id))["status"] == "FAILED"
    retried = await api.post(f"/tasks/{task_id}/retry")
    assert retried.status_code == 202
    assert retried.json()["status"] == "PENDING"
    task = await wait_for(api, task_id)
    assert task["status"] == "COMPLETED"
    assert task["attempts"] == 2
    assert ("FAILED", "PENDING") in transitions(task)


async def test_illegal_transitions_are_409_with_the_current_status(api):
    task_id = await submit(api, "noop")
    await wait_for(api, task_id)
    cancel = await api.post(f"/tasks/{task_id}/cancel")
    assert cancel.status_code == 409
    assert cancel.json()["current_status"] == "COMPLETED"
    assert "COMPLETED" in cancel.json()["detail"]
    retry = await api.post(f"/tasks/{task_id}/retry")
    assert retry.status_code == 409


async def test_every_task_completes_after_redis_loses_everything(api, settings, server_urls):
    run_at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)).isoformat()
    task_ids = [await submit(api, "noop", {"echo": {"n": n}}, run_at=run_at) for n in range(20)]
    pending = [(await api.get(f"/tasks/{task_id}")).json()["status"] for task_id in task_ids]
    assert set(pending) == {"PENDING"}

    await lose_redis_data(settings, embedded=_is_embedded())

    for task_id in task_ids:
        task = await wait_for(api, task_id, timeout_s=30)
        assert task["status"] == "COMPLETED", task
        assert task["attempts"] == 1


async def test_worker_killed_mid_job_is_retried_and_finishes(api, markers, settings):
    task_id = await submit(api, "flaky", {"marker_dir": str(markers), "sleep_s": 2.0})
    running = await wait_for(api, task_id, {"PROCESSING"})
    async with asyncio.timeout(10):
        while not runs(markers, task_id):  # noqa: ASYNC110  (a file another process writes)
            await asyncio.sleep(0.02)
    os.kill(int(running["worker_id"].rsplit("-", 2)[1]), signal.SIGKILL)

    task = await wait_for(api, task_id, timeout_s=40)
    assert task["status"] == "COMPLETED"
    assert task["attempts"] == 2
    assert ("PROCESSING", "RETRY") in transitions(task)
    assert "lease expired" in str(task["history"])
    assert runs(markers, task_id) == [1, 2]
    # The killed worker's SAQ job does not stay ACTIVE in Redis for good.
    queue = make_queue(settings)
    try:
        async with asyncio.timeout(10):
            while (job := await queue.job(f"{task_id}:0")) is not None and job.status == Status.ACTIVE:  # noqa: ASYNC110  (state in Redis)
                await asyncio.sleep(0.2)
    finally:
        await queue.disconnect()


async def test_cancelled_pending_task_never_runs(api, markers, settings):
    run_at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat()
    task_id = await submit(api, "flaky", {"marker_dir": str(markers)}, run_at=run_at)
    cancelled = await api.post(f"/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLED"
    # Its delivery was taken and refused, and the reconciler has looked since it fell due.
    await saq_job_done(settings, f"{task_id}:0")
    await reconciler_rounds_after_run_at(settings, task_id)
    task = (await api.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "CANCELLED"
    assert task["attempts"] == 0
    assert runs(markers, task_id) == []


async def test_cancelled_running_task_stops_and_stays_cancelled(api, markers):
    task_id = await submit(api, "flaky", {"marker_dir": str(markers), "sleep_s": 30})
    await wait_for(api, task_id, {"PROCESSING"})
    cancelled = await api.post(f"/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200
    async with asyncio.timeout(5):
        while not runs(markers, task_id, "cancelled"):  # noqa: ASYNC110  (a file another process writes)
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    task = (await api.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "CANCELLED"
    assert transitions(task)[-1] == ("PROCESSING", "CANCELLED")


async def test_duplicate_deliveries_run_the_handler_once_and_finish_once(api, settings, markers):
    task_id = await submit(api, "flaky", {"marker_dir": str(markers), "sleep_s": 0.5})
    queue = make_queue(settings)
    try:
        for copy in range(3):  # the same task, delivered under other job keys, racing the first
            await queue.enqueue("run_task", key=f"{task_id}:dup{copy}", task_id=task_id, timeout=0, retries=1)
        task = await wait_for(api, task_id)
        await queue.enqueue("run_task", key=f"{task_id}:late", task_id=task_id, timeout=0, retries=1)
        await saq_job_done(settings, f"{task_id}:late")
    finally:
        await queue.disconnect()
    task = (await api.get(f"/tasks/{task_id}")).json()
    assert task["status"] == "COMPLETED"
    assert task["attempts"] == 1
    assert runs(markers, task_id) == [1]
    assert transitions(task) == [(None, "PENDING"), ("PENDING", "PROCESSING"), ("PROCESSING", "COMPLETED")]


async def test_tasks_of_a_lead_and_filters(api):
    lead = (await api.post("/leads", json={"email": f"{uuid.uuid4().hex}@example.com"})).json()
    task_id = await submit(api, "noop", lead_id=lead["id"])
    await wait_for(api, task_id)
    listed = (await api.get(f"/leads/{lead['id']}/tasks")).json()["items"]
    assert task_id in [task["id"] for task in listed]
    by_type = (await api.get("/tasks", params={"lead_id": lead["id"], "type": "noop"})).json()["items"]
    assert [task["id"] for task in by_type] == [task_id]
    unknown_lead = await api.post("/tasks", json={"type": "noop", "lead_id": str(uuid.uuid4())})
    assert unknown_lead.status_code == 404
    assert "lead_id" in unknown_lead.json()["detail"]


def _is_embedded() -> bool:
    return os.environ.get("REDIS_URL") is None


async def lose_redis_data(settings, embedded: bool) -> None:
    """FLUSHALL on a Redis the tests started; on a shared one, delete everything of our queue."""
    redis = Redis.from_url(settings.redis_dsn)
    try:
        if embedded:
            await redis.flushall()
            return
        for pattern in (f"saq:{settings.queue_name}:*", f"saq:job:{settings.queue_name}:*"):
            keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
            if keys:
                await redis.delete(*keys)
    finally:
        await redis.aclose()


async def test_every_lead_write_records_a_crm_update_that_runs(api):
    created = await api.post("/leads", json={"email": f"{uuid.uuid4().hex}@example.com", "company": "A"})
    lead_id = created.json()["id"]
    await api.patch(f"/leads/{lead_id}", json={"company": "B"})
    await api.put(f"/leads/{lead_id}", json={"email": created.json()["email"], "company": "C"})
    tasks = (await api.get(f"/leads/{lead_id}/tasks")).json()["items"]
    assert [task["type"] for task in tasks] == ["crm_update"] * 3
    for task in tasks:
        done = await wait_for(api, task["id"])
        assert done["status"] == "COMPLETED"
        assert done["result"]["crm_sync"] == "skipped"


async def test_crm_update_applies_changes_with_a_version_bump(api):
    lead = (await api.post("/leads", json={"email": f"{uuid.uuid4().hex}@example.com"})).json()
    payload = {"lead_id": lead["id"], "changes": {"status": "qualified", "score": 80}}
    task = await wait_for(api, await submit(api, "crm_update", payload, lead_id=lead["id"]))
    assert task["status"] == "COMPLETED", task["error"]
    assert task["result"]["changed"] == ["score", "status"]
    stored = (await api.get(f"/leads/{lead['id']}")).json()
    assert (stored["status"], stored["score"]) == ("qualified", 80)
    assert stored["version"] == lead["version"] + 1


async def test_crm_update_of_a_deleted_lead_fails_at_once(api):
    lead = (await api.post("/leads", json={"email": f"{uuid.uuid4().hex}@example.com"})).json()
    await api.delete(f"/leads/{lead['id']}")
    task = await wait_for(api, await submit(api, "crm_update", {"lead_id": lead["id"]}))
    assert task["status"] == "FAILED"
    assert task["attempts"] == 1
    assert "does not exist" in task["error"]


async def test_bad_crm_update_payload_is_422_naming_the_field(api):
    response = await api.post(
        "/tasks", json={"type": "crm_update", "payload": {"lead_id": "x", "changes": {}}}
    )
    assert response.status_code == 422
    assert "lead_id" in response.json()["detail"]
    response = await api.post(
        "/tasks",
        json={"type": "crm_update", "payload": {"lead_id": str(uuid.uuid4()), "changes": {"email": "no"}}},
    )
    assert response.status_code == 422
    assert any(error["field"] == "payload.changes.email" for error in response.json()["errors"])


async def test_a_batch_is_submitted_all_or_none_and_every_task_runs(api):
    batch = {"tasks": [{"type": "noop", "payload": {"echo": {"n": n}}} for n in range(25)]}
    accepted = await api.post("/tasks/batch", json=batch)
    assert accepted.status_code == 202
    items = accepted.json()["items"]
    assert len(items) == 25
    for item in items:
        assert (await wait_for(api, item["id"]))["status"] == "COMPLETED"

    before = len((await api.get("/tasks", params={"limit": 200})).json()["items"])
    bad = {"tasks": [{"type": "noop"}, {"type": "noop", "payload": {"sleep_s": -1}}]}
    refused = await api.post("/tasks/batch", json=bad)
    assert refused.status_code == 422
    assert refused.json()["field"] == "tasks[1].payload"
    assert len((await api.get("/tasks", params={"limit": 200})).json()["items"]) == before


async def test_retry_by_hand_of_a_cancelled_scheduled_task_runs_now(api):
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).isoformat()
    task_id = await submit(api, "noop", run_at=later)
    assert (await api.post(f"/tasks/{task_id}/cancel")).status_code == 200
    assert (await api.post(f"/tasks/{task_id}/retry")).status_code == 202
    # Its SAQ job still waits for the old run_at; the reconciler notices and delivers it now.
    task = await wait_for(api, task_id, timeout_s=20)
    assert task["status"] == "COMPLETED"


async def test_a_task_whose_job_died_active_before_its_claim_is_delivered_again(api, settings):
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).isoformat()
    task_id = await submit(api, "noop", run_at=later)  # not taken by the workers meanwhile
    # What a worker SIGKILLed between SAQ's dequeue and our claim leaves behind.
    await dequeued_unclaimed(settings, task_id, dequeued_s_ago=settings.reconcile_grace_s + 5)
    task = await wait_for(api, task_id, timeout_s=20)
    assert task["status"] == "COMPLETED"
    assert task["attempts"] == 1


async def test_a_handler_past_its_timeout_is_stopped_and_counted_as_a_failure(api, markers):
    payload = {"marker_dir": str(markers), "sleep_s": 10}
    task_id = await submit(api, "flaky", payload, timeout_s=0.5, max_attempts=1)
    task = await wait_for(api, task_id, timeout_s=20)
    assert task["status"] == "FAILED"
    assert "timed out after 0.5 s" in task["error"]
    assert runs(markers, task_id, "cancelled") == [1]


async def test_the_saq_job_carries_only_the_task_id(api, settings):
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).isoformat()
    lead = (await api.post("/leads", json={"email": f"{uuid.uuid4().hex}@example.com"})).json()
    task_id = await submit(api, "crm_update", {"lead_id": lead["id"], "changes": {"score": 1}}, run_at=later)
    queue = make_queue(settings)
    try:
        job = await queue.job(f"{task_id}:0")
    finally:
        await queue.disconnect()
    assert job is not None
    assert job.kwargs == {"task_id": task_id}
    assert (job.timeout, job.retries, job.heartbeat) == (0, 1, 0)
    await api.post(f"/tasks/{task_id}/cancel")


async def test_a_handler_running_past_several_leases_keeps_its_task_by_renewing(api, settings, markers):
    sleep_s = 2.5 * settings.task_lease_s  # without renewals the reconciler would hand it on twice
    task_id = await submit(api, "flaky", {"marker_dir": str(markers), "sleep_s": sleep_s})
    task = await wait_for(api, task_id, timeout_s=60)
    assert task["status"] == "COMPLETED"
    assert task["attempts"] == 1
    assert runs(markers, task_id) == [1]
    assert runs(markers, task_id, "cancelled") == []
