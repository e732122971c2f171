"""task trace context: the traceparent of the request that wrote a task, for its runs to continue

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 05:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a catalog-only change, no rewrite of a busy table. It still needs the
    # table's strongest lock for a moment: waiting for it behind a long query would queue every
    # claim and renewal behind the wait, so it gives up after 5 s (run the migration again).
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column("tasks", sa.Column("trace_context", sa.String(length=100), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "trace_context")
