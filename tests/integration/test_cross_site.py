"""A page on another site cannot act with the credentials a browser keeps: Basic is for /saq only,
JSON endpoints take JSON only, and a POST to /saq from another origin is refused."""

from __future__ import annotations

import base64
import uuid

import pytest

from tests.factories import lead_body
from tests.helpers import bearer


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"any:{key}".encode()).decode()}


async def _tasks(client, api_key) -> int:
    return len((await client.get("/tasks", headers=bearer(api_key))).json()["items"])


async def test_the_review_forgery_a_text_plain_post_with_basic_stores_nothing(client, api_key):
    # What a form or fetch(mode: no-cors) on another site sends with a browser's saved login.
    response = await client.post(
        "/tasks",
        content=b'{"type": "noop"}',
        headers=basic(api_key) | {"Content-Type": "text/plain"},
    )
    assert response.status_code in (401, 415), response.text
    assert await _tasks(client, api_key) == 0


@pytest.mark.parametrize(("method", "path"), [("GET", "/leads"), ("POST", "/tasks"), ("GET", "/jobs")])
async def test_basic_is_refused_outside_saq_saying_so(client, api_key, method, path):
    response = await client.request(method, path, json={"type": "noop"}, headers=basic(api_key))
    assert response.status_code == 401
    assert "/saq" in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonp",
        None,
    ],
)
async def test_json_endpoints_answer_415_to_anything_but_json(client, api_key, content_type):
    headers = bearer(api_key) | ({"Content-Type": content_type} if content_type else {})
    lead = (await client.post("/leads", json=lead_body(), headers=bearer(api_key))).json()
    for method, path in (("POST", "/tasks"), ("POST", "/leads"), ("PUT", f"/leads/{lead['id']}")):
        response = await client.request(method, path, content=b'{"type": "noop"}', headers=headers)
        assert response.status_code == 415, (method, path, response.text)
        assert "application/json" in response.json()["detail"]
    assert await _tasks(client, api_key) == 1  # the lead's own crm_update


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"]
)
async def test_json_is_taken_with_its_parameters_and_as_a_merge_patch(client, api_key, content_type):
    headers = bearer(api_key) | {"Content-Type": content_type}
    response = await client.post("/tasks", content=b'{"type": "noop"}', headers=headers)
    assert response.status_code == 202, response.text


async def test_a_post_without_a_body_needs_no_content_type(client, api_key):
    task = (await client.post("/tasks", json={"type": "noop", "run_at": "2999-01-01T00:00:00Z"})).json()
    assert (await client.post(f"/tasks/{task['id']}/cancel", headers=bearer(api_key))).status_code == 200


@pytest.mark.parametrize(
    "browser",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://ops.evil.example"},
    ],
)
async def test_a_saq_post_from_another_site_is_refused(client, api_key, settings, browser):
    url = f"/saq/api/queues/{settings.queue_name}/jobs/{uuid.uuid4()}/retry"
    response = await client.post(url, headers=basic(api_key) | browser)
    assert response.status_code == 403
    assert "another site" in response.json()["detail"]


@pytest.mark.parametrize(
    "browser",
    [{"Origin": "http://testserver.local"}, {"Sec-Fetch-Site": "same-origin"}, {}],
)
async def test_a_saq_post_from_its_own_page_or_a_script_goes_through(client, api_key, settings, browser):
    url = f"/saq/api/queues/{settings.queue_name}/jobs/{uuid.uuid4()}/retry"
    response = await client.post(url, headers=basic(api_key) | browser)
    assert response.status_code != 403, response.text
    assert response.status_code < 500


async def test_the_schema_says_which_operations_answer_415(client):
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    with_body = {
        (path, method) for path, item in paths.items() for method, op in item.items() if "requestBody" in op
    }
    assert len(with_body) >= 5
    assert all("415" in paths[path][method]["responses"] for path, method in with_body)
