"""A workflow waiting for its step is woken however the step ends, and a wake-up that lands
while the workflow is running is not lost: real PostgreSQL, Redis and the reconciler."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from orchestrator.db import in_transaction
from orchestrator.queue import make_queue
from orchestrator.runner.reconciler import reconcile_once
from orchestrator.tasks import transitions
from tests.helpers import submit

WORKER = "test-host:1"
LATER = "2999-01-01T00:00:00Z"  # not due: no reconciler round delivers it by itself
NEXT_ROUND_DUE = text("UPDATE reconciler_rounds SET started_at = '1970-01-01'")
WAITING = text("UPDATE tasks SET run_at = now() + interval '15 min' WHERE id = :id")
IS_DUE = text("SELECT run_at <= now() FROM tasks WHERE id = :id")


async def _family(client, settings, step_status: str = "PENDING") -> tuple[uuid.UUID, uuid.UUID]:
    """A workflow waiting (PENDING, due in 15 min) for its one step, which is `step_status`."""
    parent = uuid.UUID(await submit(client, "noop", run_at=LATER))
    child = uuid.UUID(await submit(client, "noop", run_at=LATER))
    adopt = text("UPDATE tasks SET parent_id = :parent, step = 1, status = :status WHERE id = :id")
    params = {"parent": parent, "id": child, "status": step_status}
    await in_transaction(settings, lambda session: session.execute(adopt, params))
    await in_transaction(settings, lambda session: session.execute(WAITING, {"id": parent}))
    return parent, child


async def _due(settings, task_id: uuid.UUID) -> bool:
    async def read(session):
        return await session.scalar(IS_DUE, {"id": task_id})

    return bool(await in_transaction(settings, read))


async def _claimed(db, parent: uuid.UUID) -> int:
    """The workflow claimed by a worker now; the attempt it holds."""
    await db.execute(text("UPDATE tasks SET run_at = now() WHERE id = :id"), {"id": parent})
    [claimed] = (await transitions.claim_many(db, [parent], WORKER, 30.0)).moved
    assert claimed is not None
    return claimed.attempts


async def _suspend(db, parent: uuid.UUID, attempt: int) -> None:
    """The workflow waits for its step, as its handler asks when it read the step running."""
    suspended = await transitions.move(
        db, transitions.SUSPEND, parent, worker=WORKER, attempt=attempt, delay_s=15.0
    )
    assert suspended is not None


async def test_a_step_cancelled_through_the_api_wakes_its_workflow(client, settings):
    parent, child = await _family(client, settings)
    assert (await client.post(f"/tasks/{child}/cancel")).status_code == 200
    assert await _due(settings, parent)
    queue = make_queue(settings)
    try:
        assert await queue.job(f"{parent}:0") is not None
    finally:
        await queue.disconnect()


async def test_a_step_failed_by_its_lease_running_out_wakes_its_workflow(client, settings):
    parent, child = await _family(client, settings, "PROCESSING")
    lost = text(
        "UPDATE tasks SET attempts = max_attempts, lease_until = now() - interval '1 min' WHERE id = :id"
    )
    await in_transaction(settings, lambda session: session.execute(lost, {"id": child}))
    engine = create_async_engine(settings.sqlalchemy_url)
    queue = make_queue(settings)
    try:
        await in_transaction(settings, lambda session: session.execute(NEXT_ROUND_DUE))
        await reconcile_once(engine, queue, settings)
    finally:
        await queue.disconnect()
        await engine.dispose()
    assert await _due(settings, parent)


async def test_a_wake_up_that_lands_while_the_workflow_runs_makes_its_suspend_due_at_once(client, settings):
    # The workflow read its step as running; the step ends and wakes it before it suspends.
    parent, child = await _family(client, settings, "PROCESSING")
    engine = create_async_engine(settings.sqlalchemy_url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as db:
            attempt = await _claimed(db, parent)
            await db.execute(text("UPDATE tasks SET attempts = 1 WHERE id = :id"), {"id": child})
            assert await transitions.complete_many(db, [(child, 1, "{}")], WORKER) == [True]
            await transitions.wake(db, parent)  # lands while the workflow is PROCESSING
            await _suspend(db, parent, attempt)
    finally:
        await engine.dispose()
    assert await _due(settings, parent)


async def test_a_wake_up_from_a_transaction_older_than_the_claim_is_not_lost(client, settings):
    # The API's transaction began (its now() is fixed) before the workflow was claimed; its wake
    # lands while the workflow runs, and must still count as after the claim.
    parent, child = await _family(client, settings, "PROCESSING")
    engine = create_async_engine(settings.sqlalchemy_url)
    worker = engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as api, api.begin():
            await api.execute(text("SELECT now()"))  # the transaction's clock starts here
            async with worker.connect() as db:
                attempt = await _claimed(db, parent)
            await transitions.move(api, transitions.CANCEL, child, worker=None, detail={"by": "api"})
            await transitions.wake(api, parent)
        async with worker.connect() as db:
            await _suspend(db, parent, attempt)
    finally:
        await engine.dispose()
    assert await _due(settings, parent)
