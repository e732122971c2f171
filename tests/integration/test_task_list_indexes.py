"""GET /tasks reads the tasks its filters select through an index, never the whole table.

The plans are PostgreSQL's own, for the statement list_tasks sends, over 20,000 tasks that are
rolled back afterwards.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from orchestrator.pagination import encode_cursor
from orchestrator.tasks.services import TaskFilters, list_tasks
from orchestrator.tasks.status import TaskStatus

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from sqlalchemy.ext.asyncio import AsyncConnection

TASKS = 20_000
LEADS = 200
# Leads 00000000-0000-4000-8000-000000000001 and on, each with a hundred tasks; three common
# types and a rare one, which a walk in id order would find only by reading every task.
FILL = text(
    """
    INSERT INTO leads (id, email, version)
    SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'lead' || n || '@example.com', 1
    FROM generate_series(1, :leads) AS n
    """
)
FILL_TASKS = text(
    """
    INSERT INTO tasks (id, type, status, lead_id)
    SELECT gen_random_uuid(),
           CASE WHEN n % 1000 = 0 THEN 'rare' ELSE (ARRAY['noop', 'email_send', 'crm_update'])[n % 3 + 1] END,
           CASE WHEN n % 50 = 0 THEN 'FAILED' WHEN n % 20 = 0 THEN 'PENDING' ELSE 'COMPLETED' END,
           ('00000000-0000-4000-8000-' || lpad((n % :leads + 1)::text, 12, '0'))::uuid
    FROM generate_series(1, :tasks) AS n
    """
)
LEAD = uuid.UUID("00000000-0000-4000-8000-000000000001")
MIDDLE = encode_cursor(uuid.UUID("80000000-0000-4000-8000-000000000000"))  # a page half-way down


@pytest.fixture(scope="module")
async def filled(settings) -> AsyncIterator[AsyncConnection]:
    """A connection whose transaction holds the tasks and their statistics, rolled back after."""
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        async with engine.connect() as connection, connection.begin() as transaction:
            await connection.execute(FILL, {"leads": LEADS})
            await connection.execute(FILL_TASKS, {"tasks": TASKS, "leads": LEADS})
            await connection.execute(text("ANALYZE leads, tasks"))
            yield connection
            await transaction.rollback()
    finally:
        await engine.dispose()


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


async def plan_of_page(
    connection: AsyncConnection, filters: TaskFilters, cursor: str | None
) -> dict[str, Any]:
    """PostgreSQL's plan for the statement list_tasks sends, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(connection.sync_connection, "before_cursor_execute", capture)
    try:
        await list_tasks(AsyncSession(bind=connection), filters, cursor, 50)
    finally:
        event.remove(connection.sync_connection, "before_cursor_execute", capture)
    [(statement, parameters)] = sent
    explained = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
    plan: dict[str, Any] = explained.scalar_one()[0]["Plan"]
    return plan


@pytest.mark.parametrize("cursor", [None, MIDDLE], ids=["first page", "next page"])
@pytest.mark.parametrize(
    "filters",
    [
        pytest.param(TaskFilters(type="rare"), id="rare type"),
        pytest.param(TaskFilters(type="noop"), id="common type"),
        pytest.param(TaskFilters(type="rare", status=TaskStatus.FAILED), id="type and status"),
        pytest.param(TaskFilters(status=TaskStatus.FAILED), id="FAILED"),
        pytest.param(TaskFilters(status=TaskStatus.PENDING), id="PENDING"),
        pytest.param(TaskFilters(status=TaskStatus.COMPLETED), id="COMPLETED"),
        pytest.param(TaskFilters(lead_id=LEAD), id="lead"),
        pytest.param(TaskFilters(lead_id=LEAD, type="noop"), id="lead and type"),
    ],
)
async def test_a_page_of_tasks_is_read_through_an_index_never_a_table_scan(filled, filters, cursor):
    plan = await plan_of_page(filled, filters, cursor)
    nodes = [node["Node Type"] for node in plan_nodes(plan)]
    assert "Seq Scan" not in nodes, plan
    if filters.type is not None and filters.lead_id is None:
        # Only the type's own rows are read: never a walk past every other type's.
        assert any("type" in node.get("Index Cond", "") for node in plan_nodes(plan)), plan
