"""SIGTERM to a worker in the middle of an SMTP exchange: the send finishes and is recorded,
so the task, handed back and run again, does not send a second time."""

from __future__ import annotations

import asyncio
import signal
import uuid

from tests.helpers import one_worker, submit, wait_for
from tests.inboxes import holding_inbox


async def test_a_worker_stopped_mid_send_finishes_the_send_and_the_retry_does_not_send_again(
    api, settings, tmp_path
):
    with holding_inbox() as (inbox, port):
        smtp = {"SMTP_URL": f"smtp://127.0.0.1:{port}", "EMAIL_FROM": "sales@example.com"}
        worker = one_worker(settings, tmp_path / "worker.log", **smtp)
        worker.start()
        assert worker.process is not None
        try:
            payload = {"to": f"{uuid.uuid4().hex}@example.com", "subject": "Once", "text": "stop mid-send"}
            task_id = await submit(api, "email_send", payload)
            assert await asyncio.to_thread(inbox.arrived.wait, 60)  # the exchange is under way
            worker.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(3)  # past the grace: the attempt is being stopped, the send is not
            inbox.release.set()
            assert worker.process.wait(timeout=60) == 0
            worker.start()
            task = await wait_for(api, task_id, timeout_s=60)
        finally:
            worker.kill_leftovers()
    assert inbox.accepted.count(f"<task-{task_id}@orchestrator>") == 1
    assert task["status"] == "COMPLETED", task["error"]
    assert task["result"]["already_sent"] is True
