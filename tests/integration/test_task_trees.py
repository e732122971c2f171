"""One request cannot make an unbounded tree of tasks: workflows nest a few levels, a whole tree
has a bounded number of tasks, and a step's result can never become a nested workflow."""

from __future__ import annotations

import json

import pytest

from jobs.workflow_execute import MAX_DEPTH, MAX_TREE_TASKS

WORKFLOW = "workflow_execute"


def nested(levels: int, width: int = 1, leaf: dict | None = None) -> dict:
    """A workflow `levels` deep, each level `width` steps running the level below."""
    payload = {"steps": [leaf or {"type": "noop"}]}
    for _ in range(levels - 1):
        payload = {"steps": [{"type": WORKFLOW, "payload": payload}] * width}
    return payload


async def _submit(client, payload: dict):
    return await client.post("/tasks", json={"type": WORKFLOW, "payload": payload})


async def _stored(client) -> int:
    return len((await client.get("/tasks", params={"limit": 200})).json()["items"])


async def test_the_shared_tree_of_the_review_is_refused_before_anything_is_stored(client):
    # One step echoes a list of 49 nested workflows of 49 steps; 49 steps run that list through
    # a reference: about 120,000 tasks from a request of 40 KB.
    below = [{"type": WORKFLOW, "payload": {"steps": [{"type": "noop"}] * 49}}] * 49
    payload = {
        "steps": [
            {"type": "noop", "payload": {"echo": {"below": below}}},
            *[{"type": WORKFLOW, "payload": {"steps": "${steps.1.echo.below}"}}] * 49,
        ]
    }
    assert len(json.dumps(payload)) < 64 * 1024
    response = await _submit(client, payload)
    assert response.status_code == 422, response.text[:300]
    assert "step 2" in response.json()["detail"]
    assert await _stored(client) == 0


async def test_workflows_nest_at_most_max_depth_levels(client):
    assert (await _submit(client, nested(MAX_DEPTH))).status_code == 202
    response = await _submit(client, nested(MAX_DEPTH + 1))
    assert response.status_code == 422
    assert f"nest at most {MAX_DEPTH}" in response.json()["detail"]


async def test_a_tree_of_more_than_max_tree_tasks_is_refused_naming_its_size(client):
    width = 15  # 1 + 15 * (1 + 15 * 2) = 466 tasks in three levels
    response = await _submit(client, nested(3, width=width))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert f"at most {MAX_TREE_TASKS} tasks" in detail
    assert "466" in detail
    assert await _stored(client) == 0


async def test_a_tree_just_within_the_bound_is_accepted(client):
    steps = [{"type": "noop"}] * (MAX_TREE_TASKS - 3)  # 1 root, 1 nested workflow, 1 step beside it
    payload = {"steps": [{"type": WORKFLOW, "payload": {"steps": steps[:40]}}, {"type": "noop"}]}
    assert (await _submit(client, payload)).status_code == 202


async def test_a_batch_counts_every_tree_toward_one_requests_bound(client):
    # The review's batch: each workflow within its bound, together far past it.
    tree = {"steps": [{"type": WORKFLOW, "payload": {"workflow": "new_lead_followup"}}] * 49}
    batch = {"tasks": [{"type": WORKFLOW, "payload": tree}] * 3}  # 3 * 197 tasks
    response = await client.post("/tasks/batch", json=batch)
    assert response.status_code == 422, response.text[:300]
    assert response.json()["field"] == "tasks"
    assert "591" in response.json()["detail"]
    assert await _stored(client) == 0
    two = await client.post("/tasks/batch", json={"tasks": batch["tasks"][:2]})
    assert two.status_code == 202


@pytest.mark.parametrize("ref", ["${steps.3.echo}\n", "${steps.0}", "${steps.0.echo}"])
async def test_a_reference_is_exactly_one_to_an_earlier_step(client, ref):
    steps = [
        {"type": "noop", "payload": {"echo": {"n": 1}}},
        {"type": "noop", "payload": {"echo": {"x": ref}}},
    ]
    response = await _submit(client, {"steps": steps})
    if ref.endswith("\n"):  # not a reference at all: plain text, kept as it is
        assert response.status_code == 202
        assert response.json()["payload"]["steps"][1]["payload"]["echo"]["x"] == ref
    else:
        assert response.status_code == 422
        assert "step 2" in response.json()["detail"]


async def test_a_step_result_cannot_become_a_nested_workflow(client):
    # The review's carrier: lead_process hands an unparseable phone back as it came, so a lead
    # whose phone is "${steps.1.phone}" would pass a reference down a level.
    for inner in (
        "${steps.1.phone}",
        [{"type": "noop", "payload": {"echo": {"phone": "${steps.1.phone}"}}}],
        [{"type": WORKFLOW, "payload": {"steps": "${steps.1.steps}"}}],
    ):
        payload = {
            "steps": [
                {"type": "lead_process", "payload": {"lead_id": "${lead_id}"}},
                {"type": WORKFLOW, "payload": {"steps": inner}},
            ]
        }
        response = await _submit(client, payload)
        assert response.status_code == 422, (inner, response.text[:300])
        assert "step 2" in response.json()["detail"]
    assert await _stored(client) == 0


async def test_a_nested_workflow_may_use_the_lead_and_its_own_steps(client):
    inner = {
        "steps": [
            {"type": "noop", "payload": {"echo": {"n": 1}}},
            {"type": "noop", "payload": {"echo": {"previous": "${steps.1.echo.n}"}}},
        ],
        "lead_id": "${lead_id}",
    }
    assert (await _submit(client, {"steps": [{"type": WORKFLOW, "payload": inner}]})).status_code == 202
    inner["steps"][0]["payload"]["echo"]["n"] = "${steps.2.echo}"  # its own later step
    response = await _submit(client, {"steps": [{"type": WORKFLOW, "payload": inner}]})
    assert response.status_code == 422
    assert "refers to no step that runs before it" in response.json()["detail"]
