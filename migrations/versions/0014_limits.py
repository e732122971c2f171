"""limits: tasks' concurrency keys, and the rate limits' windows of starts

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 07:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYED = "concurrency_key IS NOT NULL AND status IN ('PENDING', 'RETRY', 'PROCESSING')"


def upgrade() -> None:
    # What comes before the index is committed before it is built: a run again after a failed
    # build finds it done (see 0013).
    if context.is_offline_mode() or not sa.inspect(op.get_bind()).has_table("rate_windows"):
        op.create_table(
            "rate_windows",
            sa.Column("name", sa.String(length=200), nullable=False),
            sa.Column("starts", postgresql.ARRAY(sa.TIMESTAMP(timezone=True)), nullable=False),
            sa.PrimaryKeyConstraint("name", name=op.f("pk_rate_windows")),
        )
    # Nullable, no default: a catalog-only change of a busy table, waiting 5 s at most for its
    # lock (see 0012).
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS concurrency_key VARCHAR(200)")
    # Built without locking writes out (see 0009); a failed earlier run's invalid index goes first.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_tasks_concurrency_key")
        op.create_index(
            "ix_tasks_concurrency_key",
            "tasks",
            ["concurrency_key", "created_at", "id"],
            postgresql_where=sa.text(KEYED),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_tasks_concurrency_key", table_name="tasks", postgresql_concurrently=True)
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_column("tasks", "concurrency_key")
    op.drop_table("rate_windows")
