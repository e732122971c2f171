"""Completion callbacks against real PostgreSQL and a real receiver on 127.0.0.1: what may be
named at submit, the trigger that records each end whichever statement makes it, and delivery:
signed, retried with backoff, given up, never sent again once delivered."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.callbacks.deliver import attempt, client, deliver_due, take
from orchestrator.runner.retention import retention_once
from orchestrator.tasks.transitions import expire_leases
from tests.callback_receivers import CallbackReceiver
from tests.helpers import serving, submit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    import httpx
    from sqlalchemy.ext.asyncio import AsyncEngine

    from orchestrator.settings import Settings


@pytest.fixture
async def engine(settings) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(settings.sqlalchemy_url)
    yield made
    await made.dispose()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with serving(CallbackReceiver()) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def http(settings) -> AsyncIterator[httpx.AsyncClient]:
    async with client(settings) as made:  # the workers' own
        yield made


async def callbacks_of(engine: AsyncEngine, task_id: str) -> list[Any]:
    async with engine.connect() as db:
        query = text("SELECT * FROM callbacks WHERE task_id = :id ORDER BY created_at, id")
        return list((await db.execute(query, {"id": uuid.UUID(task_id)})).all())


async def due_now(engine: AsyncEngine, task_id: str) -> None:
    """Time passing: the next attempt's backoff, or a dead sender's hold, is over."""
    async with engine.begin() as db:
        await db.execute(
            text("UPDATE callbacks SET next_at = now() - interval '1 second' WHERE task_id = :id"),
            {"id": uuid.UUID(task_id)},
        )


async def cancelled(client, receiver: CallbackReceiver, **fields: Any) -> str:
    """A task with a callback, cancelled before any worker ran it: its end is recorded."""
    task_id = await submit(
        client, "noop", {}, callback_url=receiver.url, run_at="2999-01-01T00:00:00Z", **fields
    )
    assert (await client.post(f"/tasks/{task_id}/cancel")).status_code == 200
    return task_id


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.0.0.1/hook", "not one CALLBACK_ALLOWED_HOSTS lists"),
        ("http://127.0.0.1.evil.example/hook", "not one CALLBACK_ALLOWED_HOSTS lists"),
        ("http://127.0.0.1@evil.example/hook", "user name or password"),
        ("http://evil.example#@127.0.0.1/", "not one CALLBACK_ALLOWED_HOSTS lists"),
        ("ftp://127.0.0.1/hook", "callback_url"),
        ("http://127.0.0.1/\x07", "callback_url"),
        ("/relative", "callback_url"),
    ],
)
async def test_a_callback_url_the_deployment_does_not_allow_is_a_422_naming_it(client, url, why):
    response = await client.post("/tasks", json={"type": "noop", "payload": {}, "callback_url": url})
    assert response.status_code in (400, 422), response.text
    assert why in response.text
    batch = await client.post(
        "/tasks/batch", json={"tasks": [{"type": "noop"}, {"type": "noop", "callback_url": url}]}
    )
    assert batch.status_code in (400, 422), batch.text
    assert "callback_url" in batch.text
    schedule = {"name": "s", "type": "noop", "cron": "0 3 * * *", "callback_url": url}
    assert (await client.post("/schedules", json=schedule)).status_code in (400, 422)
    assert (await client.get("/tasks")).json()["items"] == []


async def test_with_no_allowed_host_callbacks_are_refused_at_submit(settings, api_key):
    from tests.helpers import app_client

    closed = settings.model_copy(update={"callback_allowed_hosts": []})
    async with app_client(closed, api_key) as client:
        body = {"type": "noop", "payload": {}, "callback_url": "http://127.0.0.1/hook"}
        response = await client.post("/tasks", json=body)
    assert response.status_code == 422, response.text
    assert "callbacks are off" in response.json()["detail"]


async def test_each_end_is_recorded_once_whichever_statement_makes_it(client, engine, receiver):
    task_id = await cancelled(client, receiver)
    [first] = await callbacks_of(engine, task_id)
    assert first.url == receiver.url
    assert first.body["type"] == "task.cancelled"
    assert first.body["data"]["id"] == task_id
    assert first.body["data"]["status"] == "CANCELLED"

    # A retry through the API that ends again is another end, with its own webhook-id.
    assert (await client.post(f"/tasks/{task_id}/retry")).status_code == 202
    assert len(await callbacks_of(engine, task_id)) == 1  # PENDING again is no end
    assert (await client.post(f"/tasks/{task_id}/cancel")).status_code == 200
    ends = await callbacks_of(engine, task_id)
    assert len(ends) == 2
    assert ends[0].id != ends[1].id

    # The reconciler's lease expiry, on a last attempt: FAILED, and recorded.
    lost = await submit(client, "noop", {}, callback_url=receiver.url)
    async with engine.begin() as db:
        await db.execute(
            text(
                "UPDATE tasks SET status = 'PROCESSING', attempts = max_attempts,"
                " lease_until = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": uuid.UUID(lost)},
        )
        await expire_leases(db)
    [expired] = await callbacks_of(engine, lost)
    assert expired.body["type"] == "task.failed"
    assert "lease expired" in expired.body["data"]["error"]

    # No callback_url: no row.
    plain = await submit(client, "noop", {}, run_at="2999-01-01T00:00:00Z")
    assert (await client.post(f"/tasks/{plain}/cancel")).status_code == 200
    assert await callbacks_of(engine, plain) == []


async def test_a_callback_is_posted_signed_and_never_again_once_delivered(
    client, engine, receiver, http, settings
):
    task_id = await cancelled(client, receiver)
    assert await deliver_due(engine, http, settings) >= 1
    [call] = receiver.calls()
    assert call["verified"], call
    [row] = await callbacks_of(engine, task_id)
    assert call["id"] == str(row.id)
    assert call["message"]["type"] == "task.cancelled"
    assert call["message"]["data"]["status"] == "CANCELLED"
    assert call["message"]["timestamp"].endswith("Z")
    assert row.delivered_at is not None
    assert row.attempts == 1

    await due_now(engine, task_id)  # even due again by the clock, a delivered row stays delivered
    await deliver_due(engine, http, settings)
    assert len(receiver.calls()) == 1

    detail = (await client.get(f"/tasks/{task_id}")).json()
    [shown] = detail["callbacks"]
    assert shown["id"] == str(row.id)
    assert shown["event"] == "task.cancelled"
    assert shown["delivered_at"] is not None
    assert detail["callback_url"] == receiver.url


async def test_a_failed_post_is_retried_with_backoff_under_the_same_webhook_id(
    client, engine, receiver, http, settings
):
    receiver.answers = [500, 503]
    task_id = await cancelled(client, receiver)
    await deliver_due(engine, http, settings)
    [row] = await callbacks_of(engine, task_id)
    assert row.attempts == 1
    assert row.delivered_at is None
    assert "answered 500" in row.last_error
    async with engine.connect() as db:
        wait_s = (
            await db.execute(text("SELECT extract(epoch FROM :at - now())"), {"at": row.next_at})
        ).scalar()
    assert 2.0 <= float(wait_s) <= 5.0  # the first backoff: 5 s with jitter

    await deliver_due(engine, http, settings)
    assert len(receiver.calls()) == 1  # not due yet

    for _ in range(2):
        await due_now(engine, task_id)
        await deliver_due(engine, http, settings)
    [row] = await callbacks_of(engine, task_id)
    assert row.delivered_at is not None
    assert row.attempts == 3
    assert [call["status"] for call in receiver.calls()] == [500, 503, 200]
    assert {call["id"] for call in receiver.calls()} == {str(row.id)}


async def test_a_callback_is_given_up_after_its_attempts_or_at_a_410(
    client, engine, receiver, http, settings
):
    two = settings.model_copy(update={"callback_max_attempts": 2})
    receiver.answers = [500, 500, 410]
    task_id = await cancelled(client, receiver)
    for _ in range(3):
        await due_now(engine, task_id)
        await deliver_due(engine, http, two)
    [row] = await callbacks_of(engine, task_id)
    assert row.given_up_at is not None
    assert row.attempts == 2
    assert len(receiver.calls()) == 2

    gone = await cancelled(client, receiver)
    await deliver_due(engine, http, settings)
    [row] = await callbacks_of(engine, gone)
    assert row.given_up_at is not None
    assert row.attempts == 1
    assert "answered 410" in row.last_error


async def test_a_host_no_longer_allowed_is_not_called(client, engine, receiver, http, settings):
    task_id = await cancelled(client, receiver)
    closed = settings.model_copy(update={"callback_allowed_hosts": ["hooks.example.com"]})
    await deliver_due(engine, http, closed)
    [row] = await callbacks_of(engine, task_id)
    assert row.given_up_at is not None
    assert "not one CALLBACK_ALLOWED_HOSTS lists" in row.last_error
    assert receiver.calls() == []


async def test_a_redirect_is_not_followed(client, engine, receiver, http, settings):
    with serving(CallbackReceiver()) as elsewhere:
        receiver.answers = [307]
        receiver.location = elsewhere.url  # type: ignore[attr-defined]
        task_id = await cancelled(client, receiver)
        await deliver_due(engine, http, settings)
        [row] = await callbacks_of(engine, task_id)
        assert elsewhere.calls() == []  # type: ignore[attr-defined]
    assert row.delivered_at is None
    assert "answered 307" in row.last_error


async def test_a_receiver_trickling_its_answer_is_cut_at_the_attempts_deadline(
    client, engine, receiver, http, settings
):
    quick = settings.model_copy(update={"callback_timeout_s": 1.0})
    receiver.answers = [500]
    receiver.answer_body = b"x" * 30
    receiver.trickle_s = 0.2  # each read well within a read timeout, the whole 6 s
    task_id = await cancelled(client, receiver)
    async with asyncio.timeout(5):
        await deliver_due(engine, http, quick)
    [row] = await callbacks_of(engine, task_id)
    assert row.last_error == "no answer within 1 s"
    assert row.delivered_at is None


async def test_an_answer_postgresql_cannot_store_is_recorded_all_the_same(
    client, engine, receiver, http, settings
):
    receiver.answers = [500]
    receiver.answer_body = b"bad\x00answer"
    task_id = await cancelled(client, receiver)
    await deliver_due(engine, http, settings)
    [row] = await callbacks_of(engine, task_id)
    assert row.attempts == 1
    assert "answered 500: bad" in row.last_error
    assert row.next_at > row.created_at  # backoff set: not taken again at once


async def test_a_late_attempt_taken_over_records_nothing_over_the_newer_one(
    client, engine, receiver, http, settings
):
    task_id = await cancelled(client, receiver)
    [stale] = await take(engine, settings)
    await due_now(engine, task_id)  # its hold is over: another worker takes it
    [newer] = await take(engine, settings)
    assert newer.attempts == 2
    receiver.answers = [500]
    await attempt(engine, http, settings, stale)  # the late one fails, at last
    [row] = await callbacks_of(engine, task_id)
    assert row.last_error is None
    assert row.attempts == 2


async def test_a_host_name_that_resolves_to_a_private_address_is_not_called(
    client, engine, receiver, http, settings
):
    named = settings.model_copy(update={"callback_allowed_hosts": ["localhost", "127.0.0.1"]})
    from tests.helpers import app_client

    port = receiver.server_address[1]
    async with app_client(named, await _key(settings)) as local:
        task_id = await submit(
            local, "noop", {}, callback_url=f"http://localhost:{port}/hook", run_at="2999-01-01T00:00:00Z"
        )
        assert (await local.post(f"/tasks/{task_id}/cancel")).status_code == 200
    await deliver_due(engine, http, named)
    [row] = await callbacks_of(engine, task_id)
    assert "not a public address" in row.last_error
    assert receiver.calls() == []


async def _key(settings) -> str:
    from orchestrator.auth.keys import issue_key
    from orchestrator.auth.models import Scope

    return await issue_key(settings, f"callbacks-{uuid.uuid4().hex[:6]}", Scope.WRITE)


async def test_retention_keeps_a_task_whose_callback_is_not_delivered_yet(
    client, engine, receiver, http, settings
):
    receiver.answers = [500]
    task_id = await cancelled(client, receiver)
    await deliver_due(engine, http, settings)
    async with engine.begin() as db:
        await db.execute(
            text("UPDATE tasks SET finished_at = now() - interval '2 days' WHERE id = :id"),
            {"id": uuid.UUID(task_id)},
        )
    await retention_once(engine, keep_s=3600, interval_s=0)
    assert len(await callbacks_of(engine, task_id)) == 1
    await due_now(engine, task_id)
    await deliver_due(engine, http, settings)  # delivered now
    await retention_once(engine, keep_s=3600, interval_s=0)
    assert (await client.get(f"/tasks/{task_id}")).status_code == 404


async def test_a_sender_gone_mid_post_leaves_it_due_again_with_the_same_id(
    client, engine, receiver, http, settings
):
    """The POST reached the receiver but its sender died before recording it: the row is held
    for one attempt's time, then sent again under the same webhook-id, which the receiver
    drops as a repeat. (With real processes and SIGKILL: tests/e2e/test_callbacks.py.)"""
    receiver.release.clear()
    task_id = await cancelled(client, receiver)
    sender = asyncio.create_task(deliver_due(engine, http, settings))
    assert await asyncio.to_thread(receiver.arrived.wait, 10)
    sender.cancel()  # the process is gone; its row stays held
    receiver.release.set()
    await asyncio.gather(sender, return_exceptions=True)
    await deliver_due(engine, http, settings)
    [row] = await callbacks_of(engine, task_id)
    assert row.delivered_at is None  # still held: not sent twice at once
    await due_now(engine, task_id)
    await deliver_due(engine, http, settings)
    [row] = await callbacks_of(engine, task_id)
    assert row.delivered_at is not None
    assert row.attempts == 2
    calls = receiver.calls()
    assert len(calls) == 2
    assert {call["id"] for call in calls} == {str(row.id)}
    assert len(receiver.delivered()) == 1


async def test_a_schedule_gives_its_callback_to_its_tasks(client, engine, receiver, settings):
    from orchestrator.job import discover
    from orchestrator.schedules.ticks import fire_due

    body = {
        "name": f"cb-{uuid.uuid4().hex[:6]}",
        "type": "noop",
        "cron": "* * * * * *",
        "callback_url": receiver.url,
    }
    made = await client.post("/schedules", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["callback_url"] == receiver.url
    try:
        await asyncio.sleep(1.1)
        async with engine.begin() as db:
            [task, *_] = await fire_due(db, discover(["jobs", "tests.jobs"], test_types=True), 0.0)
        shown = (await client.get(f"/tasks/{task.id}")).json()
        assert shown["callback_url"] == receiver.url
        cleared = await client.patch(f"/schedules/{made.json()['id']}", json={"callback_url": None})
        assert cleared.json()["callback_url"] is None
    finally:
        await client.delete(f"/schedules/{made.json()['id']}")


def test_settings_refuse_callbacks_without_a_key(settings: Settings):
    from orchestrator.settings import Settings

    with pytest.raises(ValueError, match="CALLBACK_SECRET"):
        Settings(_env_file=None, callback_allowed_hosts=["hooks.example.com"])  # type: ignore[call-arg]
