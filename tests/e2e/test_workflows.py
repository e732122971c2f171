"""workflow_execute: steps as child tasks, resumed after SIGKILL, failing on a failed step."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any

import pytest

from tests.helpers import runs, submit, transitions, wait_for

pytestmark = pytest.mark.usefixtures("workers")


@pytest.fixture(scope="module")
def worker_extra_env(outbox) -> dict[str, str]:
    return {"EMAIL_OUTBOX_DIR": str(outbox)}


async def children(api, task_id: str) -> list[dict[str, Any]]:
    return (await api.get(f"/tasks/{task_id}")).json()["children"]


async def test_new_lead_followup_runs_its_three_steps_in_order(api, outbox):
    body = {"email": f"{uuid.uuid4().hex}@example.com", "first_name": "Ada", "phone": "(415) 555-2671"}
    lead = (await api.post("/leads", json=body)).json()
    task_id = await submit(api, "workflow_execute", {"workflow": "new_lead_followup"}, lead_id=lead["id"])
    task = await wait_for(api, task_id, timeout_s=60)
    assert task["status"] == "COMPLETED", task["error"]
    steps = task["children"]
    assert [step["type"] for step in steps] == ["lead_process", "crm_update", "email_send"]
    assert all(step["status"] == "COMPLETED" and step["attempts"] == 1 for step in steps)
    assert all(step["parent_id"] == task_id and step["lead_id"] == lead["id"] for step in steps)
    assert [step["task_id"] for step in task["result"]["steps"]] == [step["id"] for step in steps]
    assert (await api.get(f"/leads/{lead['id']}")).json()["phone"] == "+14155552671"
    assert list(outbox.glob(f"task-{steps[2]['id']}*.eml"))


async def test_steps_can_use_earlier_results(api):
    steps = [
        {"type": "noop", "payload": {"echo": {"score": 42}}},
        {"type": "noop", "payload": {"echo": {"previous": "${steps.1.echo.score}"}}},
    ]
    task = await wait_for(api, await submit(api, "workflow_execute", {"steps": steps}), timeout_s=60)
    assert task["status"] == "COMPLETED", task["error"]
    assert task["children"][1]["result"]["echo"] == {"previous": 42}


async def test_a_failed_step_fails_the_workflow_naming_the_step(api, markers):
    steps = [
        {"type": "noop", "payload": {}},
        {"type": "flaky", "payload": {"marker_dir": str(markers), "permanent": True}},
        {"type": "noop", "payload": {}},
    ]
    task = await wait_for(api, await submit(api, "workflow_execute", {"steps": steps}), timeout_s=60)
    assert task["status"] == "FAILED"
    assert "step 2 (flaky" in task["error"]
    assert len(task["children"]) == 2


async def test_workers_killed_mid_workflow_resume_and_never_run_a_finished_step_again(
    api, worker_service, markers
):
    step = {"type": "flaky", "payload": {"marker_dir": str(markers), "sleep_s": 0.5}}
    task_id = await submit(api, "workflow_execute", {"steps": [step, step, step]})
    async with asyncio.timeout(30):
        while not (done := [c for c in await children(api, task_id) if c["status"] == "COMPLETED"]):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    worker_service.stop(signal.SIGKILL)
    worker_service.start()

    finished_before = {child["id"] for child in done}

    task = await wait_for(api, task_id, timeout_s=90)
    assert task["status"] == "COMPLETED", task["error"]
    steps = task["children"]
    assert [child["step"] for child in steps] == [1, 2, 3]  # each step recorded once
    for child in steps:
        detail = (await api.get(f"/tasks/{child['id']}")).json()
        assert transitions(detail).count(("PROCESSING", "COMPLETED")) == 1
        started = runs(markers, child["id"])
        # A step that had finished is never run again. One the kill cut short runs once more,
        # and its first attempt may have been claimed but killed before its handler began.
        allowed = [[1]] if child["id"] in finished_before else [[1], [2], [1, 2]]
        assert started in allowed, (child["step"], started)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"workflow": "nope"}, "unknown workflow"),
        ({"steps": [{"type": "nope"}]}, "unknown job type"),
        (
            {"steps": [{"type": "noop", "payload": {"echo": {"x": "${steps.1.echo}"}}}]},
            "no step that runs before it",
        ),
        ({}, "either"),
    ],
)
async def test_bad_workflows_are_refused_at_submit(api, payload, message):
    response = await api.post("/tasks", json={"type": "workflow_execute", "payload": payload})
    assert response.status_code == 422
    assert message in response.json()["detail"]


async def test_cancelling_a_workflow_stops_its_running_step_and_starts_no_other(api, markers):
    step = {"type": "flaky", "payload": {"marker_dir": str(markers), "sleep_s": 30}}
    task_id = await submit(api, "workflow_execute", {"steps": [step, step]})
    async with asyncio.timeout(30):
        while not (steps := await children(api, task_id)) or steps[0]["status"] != "PROCESSING":  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    cancelled = await api.post(f"/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200

    first = await wait_for(api, steps[0]["id"], timeout_s=10)
    assert first["status"] == "CANCELLED"
    async with asyncio.timeout(5):  # its handler is stopped at the worker's next heartbeat
        while not runs(markers, first["id"], "cancelled"):  # noqa: ASYNC110  (another process's file)
            await asyncio.sleep(0.05)
    await asyncio.sleep(2.0)  # a few reconciler rounds: nothing may wake the workflow again
    workflow = (await api.get(f"/tasks/{task_id}")).json()
    assert workflow["status"] == "CANCELLED"
    assert [child["status"] for child in workflow["children"]] == ["CANCELLED"]


async def test_a_nested_workflow_fills_in_its_own_steps_results(api):
    inner = [
        {"type": "noop", "payload": {"echo": {"n": 1}}},
        {"type": "noop", "payload": {"echo": {"previous": "${steps.1.echo.n}"}}},
    ]
    outer = [
        {"type": "noop", "payload": {"echo": {"n": 2}}},
        {"type": "workflow_execute", "payload": {"steps": inner}},
    ]
    task = await wait_for(api, await submit(api, "workflow_execute", {"steps": outer}), timeout_s=60)
    assert task["status"] == "COMPLETED", task["error"]
    nested = await wait_for(api, task["children"][1]["id"], timeout_s=5)
    assert nested["children"][1]["result"]["echo"] == {"previous": 1}  # its own step 1, not ours


async def test_cancelling_a_workflow_reaches_the_steps_of_its_nested_workflows(api, markers):
    step = {"type": "flaky", "payload": {"marker_dir": str(markers), "sleep_s": 30}}
    task_id = await submit(
        api, "workflow_execute", {"steps": [{"type": "workflow_execute", "payload": {"steps": [step]}}]}
    )
    async with asyncio.timeout(30):
        while not (  # noqa: ASYNC110  (state in another process)
            (nested := await children(api, task_id))
            and (inner := await children(api, nested[0]["id"]))
            and inner[0]["status"] == "PROCESSING"
        ):
            await asyncio.sleep(0.1)
    assert (await api.post(f"/tasks/{task_id}/cancel")).status_code == 200
    assert (await wait_for(api, inner[0]["id"], timeout_s=10))["status"] == "CANCELLED"
    assert (await wait_for(api, nested[0]["id"], timeout_s=10))["status"] == "CANCELLED"
