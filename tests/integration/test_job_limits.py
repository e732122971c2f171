"""Claims under limits, run_task in one event loop against real PostgreSQL and Redis: a type's
concurrency limit, its rate limit, and concurrency keys (one at a time, in submission order).
`tests/e2e/test_job_limits.py` runs the same through real worker processes."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.job import Limits, discover, registry_for
from orchestrator.runner.execute import REDELIVER
from orchestrator.settings import JobLimits
from tests.helpers import in_process_runner, runs, submit

RUNNING = text("SELECT count(*) FROM tasks WHERE status = 'PROCESSING' AND type = :type")
UNFINISHED = text("SELECT count(*) FROM tasks WHERE id = ANY(:ids) AND status <> 'COMPLETED'")


@pytest.fixture
async def runner(settings, client):
    async with in_process_runner(settings, settings.job_packages) as runner:
        yield runner


@pytest.fixture
async def engine(settings):
    made = create_async_engine(settings.sqlalchemy_url)
    yield made
    await made.dispose()


async def drive(runner, task_ids: list[str], timeout_s: float = 60) -> int:
    """Deliver every task as SAQ would, again each time a limit holds it back, until all are
    COMPLETED; how many deliveries were held back."""
    held = 0
    pending = list(task_ids)
    async with asyncio.timeout(timeout_s):
        while pending:
            contexts = [{} for _ in pending]
            await asyncio.gather(
                *(runner.run_task(c, task_id=t) for c, t in zip(contexts, pending, strict=True))
            )
            again = [(c[REDELIVER], t) for c, t in zip(contexts, pending, strict=True) if REDELIVER in c]
            held += len(again)
            if again:
                await asyncio.sleep(min(delivery.delay_s for delivery, _ in again))
            pending = [t for _, t in again]
    return held


async def most_running(engine, type_: str, until: asyncio.Task) -> int:
    """The most tasks of `type_` PostgreSQL showed PROCESSING at once, sampled until `until` ends."""
    most = 0
    while not until.done():
        async with engine.connect() as db:
            most = max(most, await db.scalar(RUNNING, {"type": type_}))
        await asyncio.sleep(0.01)
    return most


async def test_a_concurrency_limit_holds_across_claims_at_once(runner, client, engine):
    tasks = [await submit(client, "limited", {"sleep_s": 0.3}) for _ in range(10)]
    work = asyncio.create_task(drive(runner, tasks))
    most = await most_running(engine, "limited", work)
    held = await work
    assert most == 3  # `limited` declares concurrency=3
    assert held >= 7  # all ten delivered at once: seven held back at least once
    async with engine.connect() as db:
        assert await db.scalar(UNFINISHED, {"ids": [uuid.UUID(t) for t in tasks]}) == 0


async def test_a_rate_limit_keeps_starts_within_its_window(runner, client):
    tasks = [await submit(client, "rated") for _ in range(12)]
    began = time.time()
    await drive(runner, tasks)
    starts = sorted([(await client.get(f"/tasks/{t}")).json()["result"]["started"] for t in tasks])
    # Five a second (`rated` declares 5/second): the sixth start comes a second after the first.
    for first, sixth in zip(starts, starts[5:], strict=False):
        assert sixth - first >= 0.75, starts
    assert starts[-1] - began >= 1.9  # twelve starts need three windows


async def test_a_concurrency_key_runs_its_tasks_one_at_a_time_in_submission_order(runner, client):
    tasks = [await submit(client, "noop", {"sleep_s": 0.1}, concurrency_key="lead:42") for _ in range(5)]
    other = await submit(client, "noop", {"sleep_s": 0.1}, concurrency_key="lead:43")
    # Delivered newest first: the key decides the order, not the deliveries.
    held = await drive(runner, [*reversed(tasks), other])
    details = [(await client.get(f"/tasks/{t}")).json() for t in tasks]
    started = [d["started_at"] for d in details]
    finished = [d["finished_at"] for d in details]
    assert started == sorted(started)
    for previous_end, next_start in zip(finished, started[1:], strict=False):
        assert next_start >= previous_end
    assert held >= 4
    assert (await client.get(f"/tasks/{other}")).json()["attempts"] == 1


async def test_a_keyed_task_waits_for_an_earlier_one_that_is_retrying(runner, client, engine, tmp_path):
    first = await submit(
        client, "flaky", {"marker_dir": str(tmp_path), "fail_attempts": 1}, concurrency_key="k"
    )
    second = await submit(client, "noop", concurrency_key="k")
    await runner.run_task({}, task_id=first)  # fails once: RETRY, due after its backoff
    context: dict = {}
    await runner.run_task(context, task_id=second)
    assert REDELIVER in context  # the earlier task of the key is not done: the later one waits
    async with engine.connect() as db:
        status = await db.scalar(text("SELECT status FROM tasks WHERE id = :id"), {"id": uuid.UUID(second)})
    assert status == "PENDING"


async def test_lead_writes_key_their_crm_syncs_by_lead(client):
    lead = (await client.post("/leads", json={"email": f"{uuid.uuid4().hex}@example.com"})).json()
    await client.patch(f"/leads/{lead['id']}", json={"company": "Acme"})
    syncs = (await client.get(f"/leads/{lead['id']}/tasks")).json()["items"]
    assert [task["type"] for task in syncs] == ["crm_update", "crm_update"]
    assert {task["concurrency_key"] for task in syncs} == {f"lead:{lead['id']}"}


async def test_get_jobs_shows_the_limits_in_force_and_settings_override_them(client, settings):
    jobs = {job["name"]: job for job in (await client.get("/jobs")).json()}
    assert (jobs["limited"]["concurrency"], jobs["limited"]["rate_limit"]) == (3, None)
    assert (jobs["rated"]["concurrency"], jobs["rated"]["rate_limit"]) == (None, "5/second")
    assert (jobs["noop"]["concurrency"], jobs["noop"]["rate_limit"]) == (None, None)

    overridden = settings.model_copy(
        update={
            "job_limits": {"limited": JobLimits(rate_limit="2/minute"), "rated": JobLimits(rate_limit=None)}
        }
    )
    registry = discover(settings.job_packages, test_types=True, settings=overridden)
    assert registry.limits("limited") == Limits(concurrency=3, rate=(2, 60.0))
    assert not registry.limits("rated")  # set to null: no limit
    assert registry.limited() == ["limited"]
    with pytest.raises(ValueError, match="rate limit"):
        JobLimits(rate_limit="often")


async def test_duplicate_deliveries_of_a_keyed_task_in_one_claim_batch_run_it_once(runner, client, tmp_path):
    task_id = await submit(
        client, "flaky", {"marker_dir": str(tmp_path), "sleep_s": 0.2}, concurrency_key="dup"
    )
    # Started in one tick: the claims go out together, in one batch and one limited claim.
    await asyncio.gather(*(runner.run_task({}, task_id=task_id) for _ in range(3)))
    assert runs(tmp_path, task_id) == [1]


async def test_plain_tasks_claimed_with_held_ones_run_even_when_the_limited_claim_fails(
    runner, client, engine, tmp_path
):
    plain = await submit(client, "flaky", {"marker_dir": str(tmp_path)})
    limited = await submit(client, "limited")
    async with engine.connect() as other:
        # Another claimer holds the type's lock and never lets go (frozen, cut off).
        await other.execute(text("SELECT pg_advisory_lock(hashtextextended('type:limited', 0))"))
        contexts: list[dict] = [{}, {}]
        await asyncio.gather(
            runner.run_task(contexts[0], task_id=plain), runner.run_task(contexts[1], task_id=limited)
        )
        await other.execute(text("SELECT pg_advisory_unlock_all()"))
    assert runs(tmp_path, plain) == [1]
    assert (await client.get(f"/tasks/{plain}")).json()["status"] == "COMPLETED"
    assert (await client.get(f"/tasks/{limited}")).json()["status"] == "PENDING"  # for a later delivery


async def test_a_keyed_task_for_later_does_not_hold_its_key_before_it_is_due(runner, client):
    later = await submit(client, "noop", concurrency_key="line", run_at="2099-01-01T00:00:00Z")
    now = await submit(client, "noop", concurrency_key="line")
    await drive(runner, [now], timeout_s=10)
    assert (await client.get(f"/tasks/{later}")).json()["status"] == "PENDING"


def test_job_limits_naming_an_unknown_type_stop_the_start(settings):
    wrong = settings.model_copy(update={"job_limits": {"crm_updat": JobLimits(concurrency=1)}})
    with pytest.raises(ValueError, match="crm_updat"):
        registry_for(wrong)
