"""Completion callbacks with real processes: the API, worker processes, and an integrator's
receiver on 127.0.0.1 that verifies each POST with the Standard Webhooks library. A worker killed
(SIGKILL) while its POST is at the receiver: another, on a host whose clock is ten minutes
ahead, sends it again under the same webhook-id,
and the receiver, remembering ids, has it once; once recorded delivered, it never comes again."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.callback_receivers import CallbackReceiver
from tests.helpers import CALLBACK_SECRET, bearer, clock_off_by, one_worker, serving, submit, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

# A short time limit, so that a dead sender's hold (limit + 5 s) ends within the test.
FAST = {"CALLBACK_TIMEOUT_S": "2", "CALLBACK_POLL_S": "0.2"}
API = {
    "CALLBACK_ALLOWED_HOSTS": '["127.0.0.1"]',
    "CALLBACK_SECRET": CALLBACK_SECRET,
    "JOB_PACKAGES": '["jobs", "tests.jobs"]',
}


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with serving(CallbackReceiver()) as server:
        yield server  # type: ignore[misc]


async def callbacks_shown(client: httpx.AsyncClient, task_id: str, until: str, timeout_s: float = 30) -> Any:
    """The task's callbacks once each has `until` set (delivered_at, given_up_at)."""
    async with asyncio.timeout(timeout_s):
        while True:
            shown = (await client.get(f"/tasks/{task_id}")).json()["callbacks"]
            if shown and all(callback[until] for callback in shown):
                return shown
            await asyncio.sleep(0.2)


async def test_each_end_is_posted_signed_once(start_api, api_key, settings, tmp_path, receiver):
    api = await start_api(workers=1, **API)
    worker = one_worker(settings, tmp_path / "worker.log", **FAST)
    worker.start()
    try:
        async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(api_key), timeout=30) as client:
            ids = [await submit(client, "noop", {}, callback_url=receiver.url) for _ in range(5)]
            flaky = {"marker_dir": str(tmp_path), "permanent": True}
            failing = await submit(client, "flaky", flaky, callback_url=receiver.url)
            for task_id in [*ids, failing]:
                await wait_for(client, task_id, timeout_s=30)
                await callbacks_shown(client, task_id, "delivered_at")
            await asyncio.sleep(1.0)  # a second POST of any, were there one, would be in by now
    finally:
        worker.kill_leftovers()
    calls = receiver.calls()
    assert all(call["verified"] for call in calls), calls
    by_task = {call["message"]["data"]["id"]: call for call in calls}
    assert len(calls) == len(by_task) == 6
    assert {task_id: by_task[task_id]["message"]["type"] for task_id in ids} == dict.fromkeys(
        ids, "task.completed"
    )
    assert by_task[failing]["message"]["type"] == "task.failed"
    assert by_task[failing]["message"]["data"]["status"] == "FAILED"


async def test_a_callback_outlives_a_worker_killed_mid_post(start_api, api_key, settings, tmp_path, receiver):
    api = await start_api(workers=1, **API)
    first = one_worker(settings, tmp_path / "first.log", **FAST)
    # Its host's clock ten minutes ahead: the signature's timestamp is PostgreSQL's, or the
    # receiver (which allows five minutes) would refuse it.
    second = one_worker(settings, tmp_path / "second.log", **FAST, **clock_off_by(600))
    receiver.release.clear()  # the first POST is held at the receiver
    first.start()
    try:
        async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(api_key), timeout=30) as client:
            task_id = await submit(client, "noop", {}, callback_url=receiver.url)
            assert (await wait_for(client, task_id, timeout_s=30))["status"] == "COMPLETED"
            assert await asyncio.to_thread(receiver.arrived.wait, 30)
            first.stop(signal.SIGKILL)
            receiver.release.set()  # the receiver had it whole: it counts it, the sender is gone
            second.start()
            [shown] = await callbacks_shown(client, task_id, "delivered_at", timeout_s=40)
            await asyncio.sleep(1.0)
    finally:
        first.kill_leftovers()
        second.kill_leftovers()
    calls = receiver.calls()
    assert len(calls) == 2, calls
    assert {call["id"] for call in calls} == {shown["id"]}
    assert all(call["verified"] for call in calls)
    assert len(receiver.delivered()) == 1
    assert shown["attempts"] == 2
