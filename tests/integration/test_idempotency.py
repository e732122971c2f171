"""Idempotency-Key on POST /leads and POST /tasks: durable in PostgreSQL, per body."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.factories import lead_body


@pytest.mark.parametrize(
    ("path", "make_body"),
    [("/leads", lambda: lead_body()), ("/tasks", lambda: {"type": "noop", "payload": {"echo": {"n": 1}}})],
)
async def test_same_key_and_body_returns_the_first_response_and_creates_nothing(client, path, make_body):
    body, key = make_body(), uuid.uuid4().hex
    first = await client.post(path, json=body, headers={"Idempotency-Key": key})
    again = await client.post(path, json=body, headers={"Idempotency-Key": key})
    assert again.status_code == first.status_code
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    listed = (await client.get(path)).json()["items"]
    assert [item["id"] for item in listed if item["id"] == first.json()["id"]] == [first.json()["id"]]
    if path == "/tasks":
        assert len((await client.get("/tasks", params={"type": "noop"})).json()["items"]) == 1


async def test_same_key_with_another_body_is_422(client):
    key = uuid.uuid4().hex
    await client.post("/leads", json=lead_body(), headers={"Idempotency-Key": key})
    other = await client.post("/leads", json=lead_body(), headers={"Idempotency-Key": key})
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]
    assert len((await client.get("/leads")).json()["items"]) == 1


async def test_concurrent_retries_with_one_key_create_one_lead(client):
    body, key = lead_body(), uuid.uuid4().hex
    responses = await asyncio.gather(
        *(client.post("/leads", json=body, headers={"Idempotency-Key": key}) for _ in range(5))
    )
    assert {response.status_code for response in responses} == {201}
    assert len({response.json()["id"] for response in responses}) == 1
    assert len((await client.get("/leads")).json()["items"]) == 1


async def test_a_key_is_scoped_to_its_endpoint(client):
    key = uuid.uuid4().hex
    lead = await client.post("/leads", json=lead_body(), headers={"Idempotency-Key": key})
    task = await client.post("/tasks", json={"type": "noop"}, headers={"Idempotency-Key": key})
    assert (lead.status_code, task.status_code) == (201, 202)


async def test_a_failed_request_does_not_burn_its_key(client):
    key, body = uuid.uuid4().hex, lead_body()
    await client.post("/leads", json=lead_body(email=body["email"]))
    refused = await client.post("/leads", json=body, headers={"Idempotency-Key": key})
    assert refused.status_code == 409
    await client.delete(f"/leads/{(await client.get('/leads')).json()['items'][0]['id']}")
    accepted = await client.post("/leads", json=body, headers={"Idempotency-Key": key})
    assert accepted.status_code == 201


async def test_an_over_long_key_is_a_4xx_naming_the_header(client):
    response = await client.post("/leads", json=lead_body(), headers={"Idempotency-Key": "k" * 201})
    assert response.status_code in (400, 422)
    assert "idempotency-key" in response.text.lower()
