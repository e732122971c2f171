"""idempotency keys in their own table

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 05:47:36.490863+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], unique=False)
    op.drop_constraint(op.f("uq_tasks_idempotency_key"), "tasks", type_="unique")
    op.drop_column("tasks", "idempotency_key")


def downgrade() -> None:
    op.add_column(
        "tasks", sa.Column("idempotency_key", sa.VARCHAR(length=200), autoincrement=False, nullable=True)
    )
    op.create_unique_constraint(
        op.f("uq_tasks_idempotency_key"), "tasks", ["idempotency_key"], postgresql_nulls_not_distinct=False
    )
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
