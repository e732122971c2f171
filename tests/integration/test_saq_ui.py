"""The SAQ web UI at /saq: served by the API to admin keys only."""

from __future__ import annotations

import base64

import pytest

from orchestrator.auth.keys import issue_key
from orchestrator.auth.models import Scope
from tests.helpers import bearer


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


@pytest.fixture(scope="module")
async def write_key(settings):
    return await issue_key(settings, "saq-ui-writer", Scope.WRITE)


@pytest.mark.parametrize("path", ["/saq", "/saq/api/queues"])
async def test_ui_without_credentials_is_401_problem_with_a_basic_challenge(client, path):
    response = await client.get(path, headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_ui_with_a_wrong_key_is_401(client):
    assert (await client.get("/saq/api/queues", headers=basic("orch_nope"))).status_code == 401
    assert (await client.get("/saq/api/queues", headers=bearer("orch_nope"))).status_code == 401


async def test_ui_is_403_for_a_key_without_the_admin_scope(client, write_key):
    assert (await client.get("/saq/api/queues", headers=bearer(write_key))).status_code == 403
    assert (await client.get("/saq", headers=basic(write_key))).status_code == 403


async def test_ui_and_its_api_answer_an_admin_key_as_basic_password_or_bearer(client, api_key, settings):
    page = await client.get("/saq", headers=basic(api_key))
    assert page.status_code == 200
    assert "<title>SAQ</title>" in page.text
    queues = (await client.get("/saq/api/queues", headers=bearer(api_key))).json()
    assert [queue["name"] for queue in queues["queues"]] == [settings.queue_name]


async def test_job_actions_need_an_admin_key(client, write_key, settings):
    url = f"/saq/api/queues/{settings.queue_name}/jobs/some-job/retry"
    assert (await client.post(url, headers={"Authorization": ""})).status_code == 401
    assert (await client.post(url, headers=bearer(write_key))).status_code == 403


async def test_the_ui_static_files_need_no_key(client):
    assert (await client.get("/saq/static/app.js", headers={"Authorization": ""})).status_code == 200
