"""email_send with two attempts alive at once: only one of them may send.

A cancel then a retry within a heartbeat leaves attempt 1 running (it learns of the cancel at
its next renewal) while attempt 2 starts; a worker paused longer than its lease does the same.
The SMTP server here holds the first message's answer, so that both attempts are in flight.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest

from tests.helpers import submit, wait_for
from tests.inboxes import HoldingInbox, holding_inbox

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.usefixtures("workers")


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[HoldingInbox, int]]:
    with holding_inbox() as served:
        yield served


@pytest.fixture(scope="module")
def worker_extra_env(inbox: tuple[HoldingInbox, int]) -> dict[str, str]:
    # Renewals far apart, so that attempt 1 is still sending when attempt 2 starts.
    return {
        "SMTP_URL": f"smtp://127.0.0.1:{inbox[1]}",
        "EMAIL_FROM": "sales@example.com",
        "TASK_LEASE_S": "60",
        "TASK_HEARTBEAT_S": "15",
    }


async def test_a_retry_while_the_cancelled_attempt_still_sends_does_not_send_twice(api, inbox):
    handler, _ = inbox
    payload = {"to": f"{uuid.uuid4().hex}@example.com", "subject": "Once", "text": "only once"}
    task_id = await submit(api, "email_send", payload)
    assert await asyncio.to_thread(handler.arrived.wait, 30)  # attempt 1 is in the SMTP exchange
    assert (await api.post(f"/tasks/{task_id}/cancel")).status_code == 200
    assert (await api.post(f"/tasks/{task_id}/retry")).status_code == 202
    await asyncio.sleep(3)  # time for attempt 2 to start and send, were it allowed to
    handler.release.set()
    assert await asyncio.to_thread(handler.answered.wait, 10)
    task = await wait_for(api, task_id, timeout_s=30)
    message_id = f"<task-{task_id}@orchestrator>"
    assert handler.accepted.count(message_id) == 1
    assert task["status"] == "COMPLETED", task["error"]
    assert task["attempts"] == 2
    assert task["result"]["already_sent"] is True


async def test_a_send_slower_than_its_attempts_timeout_is_kept_and_not_sent_again(api, inbox):
    handler, _ = inbox
    handler.arrived.set()
    handler.release.set()
    handler.slow_s = 4.0
    try:
        payload = {"to": f"{uuid.uuid4().hex}@example.com", "subject": "Slow", "text": "slow server"}
        task_id = await submit(api, "email_send", payload, timeout_s=2)
        task = await wait_for(api, task_id, timeout_s=90)
    finally:
        handler.slow_s = 0.0
    assert handler.accepted.count(f"<task-{task_id}@orchestrator>") == 1
    assert task["status"] == "COMPLETED", task["error"]
    assert task["result"]["already_sent"] is True
