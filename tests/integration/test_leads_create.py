"""POST /leads and GET /leads/{id}."""

from __future__ import annotations

import uuid

import pytest

from tests.factories import lead_body

PROBLEM = "application/problem+json"


async def test_create_returns_201_location_etag_and_stores_every_field(client):
    body = lead_body(first_name="Ada", last_name="Lovelace", company="Analytical", source="web", score=42)
    created = await client.post("/leads", json=body)
    assert created.status_code == 201
    lead = created.json()
    assert created.headers["location"] == f"/leads/{lead['id']}"
    assert created.headers["etag"] == '"1"'
    for field, value in body.items():
        assert lead[field] == value, field
    assert lead["version"] == 1

    read = await client.get(created.headers["location"])
    assert read.status_code == 200
    assert read.json() == lead
    assert read.headers["etag"] == '"1"'


async def test_real_world_phone_is_stored_as_sent(client):
    created = await client.post("/leads", json=lead_body(phone="555-5678"))
    assert created.json()["phone"] == "555-5678"


async def test_defaults_for_a_minimal_lead(client):
    created = await client.post("/leads", json={"email": "min@example.com"})
    assert created.status_code == 201
    lead = created.json()
    assert lead["status"] == "new"
    assert lead["attributes"] == {}
    assert lead["first_name"] is None


async def test_duplicate_email_is_409_whatever_its_case(client):
    await client.post("/leads", json=lead_body(email="dup@example.com"))
    again = await client.post("/leads", json=lead_body(email="DUP@Example.com"))
    assert again.status_code == 409
    assert again.headers["content-type"].startswith(PROBLEM)
    assert again.json()["field"] == "email"
    listed = await client.get("/leads")
    assert len(listed.json()["items"]) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("score", "high"),
        ("score", 101),
        ("first_name", "x" * 201),
        ("phone", "1" * 51),
        ("status", "maybe"),
        ("attributes", ["not", "an", "object"]),
        ("unknown_field", 1),
    ],
)
async def test_bad_field_is_422_naming_the_field(client, field, value):
    response = await client.post("/leads", json=lead_body() | {field: value})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["status"] == 422
    assert field in problem["detail"]
    assert any(error["field"] == field for error in problem["errors"])


async def test_lead_without_email_or_phone_is_422(client):
    response = await client.post("/leads", json={"first_name": "Nobody"})
    assert response.status_code == 422
    assert "email or a phone" in response.json()["detail"]


async def test_malformed_json_is_400_problem(client):
    response = await client.post("/leads", content=b"{bad", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_unknown_lead_is_404_problem(client):
    response = await client.get(f"/leads/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_lead_id_that_is_not_a_uuid_is_a_4xx_problem(client):
    response = await client.get("/leads/1%20OR%201=1")
    assert response.status_code in (404, 422)
    assert response.headers["content-type"].startswith(PROBLEM)
