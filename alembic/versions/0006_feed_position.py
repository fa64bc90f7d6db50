"""feed: a commit-ordered position per event, and the feed's collectors (for audit.feed records)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

`feed_pos` orders the lossless feed (docs/feed.md). Events written before this migration get
position 0 and are served first, by id. On PostgreSQL a new row's position is its writing
transaction's id (`pg_current_xact_id()`); ingest sets it explicitly, the default covers any
other writer. On SQLite ingest assigns max + 1 under the one writer lock.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("feed_pos", sa.BigInteger(), nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_log ALTER COLUMN feed_pos SET DEFAULT pg_current_xact_id()::text::bigint")
    op.create_index("ix_audit_log_feed", "audit_log", ["feed_pos", "id"])
    op.create_table(
        "feed_collector",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("polls", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("feed_collector")
    op.drop_index("ix_audit_log_feed", table_name="audit_log")
    op.drop_column("audit_log", "feed_pos")
