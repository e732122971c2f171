"""reconciler scans: partial indexes for waiting and running tasks, and where the last due scan stopped

The due scan reads waiting tasks in run_at order (ix_tasks_due), lease expiry reads running ones
(ix_tasks_processing), and listing failed or cancelled tasks reads ix_tasks_ended_badly. They
replace ix_tasks_status_run_at, which every status change of every task had to update. A renewal
changes none of their columns, so it stays a HOT update.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 20:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# (name, columns, the rows it holds): read by the reconciler's scans and by listing failed or
# cancelled tasks, none of them touched by the happy path's renewals.
PARTIAL_INDEXES = [
    ("ix_tasks_due", ["run_at", "id"], "status IN ('PENDING', 'RETRY')"),
    ("ix_tasks_processing", ["id"], "status = 'PROCESSING'"),
    ("ix_tasks_ended_badly", ["id"], "status IN ('FAILED', 'CANCELLED')"),
]


def upgrade() -> None:
    # Built without locking writes out: a busy table would stall every lease renewal. A failed
    # earlier run may have left an invalid index of the same name behind: dropped first.
    with op.get_context().autocommit_block():
        for name, columns, rows in PARTIAL_INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.create_index(
                name, "tasks", columns, postgresql_where=sa.text(rows), postgresql_concurrently=True
            )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_tasks_status_run_at")
    op.add_column(
        "reconciler_rounds", sa.Column("due_after_run_at", sa.TIMESTAMP(timezone=True), nullable=True)
    )
    op.add_column("reconciler_rounds", sa.Column("due_after_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("reconciler_rounds", "due_after_id")
    op.drop_column("reconciler_rounds", "due_after_run_at")
    op.create_index("ix_tasks_status_run_at", "tasks", ["status", "run_at"])
    for name, _, _ in PARTIAL_INDEXES:
        op.drop_index(name, table_name="tasks")
