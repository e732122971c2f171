"""A workflow whose steps are recorded by workers with different clocks keeps its steps in order."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import TYPE_CHECKING

from load.service import Service
from tests.helpers import clock_off_by, settings_env, submit, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from orchestrator.settings import Settings


def worker(settings: Settings, log: Path, **extra_env: str) -> Service:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= settings_env(settings) | {"PYTHONUNBUFFERED": "1", "SHUTDOWN_GRACE_S": "1"} | extra_env
    return Service(["worker", "--processes", "1", "--concurrency", "4"], env, log)


async def test_a_step_recorded_by_a_worker_whose_clock_is_behind_still_comes_second(api, settings, tmp_path):
    ahead = worker(settings, tmp_path / "ahead.log", **clock_off_by(+30))
    behind = worker(settings, tmp_path / "right.log")
    try:
        ahead.start()
        steps = [
            {"type": "noop", "payload": {"sleep_s": 5, "echo": {"step": 1}}},
            {"type": "noop", "payload": {"echo": {"after": "${steps.1.echo.step}", "step": 2}}},
            {"type": "noop", "payload": {"echo": {"after": "${steps.2.echo.step}", "step": 3}}},
        ]
        workflow = await submit(api, "workflow_execute", {"steps": steps})
        # Step 1 is recorded by the worker 30 s ahead and is running there; that worker stops
        # (handing step 1 back) and one with the right clock records the later steps.
        async with asyncio.timeout(60):
            while not (children := (await api.get(f"/tasks/{workflow}")).json()["children"]):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        await wait_for(api, children[0]["id"], {"PROCESSING"})
        assert ahead.stop(signal.SIGTERM, timeout_s=20) == 0
        behind.start()
        done = await wait_for(api, workflow, timeout_s=60)
        assert done["status"] == "COMPLETED", done["error"]
        echoes = [step["result"]["echo"] for step in done["result"]["steps"]]
        assert echoes == [{"step": 1}, {"after": 1, "step": 2}, {"after": 2, "step": 3}]
    finally:
        ahead.kill_leftovers()
        behind.kill_leftovers()
