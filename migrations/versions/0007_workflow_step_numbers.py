"""workflow step numbers: steps ordered by a number given under the workflow's lock, not by ids

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 19:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("step", sa.Integer(), nullable=True))
    # Steps recorded before this revision: in the order PostgreSQL recorded them (created_at is
    # the database's clock; the id, from a worker's clock, only breaks ties).
    op.execute(
        """
        UPDATE tasks SET step = numbered.n
        FROM (SELECT id, row_number() OVER (PARTITION BY parent_id ORDER BY created_at, id) AS n
              FROM tasks WHERE parent_id IS NOT NULL) AS numbered
        WHERE tasks.id = numbered.id
        """
    )
    # Built without locking writes out (a busy table would stall every lease renewal), then
    # attached as the constraint in a moment.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS uq_tasks_parent_id_step")  # a failed earlier run's
        op.execute("CREATE UNIQUE INDEX CONCURRENTLY uq_tasks_parent_id_step ON tasks (parent_id, step)")
    op.execute(
        "ALTER TABLE tasks ADD CONSTRAINT uq_tasks_parent_id_step UNIQUE USING INDEX uq_tasks_parent_id_step"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_tasks_parent_id_step"), "tasks", type_="unique")
    op.drop_column("tasks", "step")
