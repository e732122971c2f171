"""The SAQ web UI at /saq: served by the API, closed without the token."""

from __future__ import annotations

import base64

import pytest
from litestar.testing import AsyncTestClient
from pydantic import SecretStr

from orchestrator.app import create_app
from orchestrator.saq_ui import presented_secret


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


@pytest.fixture
async def ui(settings):
    async with AsyncTestClient(
        app=create_app(settings.model_copy(update={"saq_ui_token": SecretStr("s3cret")}))
    ) as c:
        yield c


@pytest.mark.parametrize("path", ["/saq", "/saq/api/queues"])
async def test_ui_without_credentials_is_401_problem_with_a_challenge(ui, path):
    response = await ui.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_ui_with_a_wrong_token_is_401(ui):
    assert (await ui.get("/saq/api/queues", headers=basic("nope"))).status_code == 401
    assert (await ui.get("/saq/api/queues", headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_ui_and_its_api_answer_with_the_token(ui, settings):
    page = await ui.get("/saq", headers=basic("s3cret"))
    assert page.status_code == 200
    assert "<title>SAQ</title>" in page.text
    queues = (await ui.get("/saq/api/queues", headers={"Authorization": "Bearer s3cret"})).json()
    assert [queue["name"] for queue in queues["queues"]] == [settings.queue_name]


async def test_job_actions_need_the_token_too(ui, settings):
    url = f"/saq/api/queues/{settings.queue_name}/jobs/some-job/retry"
    assert (await ui.post(url)).status_code == 401


async def test_ui_is_closed_when_no_token_is_configured(client):
    response = await client.get("/saq/api/queues", headers=basic(""))
    assert response.status_code == 401
    assert "SAQ_UI_TOKEN" in response.json()["detail"]


@pytest.mark.parametrize(
    ("header", "secret"),
    [
        ("Bearer abc", "abc"),
        ("Basic " + base64.b64encode(b"u:p:q").decode(), "p:q"),
        ("Basic !!!", None),
        ("Digest x", None),
        (None, None),
    ],
)
def test_presented_secret(header, secret):
    assert presented_secret(header) == secret
