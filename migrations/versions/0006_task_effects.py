"""task effects: side effects performed once per task, whichever attempts run

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 19:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_effects",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_effects_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "name", name=op.f("pk_task_effects")),
    )
    # Emails sent before this revision count as claimed sends, so no retry sends them again.
    op.execute(
        "INSERT INTO task_effects (task_id, name, attempt) SELECT task_id, 'send', 0 FROM email_deliveries"
    )


def downgrade() -> None:
    op.drop_table("task_effects")
