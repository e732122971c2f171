"""Redis cannot stop a live run: only PostgreSQL says when an attempt is over.

The reconciler's stuck-job rule finishes, as ABORTED, a SAQ job ACTIVE past the grace whose task
was never claimed (its worker died between dequeue and claim). A claim slower than the grace
makes that rule fire on a live worker whose claim then lands; SAQ's abort poll used to cancel
the handler that had just started, and the task ran again.
"""

from __future__ import annotations

import pytest
from saq.job import Status

from orchestrator.queue import make_queue
from tests.helpers import runs, submit, wait_for

pytestmark = pytest.mark.usefixtures("workers")


async def test_a_running_job_marked_aborted_in_redis_runs_on_and_runs_once(api, settings, markers):
    task_id = await submit(api, "flaky", {"marker_dir": str(markers), "sleep_s": 4.0})
    await wait_for(api, task_id, {"PROCESSING"}, timeout_s=30)
    queue = make_queue(settings)
    try:
        job = await queue.job(f"{task_id}:0")
        assert job is not None
        await queue.finish(job, Status.ABORTED, error="not claimed in time; delivered again")
    finally:
        await queue.disconnect()
    task = await wait_for(api, task_id, timeout_s=60)
    assert task["status"] == "COMPLETED", task["error"]
    assert runs(markers, task_id, "cancelled") == []
    assert runs(markers, task_id) == [1]
