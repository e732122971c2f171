"""schedules: cron schedules, and each task's schedule and tick (one task per tick)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 06:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def upgrade() -> None:
    # The index below is built outside the transaction, which commits what comes before it: if
    # the build fails, running the migration again must find those steps done and go on.
    if context.is_offline_mode() or not sa.inspect(op.get_bind()).has_table("schedules"):
        _create_schedules()
    # Nullable, no default: catalog-only changes of a busy table, each waiting 5 s at most for
    # its lock rather than queueing every claim behind it (see 0012). No foreign key: deleting a
    # schedule must not rewrite every task it made.
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS schedule_id UUID")
    op.execute("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS scheduled_for TIMESTAMP WITH TIME ZONE")
    # Built without locking writes out (see 0009), a failed earlier run's invalid index first.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS uq_tasks_schedule_id_scheduled_for")
        op.create_index(
            "uq_tasks_schedule_id_scheduled_for",
            "tasks",
            ["schedule_id", "scheduled_for"],
            unique=True,
            postgresql_where=sa.text("schedule_id IS NOT NULL"),
            postgresql_concurrently=True,
        )


def _create_schedules() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column(
            "payload", sa.dialects.postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("cron", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("declared_by", sa.String(length=100), nullable=True),
        sa.Column("next_run_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_schedules_lead_id_leads"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_schedules_name")),
    )
    op.create_index(
        "ix_schedules_due", "schedules", ["next_run_at"], unique=False, postgresql_where=sa.text("enabled")
    )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("uq_tasks_schedule_id_scheduled_for", table_name="tasks", postgresql_concurrently=True)
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.drop_column("tasks", "scheduled_for")
    op.drop_column("tasks", "schedule_id")
    op.drop_index("ix_schedules_due", table_name="schedules", postgresql_where=sa.text("enabled"))
    op.drop_table("schedules")
