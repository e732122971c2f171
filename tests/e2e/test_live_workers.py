"""Which worker processes are alive, as an operator sees them: in the SAQ UI and in GET /workers."""

from __future__ import annotations

import asyncio
import signal
import socket
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from orchestrator.auth.keys import issue_key
from orchestrator.auth.models import Scope
from tests.helpers import one_worker, submit, wait_for

if TYPE_CHECKING:
    from load.service import Service


@pytest.fixture(scope="module")
def worker_extra_env() -> dict[str, str]:
    return {"WORKER_HEARTBEAT_S": "1"}


@pytest.fixture(scope="module")
async def write_key(settings):
    return await issue_key(settings, "workers-writer", Scope.WRITE)


def child_pids(service: Service) -> set[int]:
    assert service.process is not None
    # Not multiprocessing's resource tracker, the other child of a process that spawns.
    children = psutil.Process(service.process.pid).children()
    return {child.pid for child in children if "spawn_main" in " ".join(child.cmdline())}


async def children(service: Service) -> set[int]:
    """The worker processes `orchestrator worker` started, once it has started them."""

    async def spawned() -> set[int]:
        return child_pids(service)

    return await until(spawned)


async def until(probe: Any, timeout_s: float = 30.0) -> Any:
    """Call `probe` until it returns something truthy."""
    async with asyncio.timeout(timeout_s):
        while not (answer := await probe()):  # noqa: ASYNC110  (the state is in another process)
            await asyncio.sleep(0.2)
        return answer


async def test_the_saq_ui_lists_each_live_worker_with_its_host_process_and_running_jobs(
    api, workers, markers
):
    pids = await children(workers)
    tasks = [await submit(api, "flaky", {"marker_dir": str(markers), "sleep_s": 8.0}) for _ in range(5)]
    for task in tasks:
        await wait_for(api, task, {"PROCESSING"}, timeout_s=60)

    async def ours_running_five() -> dict[str, Any] | None:
        queue = (await api.get("/saq/api/queues")).json()["queues"][0]
        ours = {
            worker_id: info
            for worker_id, info in queue["workers"].items()
            if (info.get("metadata") or {}).get("pid") in pids
        }
        running = sum(info["metadata"]["running"] for info in ours.values())
        # At least our five: tasks earlier tests left behind (a key's line waiting for a
        # retry, looking again now and then) are delivered to these workers too.
        return ours if len(ours) == 2 and running >= 5 else None

    ours = await until(ours_running_five, timeout_s=15)
    for worker_id, info in ours.items():
        assert info["metadata"]["host"] == socket.gethostname()
        assert info["metadata"]["concurrency"] == 10
        assert worker_id.startswith(f"{socket.gethostname()}-{info['metadata']['pid']}-")
    for task in tasks:
        assert (await wait_for(api, task, timeout_s=60))["status"] == "COMPLETED"


async def test_get_workers_shows_live_stopped_and_lost_workers_from_postgresql(api, settings, tmp_path):
    alive = one_worker(settings, tmp_path / "alive.log", WORKER_HEARTBEAT_S="1")
    stopped = one_worker(settings, tmp_path / "stopped.log", WORKER_HEARTBEAT_S="1")
    lost = one_worker(settings, tmp_path / "lost.log", WORKER_HEARTBEAT_S="1")
    for worker in (alive, stopped, lost):
        worker.start()
    try:
        pids = {
            "alive": await children(alive),
            "stopped": await children(stopped),
            "lost": await children(lost),
        }

        async def listed() -> dict[int, dict[str, Any]] | None:
            response = await api.get("/workers")
            assert response.status_code == 200, response.text
            seen = {worker["pid"]: worker for worker in response.json()["items"]}
            wanted = set().union(*pids.values())
            return seen if wanted <= set(seen) else None

        await until(listed)
        assert stopped.stop(signal.SIGTERM, timeout_s=30) == 0
        lost.stop(signal.SIGKILL)

        async def settled() -> dict[int, dict[str, Any]] | None:
            seen = await listed()
            if seen is None:
                return None
            states = {name: {seen[pid]["state"] for pid in group} for name, group in pids.items()}
            return seen if states == {"alive": {"live"}, "stopped": {"stopped"}, "lost": {"lost"}} else None

        seen = await until(settled, timeout_s=30)
        (pid,) = pids["alive"]
        live = seen[pid]
        assert live["id"].startswith(f"{socket.gethostname()}-{pid}-")
        assert live["host"] == socket.gethostname()
        assert live["concurrency"] == 4
        assert live["queue"] == settings.queue_name
        assert live["last_seen_s"] < 5
    finally:
        for worker in (alive, stopped, lost):
            worker.kill_leftovers()


async def test_get_workers_is_for_admin_keys_only(api, write_key):
    response = await api.get("/workers", headers={"Authorization": f"Bearer {write_key}"})
    assert response.status_code == 403
