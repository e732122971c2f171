"""A worker that does not know a task's job type hands it back, ever later, and fails it once it
has been handed back MAX_HAND_BACKS times: run_task itself against real PostgreSQL."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from orchestrator.runner.execute import HAND_BACK_DELAY_MAX_S, HAND_BACK_DELAY_S, MAX_HAND_BACKS
from tests.helpers import in_process_runner


@pytest.fixture
async def runner(settings, client):
    """A worker of an older release: it knows only the built-in job types."""
    async with in_process_runner(settings, ["jobs"]) as runner:
        yield runner


async def _ghost(runner, earlier_hand_backs: int) -> uuid.UUID:
    """A due task of a type only a newer release knows, handed back this often already."""
    task_id = uuid.uuid4()
    async with runner.engine.connect() as db:
        await db.execute(
            text("INSERT INTO tasks (id, type, max_attempts) VALUES (:id, 'ghost', 3)"), {"id": task_id}
        )
        for number in range(1, earlier_hand_backs + 1):
            await db.execute(
                text(
                    "INSERT INTO task_events (task_id, from_status, to_status, detail)"
                    " VALUES (:id, 'PROCESSING', 'PENDING', CAST(:detail AS JSONB))"
                ),
                {"id": task_id, "detail": json.dumps({"hand_back": number})},
            )
    return task_id


async def _row(runner, task_id: uuid.UUID):
    query = text(
        "SELECT status, attempts, error, extract(epoch FROM run_at - now()) AS due_in_s"
        " FROM tasks WHERE id = :id"
    )
    async with runner.engine.connect() as db:
        return (await db.execute(query, {"id": task_id})).one()


@pytest.mark.parametrize(
    ("earlier", "delay_s"), [(0, HAND_BACK_DELAY_S), (2, 4 * HAND_BACK_DELAY_S), (15, HAND_BACK_DELAY_MAX_S)]
)
async def test_a_task_of_an_unknown_type_is_handed_back_uncounted_and_ever_later(runner, earlier, delay_s):
    task_id = await _ghost(runner, earlier)
    await runner.run_task({}, task_id=str(task_id))
    row = await _row(runner, task_id)
    assert (row.status, row.attempts, row.error) == ("PENDING", 0, None)
    assert delay_s - 2 < row.due_in_s <= delay_s


async def test_a_task_handed_back_max_times_fails_naming_its_type(runner):
    task_id = await _ghost(runner, MAX_HAND_BACKS)
    await runner.run_task({}, task_id=str(task_id))
    row = await _row(runner, task_id)
    assert row.status == "FAILED"
    assert f"no worker knows job type 'ghost' (handed back {MAX_HAND_BACKS} times)" in row.error
