"""SIGTERM to `orchestrator worker`: in-flight jobs get the grace period, the rest are handed back."""

from __future__ import annotations

import re
import signal

from tests.helpers import one_worker, runs, submit, transitions, wait_for


async def test_sigterm_finishes_short_jobs_and_hands_back_long_ones(api, settings, tmp_path):
    worker = one_worker(settings, tmp_path / "worker.log", SHUTDOWN_GRACE_S="2")
    worker.start()
    try:
        short = await submit(api, "flaky", {"marker_dir": str(tmp_path), "sleep_s": 1.0})
        long = await submit(api, "flaky", {"marker_dir": str(tmp_path), "sleep_s": 6.0})
        await wait_for(api, short, {"PROCESSING"}, timeout_s=60)
        await wait_for(api, long, {"PROCESSING"}, timeout_s=60)

        assert worker.stop(signal.SIGTERM, timeout_s=20) == 0
        # At least our two: in a shared session the worker may also have taken an earlier test's task.
        stopping = re.search(r"stopping: (\d+) job\(s\) running, up to 2 s to finish", worker.log.read_text())
        assert stopping is not None
        assert int(stopping[1]) >= 2

        finished = (await api.get(f"/tasks/{short}")).json()
        assert finished["status"] == "COMPLETED"
        handed_back = (await api.get(f"/tasks/{long}")).json()
        assert handed_back["status"] == "PENDING"
        assert handed_back["attempts"] == 0  # the interrupted attempt is not counted
        assert transitions(handed_back)[-1] == ("PROCESSING", "PENDING")
        assert runs(tmp_path, long, "cancelled") == [1]

        worker.start()
        done = await wait_for(api, long, timeout_s=60)
        assert done["status"] == "COMPLETED"
        assert done["attempts"] == 1
    finally:
        worker.kill_leftovers()
