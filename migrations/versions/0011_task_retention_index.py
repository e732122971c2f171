"""finished tasks by age: retention deletes the oldest finished tasks without scanning the rest

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 04:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Built without locking writes out (see 0009); a failed earlier run's invalid index goes first.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_tasks_finished_at")
        op.create_index(
            "ix_tasks_finished_at",
            "tasks",
            ["finished_at"],
            postgresql_where=sa.text("status IN ('COMPLETED', 'FAILED', 'CANCELLED')"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_tasks_finished_at", table_name="tasks", postgresql_concurrently=True)
