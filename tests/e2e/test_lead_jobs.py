"""lead_process against the database, through real workers."""

from __future__ import annotations

import random
import uuid

import pytest

from tests.helpers import submit, wait_for

pytestmark = pytest.mark.usefixtures("workers")


def unique_email(name: str = "ada") -> str:
    return f"{name}.{uuid.uuid4().hex[:8]}@Example.COM"


async def process(api, lead_id: str) -> dict:
    task = await wait_for(api, await submit(api, "lead_process", {"lead_id": lead_id}, lead_id=lead_id))
    assert task["status"] == "COMPLETED", task["error"]
    return task["result"]


async def test_lead_process_normalises_scores_and_writes_back(api):
    # A number no other test's lead has: a shared one would make this lead a duplicate.
    line = random.randrange(2000, 10_000)
    body = {
        "first_name": "  Ada ",
        "last_name": "Lovelace",
        "email": unique_email(),
        "phone": f"(415) 555-{line}",
        "company": "Analytical Engines",
        "source": "referral",
    }
    lead = (await api.post("/leads", json=body)).json()
    result = await process(api, lead["id"])
    stored = (await api.get(f"/leads/{lead['id']}")).json()
    assert stored["first_name"] == "Ada"
    assert stored["email"] == body["email"].lower()
    assert stored["phone"] == f"+1415555{line}"
    assert stored["score"] == result["score"] == 25 + 20 + 15 + 10 + 20
    assert stored["attributes"]["email_valid"] is True
    assert stored["attributes"]["duplicate_of"] is None
    assert stored["version"] == lead["version"] + 1


async def test_lead_process_twice_changes_nothing_the_second_time(api):
    lead = (await api.post("/leads", json={"email": unique_email(), "phone": "555-5678"})).json()
    first = await process(api, lead["id"])
    after_first = (await api.get(f"/leads/{lead['id']}")).json()
    second = await process(api, lead["id"])
    after_second = (await api.get(f"/leads/{lead['id']}")).json()
    assert first["changed"]
    assert second["changed"] == []
    assert after_second["version"] == after_first["version"]
    assert after_second["phone"] == "555-5678"  # does not parse: kept as sent


async def test_lead_process_marks_a_duplicate_by_phone_and_points_to_the_original(api):
    original = (
        await api.post("/leads", json={"email": unique_email("a"), "phone": "+1 415 555 0199"})
    ).json()
    await process(api, original["id"])
    copy = (await api.post("/leads", json={"email": unique_email("b"), "phone": "415-555-0199"})).json()
    result = await process(api, copy["id"])
    assert result["duplicate_of"] == original["id"]
    stored = (await api.get(f"/leads/{copy['id']}")).json()
    assert stored["attributes"]["duplicate_of"] == original["id"]


async def test_lead_process_of_an_unknown_lead_fails_at_once(api):
    task = await wait_for(api, await submit(api, "lead_process", {"lead_id": str(uuid.uuid4())}))
    assert task["status"] == "FAILED"
    assert task["attempts"] == 1


async def test_bad_lead_process_payload_is_422_naming_the_field(api):
    response = await api.post("/tasks", json={"type": "lead_process", "payload": {"lead": "x"}})
    assert response.status_code == 422
    assert {"payload.lead_id", "payload.lead"} <= {error["field"] for error in response.json()["errors"]}
