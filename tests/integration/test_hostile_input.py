"""Hostile input gets a clear 4xx or an empty answer: never a 500, never another row."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.factories import lead_body

# r"\x00" is the four characters; the byte itself, and every control character: test_control_characters.py
INJECTIONS = ["' OR 1=1 --", "%' OR '1'='1", "x'; DROP TABLE leads; --", "x\r\nSet-Cookie: hijack=1", r"\x00"]


async def test_json_nested_deeper_than_the_decoder_allows_is_400_naming_the_limit(client):
    depth = 5000
    body = '{"email": "deep@example.com", "attributes": ' + '{"a": ' * depth + "1" + "}" * depth + "}"

    response = await client.post("/leads", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "nested too deeply" in response.json()["detail"]
    assert (await client.get("/leads")).json()["items"] == []


@pytest.mark.parametrize("attack", INJECTIONS)
async def test_injection_in_lead_filters_finds_nothing_and_breaks_nothing(client, attack):
    kept = (await client.post("/leads", json=lead_body(company="Acme", source="web"))).json()

    response = await client.get("/leads", params={"email": attack, "company": attack, "source": attack})

    assert response.status_code == 200
    assert response.json()["items"] == []
    assert "hijack" not in str(response.headers)
    assert (await client.get(f"/leads/{kept['id']}")).status_code == 200


@pytest.mark.parametrize("attack", INJECTIONS)
async def test_injection_in_task_filters_and_paths_is_4xx_or_empty(client, attack):
    tasks = await client.get("/tasks", params={"type": attack})
    assert tasks.status_code == 200
    assert tasks.json()["items"] == []
    assert (await client.get("/tasks", params={"status": attack})).status_code == 422
    assert (await client.get("/leads", params={"cursor": attack})).status_code in {400, 422}
    segment = quote(attack, safe="")
    for path in (f"/leads/{segment}", f"/tasks/{segment}", f"/leads/{segment}/tasks"):
        assert (await client.get(path)).status_code == 404
