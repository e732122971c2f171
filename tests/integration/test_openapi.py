"""The OpenAPI document says what the API enforces, and the API enforces what it says.

Schemathesis checks the two against each other at large (tests/e2e/test_fuzz.py); these pin the
rules that were once looser in the document than in the code, or the other way round.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.factories import lead_body


@pytest.fixture
async def openapi(client) -> dict[str, Any]:
    document: dict[str, Any] = (await client.get("/schema/openapi.json")).json()
    return document


def component(openapi: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = openapi["components"]["schemas"][name]
    return found


async def test_a_task_has_one_shape_per_job_type_of_this_service(openapi, client):
    types = sorted(job["name"] for job in (await client.get("/jobs")).json())
    task = component(openapi, "TaskCreate")
    assert sorted(task["discriminator"]["mapping"]) == types
    email = component(openapi, "TaskCreate.email_send")
    assert email["properties"]["type"] == {
        "const": "email_send",
        "description": email["properties"]["type"]["description"],
    }
    assert "payload" in email["required"]  # an empty payload is refused
    assert "payload" not in component(openapi, "TaskCreate.noop").get("required", [])
    others = component(openapi, "workflow_execute.Step.other")["properties"]["type"]["enum"]
    assert others == [name for name in types if name != "workflow_execute"]


def _nested(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "workflow_execute", "payload": {"steps": steps, "lead_id": "${lead_id}"}}


async def test_a_step_runs_a_workflow_as_deep_as_the_submit_check_allows_and_the_document_says(
    openapi, client
):
    """Three levels of workflows: the document's steps nest that deep, and so does the API."""
    level, depth = "workflow_execute.Step", 1
    while "oneOf" in (step := component(openapi, level)):
        runs = step["oneOf"][1]
        assert runs["properties"]["type"] == {"const": "workflow_execute"}
        assert "payload" in runs["required"]
        nested = component(openapi, runs["properties"]["payload"]["$ref"].rsplit("/", 1)[1])
        assert {"const": "${lead_id}"} in nested["properties"]["lead_id"]["anyOf"]
        level, depth = nested["properties"]["steps"]["anyOf"][0]["items"]["$ref"].rsplit("/", 1)[1], depth + 1
    assert depth == 3  # the innermost steps run no workflow

    innermost = [{"type": "noop"}]
    three = {"type": "workflow_execute", "payload": {"steps": [_nested([_nested(innermost)])]}}
    assert (await client.post("/tasks", json=three)).status_code == 202
    four = {"type": "workflow_execute", "payload": {"steps": [_nested([_nested([_nested(innermost)])])]}}
    refused = await client.post("/tasks", json=four)
    assert refused.status_code == 422, refused.text


async def test_the_bounds_the_code_enforces_are_in_the_document(openapi):
    task = component(openapi, "TaskCreate.noop")["properties"]
    assert task["timeout_s"]["anyOf"][0]["exclusiveMinimum"] == 0
    email_timeout = component(openapi, "TaskCreate.email_send")["properties"]["timeout_s"]["anyOf"][0]
    assert email_timeout["maximum"] == 60  # the type's own
    lead = component(openapi, "LeadWrite")
    assert lead["additionalProperties"] is False
    assert [branch["required"] for branch in lead["anyOf"]] == [["email"], ["phone"]]
    patch = component(openapi, "LeadPatch")["properties"]
    assert "anyOf" not in patch["status"]  # absent or a status, never null
    assert patch["score"]["anyOf"][0] == {"maximum": 100, "minimum": 0, "type": "integer"}


@pytest.mark.parametrize(
    ("path", "allowed"), [("/leads", "GET, OPTIONS, POST"), ("/tasks", "GET, OPTIONS, POST")]
)
async def test_options_lists_every_method_of_the_path(client, path, allowed):
    response = await client.options(path)
    assert response.headers["allow"] == allowed


async def test_a_malformed_if_match_is_refused_not_taken_for_a_stale_one(client):
    lead = (await client.post("/leads", json=lead_body())).json()
    for if_match in ("0", "", '"1', "W/1"):
        response = await client.patch(
            f"/leads/{lead['id']}", json={"score": 1}, headers={"If-Match": if_match}
        )
        assert response.status_code == 422, (if_match, response.text)
        assert response.json()["errors"][0]["field"] == "If-Match"
    stale = await client.patch(f"/leads/{lead['id']}", json={"score": 1}, headers={"If-Match": '"7", W/"1"'})
    assert stale.status_code == 412


async def test_a_cursor_is_22_base64url_characters_and_any_such_is_a_position(client):
    assert (await client.get("/leads", params={"cursor": "x" * 21})).status_code == 422
    page = await client.get("/leads", params={"cursor": "A" * 22})
    assert page.status_code == 200


async def test_an_email_at_a_special_use_domain_is_refused_as_the_document_says(client, openapi):
    pattern = re.compile(component(openapi, "LeadWrite")["properties"]["email"]["anyOf"][0]["pattern"])
    for email, allowed in (("ada@example.com", True), ("ada@box.test", False), ("ada@HOST.LOCAL", False)):
        response = await client.post("/leads", json={"email": email})
        assert (response.status_code == 201) is allowed, response.text
        assert bool(pattern.match(email)) is allowed


async def test_a_rule_of_the_whole_body_names_no_field(client):
    response = await client.post("/leads", json={"first_name": "Ada"})
    assert response.status_code == 422
    assert [set(error) for error in response.json()["errors"]] == [{"message", "in"}]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/tasks", {"type": "noop", "run_at": 0}, "run_at"),
        ("/tasks", {"type": "noop", "run_at": "1700000000"}, "run_at"),
        ("/tasks", {"type": "noop", "run_at": "2030-01-01 09:00:00Z"}, "run_at"),
        ("/tasks", {"type": "noop", "timeout_s": "5"}, "timeout_s"),
        ("/tasks", {"type": "noop", "max_attempts": "3"}, "max_attempts"),
        ("/tasks", {"type": "noop", "payload": {"sleep_s": "1"}}, "payload"),
        ("/leads", lead_body() | {"score": "10"}, "score"),
    ],
)
async def test_a_value_of_another_json_type_is_refused_not_coerced(client, path, body, field):
    response = await client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


async def test_every_error_answer_is_documented_as_the_problem_the_api_sends(openapi, client):
    """Litestar documents a 400 of its own shape for routes with path parameters; a generated
    client then cannot read it (and the API never sends it)."""
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            for code, response in operation.get("responses", {}).items():
                if int(code) >= 400:
                    assert response["content"] == {
                        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, (method, path, code)
    answer = await client.get("/tasks", params={"limit": "many"})
    assert answer.status_code in (400, 422)
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_each_operation_id_reads_as_a_method_name(openapi):
    ids = {
        (method.upper(), path): operation["operationId"]
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    }
    assert all(re.fullmatch(r"[a-z]+(?:_[a-z]+)*", name) for name in ids.values()), ids
    assert len(set(ids.values())) == len(ids)
    assert ids[("POST", "/leads")] == "create_lead"
    assert ids[("GET", "/leads/{lead_id}")] == "get_lead"
    assert ids[("POST", "/tasks")] == "submit_task"
    assert ids[("POST", "/tasks/{task_id}/retry")] == "retry_task"
