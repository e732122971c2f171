"""Writes racing on one lead through real API workers: an unconditional PUT waits for the one
ahead of it and lands after it (found by the API benchmark: the ORM's version check turned the
loser of a race into a 412 for a request that had set no precondition)."""

from __future__ import annotations

import asyncio

import httpx

from tests.factories import lead_body
from tests.helpers import bearer

RACERS = 8


async def test_puts_without_if_match_racing_on_one_lead_all_land(start_api, api_key):
    api = await start_api(workers=2)
    limits = httpx.Limits(max_connections=RACERS)
    async with httpx.AsyncClient(
        base_url=api.base_url, headers=bearer(api_key), limits=limits, timeout=30
    ) as client:
        for _ in range(10):
            lead = (await client.post("/leads", json=lead_body())).json()
            url = f"/leads/{lead['id']}"
            bodies = [lead_body(email=lead["email"], company=f"Racer {n}") for n in range(RACERS)]
            answers = await asyncio.gather(*(client.put(url, json=body) for body in bodies))
            assert [answer.status_code for answer in answers] == [200] * RACERS, [a.text for a in answers]
            assert (await client.get(url)).json()["version"] == 1 + RACERS


async def test_patches_without_if_match_racing_on_one_lead_all_land_and_all_merge(start_api, api_key):
    """Each PATCH merges into the lead as the one before it left it: every racer's attribute
    is there at the end."""
    api = await start_api(workers=2)
    limits = httpx.Limits(max_connections=RACERS)
    async with httpx.AsyncClient(
        base_url=api.base_url, headers=bearer(api_key), limits=limits, timeout=30
    ) as client:
        for _ in range(10):
            lead = (await client.post("/leads", json=lead_body(attributes={}))).json()
            url = f"/leads/{lead['id']}"
            patches = [{"attributes": {f"racer{n}": n}} for n in range(RACERS)]
            answers = await asyncio.gather(*(client.patch(url, json=patch) for patch in patches))
            assert [answer.status_code for answer in answers] == [200] * RACERS, [a.text for a in answers]
            stored = (await client.get(url)).json()
            assert stored["version"] == 1 + RACERS
            assert stored["attributes"] == {f"racer{n}": n for n in range(RACERS)}
