"""Log lines as an operator's collector reads them: JSON, each carrying its request or its task."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import httpx

from tests.helpers import bearer, one_worker, submit, wait_for

if TYPE_CHECKING:
    from pathlib import Path


MISSING = "01a2b3c4-0000-7000-8000-000000000000"


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every log record (the commands' own human lines, such as the URL they serve, are not)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


async def test_every_line_of_a_request_carries_its_id_given_or_made(start_api, api_key):
    api = await start_api(workers=1, LOG_FORMAT="json", ACCESS_LOG="true")
    async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(api_key)) as client:
        given = await client.get(f"/tasks/{MISSING}", headers={"X-Request-ID": "req-7.a:b"})
        assert given.status_code == 404
        assert given.headers["x-request-id"] == "req-7.a:b"
        hostile = await client.get("/health", headers={"X-Request-ID": "<script>" + "x" * 200})
        made = hostile.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)  # a fresh one: the hostile id is not echoed
        unknown_route = await client.get("/no/such/route", headers={"Authorization": ""})
        assert unknown_route.status_code == 404
        assert len(unknown_route.headers["x-request-id"]) == 32
    lines = json_lines(api.log)
    assert not [line for line in api.log.read_text().splitlines() if "<script>" in line]
    by_id = {line.get("request_id"): line for line in lines if line["logger"] == "orchestrator.access"}
    assert by_id["req-7.a:b"]["event"].startswith(f"GET /tasks/{MISSING} 404")
    assert by_id["req-7.a:b"]["level"] == "info"
    assert by_id[made]["event"].startswith("GET /health 200")
    assert all({"timestamp", "level", "logger", "event"} <= set(line) for line in lines)
    # Start-up says what an operator needs: Granian's workers, in the same format; no plugin lists.
    assert any(line["logger"].startswith("_granian") and "Started worker" in line["event"] for line in lines)
    assert "alembic" not in api.log.read_text()


async def test_every_line_of_a_job_carries_its_task_type_attempt_and_worker(api, settings, tmp_path, markers):
    worker = one_worker(settings, tmp_path / "worker.log", LOG_FORMAT="json")
    worker.start()
    try:
        task = await submit(api, "flaky", {"marker_dir": str(markers), "fail_attempts": 1}, max_attempts=2)
        assert (await wait_for(api, task, timeout_s=60))["status"] == "COMPLETED"
    finally:
        worker.kill_leftovers()
    lines = [line for line in json_lines(worker.log) if line.get("task_id") == task]
    started = [line for line in lines if line["event"].startswith("flaky: attempt")]
    assert [(line["event"], line["attempt"]) for line in started] == [
        ("flaky: attempt 1 started", 1),
        ("flaky: attempt 2 started", 2),
    ]
    for line in started:
        assert line["logger"] == "jobs.flaky"
        assert line["task_type"] == "flaky"
        assert line["worker_id"].rsplit("-", 2)[1].isdigit()
