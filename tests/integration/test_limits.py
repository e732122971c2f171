"""Every limit on input is a 4xx naming the limit, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.json_bounds import MAX_BYTES, MAX_DEPTH
from tests.factories import lead_body
from tests.helpers import app_client


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def problem_fields(response) -> dict[str, str]:
    return {error["field"]: error["message"] for error in response.json()["errors"]}


async def test_a_body_over_the_limit_is_413_naming_the_limit(client, settings):
    body = lead_body() | {"attributes": {"blob": "x" * settings.max_request_body_bytes}}

    response = await client.post("/leads", json=body)

    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert str(settings.max_request_body_bytes) in response.json()["detail"]
    assert response.json()["limit_bytes"] == settings.max_request_body_bytes
    assert (await client.get("/leads")).json()["items"] == []


async def test_attributes_and_payloads_nested_too_deep_are_422_naming_the_depth(client):
    deepest = await client.post("/leads", json=lead_body() | {"attributes": nested(MAX_DEPTH)})
    assert deepest.status_code == 201

    lead = await client.post("/leads", json=lead_body() | {"attributes": nested(MAX_DEPTH + 1)})
    task = await client.post("/tasks", json={"type": "noop", "payload": {"echo": nested(MAX_DEPTH)}})

    assert lead.status_code == 422
    assert f"nested deeper than {MAX_DEPTH} levels" in problem_fields(lead)["attributes"]
    assert task.status_code == 422
    assert f"nested deeper than {MAX_DEPTH} levels" in problem_fields(task)["payload"]


async def test_attributes_and_payloads_over_the_size_limit_are_422_naming_it(settings, api_key):
    roomy = settings.model_copy(update={"max_request_body_bytes": 4 * MAX_BYTES})
    async with app_client(roomy, api_key) as client:
        big = {"blob": "x" * MAX_BYTES}
        lead = await client.post("/leads", json=lead_body() | {"attributes": big})
        task = await client.post("/tasks", json={"type": "noop", "payload": {"echo": big}})
        patch_target = (await client.post("/leads", json=lead_body())).json()
        patch = await client.patch(f"/leads/{patch_target['id']}", json={"attributes": big})

    for response, field in ((lead, "attributes"), (task, "payload"), (patch, "attributes")):
        assert response.status_code == 422
        assert f"the limit is {MAX_BYTES}" in problem_fields(response)[field]


async def test_page_size_and_string_length_limits_are_422_naming_them(client):
    page = await client.get("/leads", params={"limit": 10_000})
    name = await client.post("/leads", json=lead_body() | {"first_name": "x" * 201})

    assert page.status_code == 422
    assert "200" in problem_fields(page)["limit"]
    assert name.status_code == 422
    assert "at most 200 characters" in problem_fields(name)["first_name"]


@pytest.mark.parametrize("depth", [100, 500, 700, 900, 950, 990, 1100])
async def test_json_nested_to_any_depth_is_a_4xx_never_a_500(client, depth):
    """Up to the decoder's own limit (then 400), every depth is refused with a 4xx."""
    deep = '{"a":' * (depth - 1) + '{"leaf":1}' + "}" * (depth - 1)  # json.dumps would overflow first
    headers = {"Content-Type": "application/json"}
    task_json = f'{{"type":"noop","payload":{{"echo":{deep}}}}}'
    task = await client.post("/tasks", content=task_json, headers=headers)
    lead_json = json.dumps(lead_body())[:-1] + f',"attributes":{deep}}}'
    lead = await client.post("/leads", content=lead_json, headers=headers)
    assert 400 <= task.status_code < 500, task.text[:300]
    assert 400 <= lead.status_code < 500, lead.text[:300]


async def test_a_patch_cannot_grow_attributes_past_the_size_limit(client):
    """Each merge patch is within the bound; their sum is not: the merged result is checked."""
    lead = (await client.post("/leads", json=lead_body())).json()
    chunk = "x" * (MAX_BYTES // 3)
    answers = [
        await client.patch(f"/leads/{lead['id']}", json={"attributes": {f"part{n}": chunk}}) for n in range(4)
    ]
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert answers[3].status_code == 422
    assert answers[3].json()["field"] == "attributes"
    assert f"the limit is {MAX_BYTES}" in answers[3].json()["detail"]
    stored = (await client.get(f"/leads/{lead['id']}")).json()["attributes"]
    assert len(json.dumps(stored).encode()) <= MAX_BYTES
