"""Writes racing on one lead through real API workers: an unconditional PUT waits for the one
ahead of it and lands after it (found by the API benchmark: the ORM's version check turned the
loser of a race into a 412 for a request that had set no precondition)."""

from __future__ import annotations

import asyncio

import httpx

from tests.factories import lead_body
from tests.helpers import bearer

RACERS = 8


async def _race(api_key: str, start_api, write: str, bodies) -> list[dict]:
    """Ten leads, each written by RACERS concurrent requests (bodies(lead) gives theirs) through
    two API workers; every answer must be 200. The leads as they end up."""
    api = await start_api(workers=2)
    limits = httpx.Limits(max_connections=RACERS)
    ended = []
    async with httpx.AsyncClient(
        base_url=api.base_url, headers=bearer(api_key), limits=limits, timeout=30
    ) as client:
        for _ in range(10):
            lead = (await client.post("/leads", json=lead_body(attributes={}))).json()
            url = f"/leads/{lead['id']}"
            send = getattr(client, write)
            answers = await asyncio.gather(*(send(url, json=body) for body in bodies(lead)))
            assert [answer.status_code for answer in answers] == [200] * RACERS, [a.text for a in answers]
            ended.append((await client.get(url)).json())
    return ended


async def test_puts_without_if_match_racing_on_one_lead_all_land(start_api, api_key):
    def bodies(lead):
        return [lead_body(email=lead["email"], company=f"Racer {n}") for n in range(RACERS)]

    for lead in await _race(api_key, start_api, "put", bodies):
        assert lead["version"] == 1 + RACERS


async def test_patches_without_if_match_racing_on_one_lead_all_land_and_all_merge(start_api, api_key):
    """Each PATCH merges into the lead as the one before it left it: every racer's attribute
    is there at the end."""

    def bodies(_lead):
        return [{"attributes": {f"racer{n}": n}} for n in range(RACERS)]

    for lead in await _race(api_key, start_api, "patch", bodies):
        assert lead["version"] == 1 + RACERS
        assert lead["attributes"] == {f"racer{n}": n for n in range(RACERS)}
