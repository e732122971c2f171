"""Hosts whose clocks are off (libfaketime): PostgreSQL's clock decides, never theirs."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import uuid

import httpx

from tests.helpers import bearer, clock_off_by, one_worker, submit, wait_for


async def test_a_step_recorded_by_a_worker_whose_clock_is_behind_still_comes_second(api, settings, tmp_path):
    ahead = one_worker(settings, tmp_path / "ahead.log", **clock_off_by(+30))
    behind = one_worker(settings, tmp_path / "right.log")
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


async def test_an_immediate_task_runs_at_once_when_the_api_and_worker_clocks_are_behind(
    start_api, api_key, settings, tmp_path
):
    """Hosts 10 s behind the database: a task due now is due now, not when their clocks say so."""
    # Reconciler rounds far apart: it would deliver the task after a round, hiding the delay.
    slow = one_worker(settings, tmp_path / "behind.log", RECONCILE_INTERVAL_S="30", **clock_off_by(-10))
    try:
        slow.start()
        api = await start_api(workers=1, **clock_off_by(-10))
        async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(api_key), timeout=30) as client:
            await wait_for(client, await submit(client, "noop"), timeout_s=60)  # the worker is up
            task = await wait_for(client, await submit(client, "noop"), timeout_s=60)
        assert task["status"] == "COMPLETED"
        waited = dt.datetime.fromisoformat(task["started_at"]) - dt.datetime.fromisoformat(task["created_at"])
        assert waited < dt.timedelta(seconds=5), f"an immediate task waited {waited} for the hosts' clocks"
    finally:
        slow.kill_leftovers()


async def test_a_scheduled_task_delivered_early_by_a_worker_ahead_waits_and_runs_on_time(
    api, settings, tmp_path
):
    """SAQ's scheduler runs by the clock of the worker that polls it: 10 s ahead, it hands the
    task over 10 s early. The task still starts when PostgreSQL says it is due, not a
    reconciler round later."""
    hasty = one_worker(settings, tmp_path / "ahead.log", RECONCILE_INTERVAL_S="30", **clock_off_by(+10))
    try:
        hasty.start()
        await wait_for(api, await submit(api, "noop"), timeout_s=60)  # the worker is up
        run_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
        task = await wait_for(api, await submit(api, "noop", run_at=run_at.isoformat()), timeout_s=60)
        assert task["status"] == "COMPLETED"
        late = dt.datetime.fromisoformat(task["started_at"]) - dt.datetime.fromisoformat(task["run_at"])
        assert dt.timedelta(0) <= late < dt.timedelta(seconds=5), f"started {late} after it was due"
    finally:
        hasty.kill_leftovers()


async def test_a_lead_written_by_an_api_whose_clock_is_ahead_is_timestamped_by_the_database(
    start_api, api_key, settings
):
    """created_at and updated_at come from PostgreSQL's clock, on every write: an API host an
    hour ahead must not date a PUT an hour into the future (nor order it after later writes)."""
    api = await start_api(workers=1, **clock_off_by(+3600))
    async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(api_key), timeout=30) as client:
        created = await client.post("/leads", json={"email": f"clock-{uuid.uuid4().hex}@example.com"})
        assert created.status_code == 201, created.text
        lead = created.json()
        for write in (client.put, client.patch):
            answer = await write(f"/leads/{lead['id']}", json={"email": lead["email"], "company": "Clocks"})
            assert answer.status_code == 200, answer.text
            written = answer.json()
            now = dt.datetime.now(dt.UTC)
            for stamp in ("created_at", "updated_at"):
                off = abs(dt.datetime.fromisoformat(written[stamp]) - now)
                assert off < dt.timedelta(minutes=5), f"{write.__name__}: {stamp} is {off} off"
