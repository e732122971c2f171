"""A write key cannot mail anyone it likes: email_send mails its lead, and a free `to` only at a
domain the settings allow (EMAIL_ALLOWED_DOMAINS; the tests allow example.com)."""

from __future__ import annotations

import re

import pytest
from litestar.testing import AsyncTestClient

from orchestrator.app import create_app
from tests.factories import lead_body
from tests.helpers import bearer

ATTACK = {"to": "victim@evil-example.org", "subject": "Your invoice", "html": "<a href='https://x'>pay</a>"}


def recipient_schema(openapi: dict) -> dict:
    payload = openapi["components"]["schemas"]["TaskCreate.email_send"]["properties"]["payload"]
    address, null = payload["properties"]["to"]["anyOf"]
    assert null == {"type": "null"}
    return address


async def test_the_review_attack_any_subject_and_html_to_anyone_is_422(client):
    response = await client.post("/tasks", json={"type": "email_send", "payload": ATTACK})
    assert response.status_code == 422
    assert response.json()["field"] == "payload"
    assert "EMAIL_ALLOWED_DOMAINS" in response.json()["detail"]
    batch = {"tasks": [{"type": "email_send", "payload": ATTACK}] * 500}
    assert (await client.post("/tasks/batch", json=batch)).status_code == 422
    assert (await client.get("/tasks")).json()["items"] == []


async def test_a_lead_with_an_outside_to_is_refused_too(client):
    lead = (await client.post("/leads", json=lead_body())).json()
    payload = ATTACK | {"lead_id": lead["id"]}
    response = await client.post(
        "/tasks", json={"type": "email_send", "payload": payload, "lead_id": lead["id"]}
    )
    assert response.status_code == 422


@pytest.mark.parametrize("to", ["someone@example.com", "Someone@EXAMPLE.com"])
async def test_an_allowed_domain_is_taken_in_any_case(client, to):
    payload = {"to": to, "subject": "Hi", "text": "x"}
    assert (await client.post("/tasks", json={"type": "email_send", "payload": payload})).status_code == 202


@pytest.mark.parametrize(
    "to",
    [
        "a@sub.example.com",
        "a@example.com.evil.org",
        "a@notexample.com",
        # Source routing, which some mail servers of an allowed domain still follow elsewhere.
        "victim%evil-example.org@example.com",
        "evil-example.org!victim@example.com",
    ],
)
async def test_only_the_domain_itself_is_allowed(client, to):
    payload = {"to": to, "subject": "Hi", "text": "x"}
    assert (await client.post("/tasks", json={"type": "email_send", "payload": payload})).status_code == 422


async def test_without_an_allowlist_only_the_lead_is_mailed_and_the_schema_says_so(settings, api_key):
    closed = settings.model_copy(update={"email_allowed_domains": []})
    async with AsyncTestClient(app=create_app(closed)) as client:
        client.headers.update(bearer(api_key))
        payload = {"to": "someone@example.com", "subject": "Hi", "text": "x"}
        response = await client.post("/tasks", json={"type": "email_send", "payload": payload})
        schema = (await client.get("/schema/openapi.json")).json()
    assert response.status_code == 422
    assert recipient_schema(schema).get("not") == {}


async def test_the_schema_states_the_allowed_domains(client):
    schema = (await client.get("/schema/openapi.json")).json()
    to = recipient_schema(schema)
    assert re.match(to["pattern"], "Someone@Example.com")
    assert not re.match(to["pattern"], "someone@evil-example.org")
