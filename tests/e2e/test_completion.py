"""A finished handler's success is written until it lands: a COMPLETE that fails because the
database is away for a moment is never turned into a re-run or a FAILED, for its own task or for
the others completing in the same batch."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import text

from orchestrator.db import in_transaction
from tests.helpers import runs, submit, transitions, wait_for

pytestmark = pytest.mark.usefixtures("workers")

# While a task is listed here, completing it fails with the listed SQLSTATE: 57P01 is what a
# server shutting down answers; 22023 is a value PostgreSQL will never accept.
REFUSE_COMPLETIONS = [
    "CREATE TABLE IF NOT EXISTS refused_completions (task_id uuid PRIMARY KEY, sqlstate text NOT NULL)",
    """
    CREATE OR REPLACE FUNCTION refuse_completion() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE code text;
    BEGIN
        SELECT sqlstate INTO code FROM refused_completions WHERE task_id = NEW.id;
        IF NEW.status = 'COMPLETED' AND code IS NOT NULL THEN
            RAISE EXCEPTION 'completion refused on purpose' USING ERRCODE = code;
        END IF;
        RETURN NEW;
    END $$
    """,
    "DROP TRIGGER IF EXISTS refuse_completion ON tasks",
    "CREATE TRIGGER refuse_completion BEFORE UPDATE ON tasks"
    " FOR EACH ROW EXECUTE FUNCTION refuse_completion()",
]
UNDO = ["DROP TRIGGER IF EXISTS refuse_completion ON tasks", "DROP TABLE IF EXISTS refused_completions"]


async def _execute(settings, *statements: str, **params: object) -> None:
    async def run(session):
        for statement in statements:
            await session.execute(text(statement), params)

    await in_transaction(settings, run)


@pytest.fixture
async def refuse(settings):
    """`await refuse(task_id, sqlstate)` makes completing that task fail until `allow(task_id)`."""
    await _execute(settings, *REFUSE_COMPLETIONS)

    async def refuse_(task_id: str, sqlstate: str) -> None:
        insert = "INSERT INTO refused_completions VALUES (:id, :code)"
        await _execute(settings, insert, id=uuid.UUID(task_id), code=sqlstate)

    yield refuse_
    await _execute(settings, *UNDO)


async def _allow(settings, task_id: str) -> None:
    await _execute(settings, "DELETE FROM refused_completions WHERE task_id = :id", id=uuid.UUID(task_id))


def _soon() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()


async def test_a_success_whose_completion_fails_for_a_while_is_completed_once(api, settings, markers, refuse):
    payload = {"marker_dir": str(markers), "sleep_s": 0.5}
    run_at = _soon()  # all due together, so their completions share batches with the doomed one
    doomed = await submit(api, "flaky", payload, max_attempts=1, run_at=run_at)
    await refuse(doomed, "57P01")
    others = [await submit(api, "flaky", payload, max_attempts=1, run_at=run_at) for _ in range(5)]

    await wait_for(api, doomed, statuses={"PROCESSING"})
    # Longer than a lease (3 s in tests): the success must not be given up for a lost worker.
    await asyncio.sleep(4.0)
    assert (await api.get(f"/tasks/{doomed}")).json()["status"] == "PROCESSING"
    await _allow(settings, doomed)

    for task_id in [doomed, *others]:
        task = await wait_for(api, task_id)
        assert task["status"] == "COMPLETED", task["error"]
        assert transitions(task).count(("PROCESSING", "COMPLETED")) == 1
        assert runs(markers, task_id) == [1]  # the handler ran once


async def test_a_result_the_database_refuses_fails_its_task_and_only_that_one(api, markers, refuse):
    payload = {"marker_dir": str(markers), "sleep_s": 0.5}
    run_at = _soon()
    doomed = await submit(api, "flaky", payload, run_at=run_at)
    await refuse(doomed, "22023")
    others = [await submit(api, "flaky", payload, max_attempts=1, run_at=run_at) for _ in range(5)]

    task = await wait_for(api, doomed)
    assert task["status"] == "FAILED"
    assert "result could not be stored" in task["error"]
    assert "completion refused on purpose" in task["error"]
    assert runs(markers, doomed) == [1]  # not run again: another attempt cannot store it either
    for task_id in others:  # written alone when their batch failed for the doomed row
        assert (await wait_for(api, task_id))["status"] == "COMPLETED"


async def test_a_passing_error_of_the_row_is_tried_for_one_lease_then_left_to_the_lease(
    api, settings, markers, refuse
):
    # A serialization failure may be this row's own doing every time: after a lease of tries the
    # worker gives the attempt up to the lease (another attempt runs), not a loop for good.
    payload = {"marker_dir": str(markers)}
    doomed = await submit(api, "flaky", payload, run_at=_soon())
    await refuse(doomed, "40001")
    await wait_for(api, doomed, statuses={"PROCESSING"})
    async with asyncio.timeout(20):
        while runs(markers, doomed) != [1, 2]:  # noqa: ASYNC110  (another process's files)
            await asyncio.sleep(0.1)
    await _allow(settings, doomed)
    task = await wait_for(api, doomed)
    assert task["status"] == "COMPLETED", task["error"]
    assert ("PROCESSING", "RETRY") in transitions(task)
    assert "lease expired" in str(task["history"])
