"""A Granian API worker killed with SIGKILL is replaced, and the service keeps answering."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx

from load.service import children_of


async def test_a_killed_api_worker_is_replaced_while_others_answer(start_api):
    api = await start_api(workers=2)
    assert api.process is not None
    workers = children_of(api.process.pid)
    assert len(workers) >= 2
    await asyncio.sleep(6)  # Granian treats a crash within 5.5 s of a spawn as a crash loop

    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    statuses = []
    async with httpx.AsyncClient(base_url=api.base_url, timeout=5) as client:
        for _ in range(50):
            statuses.append((await client.get("/health")).status_code)
            await asyncio.sleep(0.1)
        replaced = children_of(api.process.pid)

    assert statuses == [200] * 50
    assert victim not in replaced
    assert len(replaced - workers) >= 1
    api.assert_running()
