"""task type index: GET /tasks?type= reads the type's tasks newest first, not every task

Without it, a page of a rare type (or of one no task has) walked the primary key backwards past
every other type's tasks, or read the whole table and sorted it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 20:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Built without locking writes out: a busy table would stall every lease renewal. A failed
    # earlier run may have left an invalid index of the same name behind: dropped first.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_tasks_type_id")
        op.create_index("ix_tasks_type_id", "tasks", ["type", "id"], postgresql_concurrently=True)


def downgrade() -> None:
    op.drop_index("ix_tasks_type_id", table_name="tasks")
