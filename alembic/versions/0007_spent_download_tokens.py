"""spent download tokens: the `jti` of each console download token, spent on first use

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

A download token travels in the export URL, so it can end up in access logs; once used it is
worthless. Every API worker sees the same table, and rows go once the token has expired.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spent_download_token",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_index("ix_spent_download_token_expires_at", "spent_download_token", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_spent_download_token_expires_at", table_name="spent_download_token")
    op.drop_table("spent_download_token")
