"""workflow step numbers: steps ordered by a number given under the workflow's lock, not by ids

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 19:30:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # IF NOT EXISTS: the index below is built outside the transaction, so a run that failed there
    # has committed this and the numbering already, and is run again from the start.
    op.execute("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS step integer")
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
    # Only steps are indexed (a top-level task would pay for an entry it never uses), built
    # without locking writes out: a busy table would stall every lease renewal.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS uq_tasks_parent_id_step")  # a failed earlier run's
        op.execute(
            "CREATE UNIQUE INDEX CONCURRENTLY uq_tasks_parent_id_step ON tasks (parent_id, step)"
            " WHERE parent_id IS NOT NULL"
        )


def downgrade() -> None:
    op.drop_index("uq_tasks_parent_id_step", table_name="tasks")
    op.drop_column("tasks", "step")
