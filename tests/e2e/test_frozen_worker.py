"""A worker frozen past its lease (SIGSTOP: a long GC pause, a VM stall) and woken after another
worker finished its task: the zombie attempt writes nothing and does not run again."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import TYPE_CHECKING

from tests.helpers import one_worker, runs, submit, transitions, wait_for

if TYPE_CHECKING:
    from load.service import Service


async def test_a_frozen_attempt_woken_after_the_task_completed_elsewhere_changes_nothing(
    api, settings, markers, tmp_path
):
    frozen = one_worker(settings, tmp_path / "frozen.log")
    other = one_worker(settings, tmp_path / "other.log")
    paused: int | None = None
    try:
        frozen.start()
        task_id = await submit(api, "flaky", {"marker_dir": str(markers), "sleep_s": 2.0})
        running = await wait_for(api, task_id, {"PROCESSING"}, timeout_s=60)
        paused = int(running["worker_id"].rsplit("-", 2)[1])
        os.kill(paused, signal.SIGSTOP)  # mid-handler, holding attempt 1

        other.start()  # its reconciler expires the lease; it runs attempt 2
        done = await wait_for(api, task_id, timeout_s=60)
        assert done["status"] == "COMPLETED"
        assert done["result"] == {"attempt": 2}

        os.kill(paused, signal.SIGCONT)
        paused = None
        # The zombie's handler wakes, finishes its sleep and tries to complete attempt 1; its
        # renewal finds the attempt gone. Give it past its sleep and a few renewals to try.
        async with asyncio.timeout(30):
            while not _said_refused(frozen, task_id):  # noqa: ASYNC110  (another process's log)
                await asyncio.sleep(0.1)
        after = (await api.get(f"/tasks/{task_id}")).json()
        assert after["status"] == "COMPLETED"
        assert after["result"] == {"attempt": 2}
        assert after["attempts"] == 2
        assert transitions(after) == transitions(done)  # no write of the zombie's
        assert runs(markers, task_id) == [1, 2]  # attempt 1 did not start again
    finally:
        if paused is not None:
            os.kill(paused, signal.SIGCONT)
        frozen.kill_leftovers()
        other.kill_leftovers()


def _said_refused(worker: Service, task_id: str) -> bool:
    log = worker.log.read_text()
    return f"task {task_id}: completion refused" in log or f"task {task_id}: cancelled or taken away" in log
