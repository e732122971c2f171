"""What a PUT wrote survives the API being stopped, or killed outright, and started again."""

from __future__ import annotations

import signal

import httpx
import pytest

from tests.factories import lead_body
from tests.helpers import bearer


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
async def test_put_survives_an_api_restart(start_api, api_key, stop_signal):
    api = await start_api(workers=2)

    async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(api_key)) as client:
        created = await client.post("/leads", json=lead_body())
        assert created.status_code == 201
        url = created.headers["location"]
        replacement = lead_body(email=created.json()["email"], company="Survivor Inc", score=99)
        put = await client.put(url, json=replacement, headers={"If-Match": created.headers["etag"]})
        assert put.status_code == 200

    api.stop(stop_signal)
    api.start()
    await api.wait_ready()

    async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(api_key)) as client:
        read = await client.get(url)
    assert read.status_code == 200
    assert read.headers["etag"] == '"2"'
    stored = read.json()
    for field, value in replacement.items():
        assert stored[field] == value, field
    assert api.stop() == 0  # the restarted API stops cleanly, whichever way the first one ended
