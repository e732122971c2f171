"""A short run of the Locust suite, plain and with faults: no acknowledged write or task is lost.

Speed is not asserted here (the p99 bound is set out of reach); load/ and the README report it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from typing import TYPE_CHECKING, Any

import pytest

from load.databases import create_database, drop_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from orchestrator.settings import Settings


@pytest.fixture
async def load_env(
    environment_settings: Settings, server_urls: tuple[str, str]
) -> AsyncIterator[dict[str, str]]:
    """The servers the session uses when they are configured (in a database of the run's own);
    with none configured the runner starts embedded ones, as on a fresh machine."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    if environment_settings.database_url is None:
        yield env
        return
    admin_url, redis_url = server_urls
    database_url = await create_database(admin_url, "orchestrator_load")
    yield env | {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
    await drop_database(admin_url, database_url)


async def run_load(env: dict[str, str], out: Path, *args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "load", "--users", "20", "--spawn-rate", "10", "--think-time", "0:0.1",
        "--max-p99-ms", "60000",
        "--out", str(out), *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=280)
    assert process.returncode == 0, output.decode()
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


@pytest.mark.timeout(300)
async def test_plain_run_passes_every_request_and_loses_nothing(
    load_env: dict[str, str], tmp_path: Path
) -> None:
    summary = await run_load(load_env, tmp_path, "--duration", "20s")

    assert summary["http"]["requests"] > 200
    assert summary["http"]["failures"] == 0
    checked = summary["verification"]
    assert checked["acknowledged_writes"] > 20
    assert checked["tasks_accepted"] > 10
    assert checked["tasks_terminal"] == checked["tasks_in_run"]
    # The receivers were there and counted (the verifier holds each completed task to its effect).
    assert checked["crm_pushes_received"] > 0
    assert checked["emails_received"] > 0
    assert checked["ok"]
    assert (tmp_path / "report.html").exists()
    assert (tmp_path / "locust_stats.csv").exists()
    # Each kind of worker process was found and sampled (a leak shows in its growth).
    memory = summary["run"]["memory"]
    assert set(memory) == {"API worker", "job worker"}, memory
    assert all(20 < kind["end_mib"] < 2048 for kind in memory.values()), memory
    # The service's Prometheus endpoint, scraped as Locust stopped: what the run did is counted.
    scraped = (tmp_path / "metrics.txt").read_text()
    counted = [line for line in scraped.splitlines() if re.search(r"\} [1-9]", line)]
    assert any("orchestrator_tasks_total{" in line and 'event="completed"' in line for line in counted)
    requests = "orchestrator_http_request_duration_seconds_count{"
    assert any(requests in line and 'path="/leads"' in line for line in counted)


@pytest.mark.timeout(300)
async def test_restarts_and_crashes_under_load_lose_no_write_and_no_task(
    load_env: dict[str, str], tmp_path: Path
) -> None:
    summary = await run_load(load_env, tmp_path, "--duration", "45s", "--scenario", "restart")

    faults = {fault["what"]: fault["detail"] for fault in summary["faults"]}
    assert list(faults) == [
        "graceful restart of the API workers",
        "job worker killed",
        "Redis flushed",
        "whole service restarted",
        "service crashed",
    ]
    assert faults["job worker killed"].startswith("SIGKILL to job worker pid")
    http = summary["http"]
    assert http["failures"] == http["connection_errors"]  # the only failures: refused while down
    checked = summary["verification"]
    assert checked["acknowledged_writes"] > 20
    assert checked["tasks_terminal"] == checked["tasks_in_run"]
    assert checked["ok"]
