"""export progress: rows streamed so far by each console export, and whether it was asked to stop

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

The API worker streaming an export writes its row count here every half second; the console
worker of the same user reads it (they may be different processes) and may set
`cancel_requested`, which the stream sees at its next update and stops. Rows go after a day.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "export_progress",
        sa.Column("download_id", sa.String(64), nullable=False),
        sa.Column("export_id", sa.String(64), nullable=False),
        sa.Column("actor_id", sa.String(320), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("download_id"),
    )
    op.create_index("ix_export_progress_started_at", "export_progress", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_export_progress_started_at", table_name="export_progress")
    op.drop_table("export_progress")
