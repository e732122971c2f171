"""Schedules fired by three real worker processes: exactly one task per tick, none missed."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from load.service import Service
from tests.helpers import settings_env
from tests.scheduled_jobs.ticking import DECLARED

if TYPE_CHECKING:
    import datetime as dt
    from pathlib import Path

# A minute of a seconds-schedule in `make test`; longer on demand.
RUN_S = float(os.environ.get("SCHEDULE_RUN_S", "60"))

TICKS = text(
    """
    SELECT s.name, t.scheduled_for, count(*) AS tasks, count(*) FILTER (WHERE t.status = 'COMPLETED') AS done
    FROM tasks AS t JOIN schedules AS s ON s.id = t.schedule_id
    GROUP BY s.name, t.scheduled_for ORDER BY s.name, t.scheduled_for
    """
)


@pytest.fixture
async def engine(settings):
    made = create_async_engine(settings.sqlalchemy_url)
    yield made
    await made.dispose()


def three_workers(settings, log: Path) -> Service:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= settings_env(settings) | {
        "PYTHONUNBUFFERED": "1",
        "JOB_PACKAGES": json.dumps([*settings.job_packages, "tests.scheduled_jobs"]),
        "SHUTDOWN_GRACE_S": "2",
    }
    return Service(["worker", "--processes", "3", "--concurrency", "8"], env, log)


def consecutive(ticks: list[dt.datetime], step_s: int) -> bool:
    return all((b - a).total_seconds() == step_s for a, b in itertools.pairwise(ticks))


@pytest.mark.timeout(300)
async def test_three_worker_processes_make_one_task_per_tick(api, settings, engine, tmp_path):
    made = await api.post(
        "/schedules", json={"name": "every-second", "type": "noop", "cron": "* * * * * *", "payload": {}}
    )
    assert made.status_code == 201, made.text
    workers = three_workers(settings, tmp_path / "workers.log")
    workers.start()
    try:
        await asyncio.sleep(RUN_S)
        workers.assert_running()
        paused = await api.patch(f"/schedules/{made.json()['id']}", json={"enabled": False})
        assert paused.status_code == 200, paused.text
        declared = (await api.get("/schedules", params={"type": "ticking"})).json()["items"]
        assert [schedule["name"] for schedule in declared] == [DECLARED]
        assert declared[0]["declared_by"] == "ticking"
        await api.patch(f"/schedules/{declared[0]['id']}", json={"enabled": False})
        async with asyncio.timeout(60):
            while True:
                async with engine.begin() as db:
                    rows = (await db.execute(TICKS)).all()
                if rows and all(row.done == row.tasks for row in rows):
                    break
                await asyncio.sleep(0.5)
    finally:
        workers.stop()

    by_name: dict[str, list[dt.datetime]] = {}
    for row in rows:
        assert row.tasks == 1, f"{row.name} at {row.scheduled_for}: {row.tasks} tasks"
        by_name.setdefault(row.name, []).append(row.scheduled_for)
    seconds = by_name["every-second"]
    # Every tick from the first to the last, once: none twice, none skipped.
    assert consecutive(seconds, 1), seconds
    # The processes take a few seconds to start (more on a loaded machine).
    assert len(seconds) >= RUN_S - 30, len(seconds)
    assert consecutive(by_name[DECLARED], 5), by_name[DECLARED]
    assert len(by_name[DECLARED]) >= (RUN_S - 30) // 5
