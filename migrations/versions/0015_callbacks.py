"""callbacks: where a task's end is POSTed, and the outbox a trigger fills as tasks end

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 13:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNDELIVERED = "delivered_at IS NULL AND given_up_at IS NULL"

# One callback row for each time a task with a callback_url becomes final, in the transaction
# that makes it so: every statement that ends a task (a worker's, the reconciler's, a cancel
# through the API, a workflow's steps cancelled with it) is covered without knowing of it. The
# body is the task as it ended; a retry through the API that ends again makes another.
CALLBACK_TIME = """
CREATE OR REPLACE FUNCTION callback_time(at TIMESTAMPTZ) RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$
"""
RECORD_CALLBACK = """
CREATE OR REPLACE FUNCTION record_task_callback() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO callbacks (task_id, url, body)
    VALUES (NEW.id, NEW.callback_url, jsonb_build_object(
        'type', 'task.' || lower(NEW.status),
        'timestamp', callback_time(NEW.finished_at),
        'data', jsonb_build_object(
            'id', NEW.id, 'type', NEW.type, 'status', NEW.status, 'attempts', NEW.attempts,
            'result', NEW.result, 'error', NEW.error, 'lead_id', NEW.lead_id,
            'parent_id', NEW.parent_id, 'schedule_id', NEW.schedule_id,
            'created_at', callback_time(NEW.created_at), 'finished_at', callback_time(NEW.finished_at))));
    RETURN NULL;
END
$$
"""
TRIGGER = """
CREATE TRIGGER tasks_callback AFTER UPDATE OF status ON tasks FOR EACH ROW
WHEN (NEW.callback_url IS NOT NULL AND NEW.status IN ('COMPLETED', 'FAILED', 'CANCELLED')
      AND OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION record_task_callback()
"""


def upgrade() -> None:
    # Nullable, no default: catalog-only changes of busy tables, each waiting 5 s at most for
    # its lock (see 0012); the trigger's creation takes the same short lock.
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS callback_url VARCHAR(2048)")
    op.execute("ALTER TABLE schedules ADD COLUMN IF NOT EXISTS callback_url VARCHAR(2048)")
    if context.is_offline_mode() or not sa.inspect(op.get_bind()).has_table("callbacks"):
        op.create_table(
            "callbacks",
            sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
            sa.Column("task_id", sa.Uuid(), nullable=False),
            sa.Column("url", sa.String(length=2048), nullable=False),
            sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
            sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
            sa.Column(
                "next_at", sa.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False
            ),
            sa.Column(
                "created_at", sa.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False
            ),
            sa.Column("delivered_at", sa.TIMESTAMP(timezone=True), nullable=True),
            sa.Column("given_up_at", sa.TIMESTAMP(timezone=True), nullable=True),
            sa.Column("last_error", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(
                ["task_id"], ["tasks.id"], name=op.f("fk_callbacks_task_id_tasks"), ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
        )
        op.create_index("ix_callbacks_due", "callbacks", ["next_at"], postgresql_where=sa.text(UNDELIVERED))
        op.create_index("ix_callbacks_task_id", "callbacks", ["task_id"])
    op.execute(CALLBACK_TIME)
    op.execute(RECORD_CALLBACK)
    op.execute("DROP TRIGGER IF EXISTS tasks_callback ON tasks")
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("DROP TRIGGER IF EXISTS tasks_callback ON tasks")
    op.execute("DROP FUNCTION IF EXISTS record_task_callback()")
    op.execute("DROP FUNCTION IF EXISTS callback_time(TIMESTAMPTZ)")
    op.drop_table("callbacks")
    op.drop_column("schedules", "callback_url")
    op.drop_column("tasks", "callback_url")
