"""scale: tenant-led indexes and daily pre-aggregated counts for /stats

Revision ID: 0002
Revises: 0001

The daily tables are filled from existing events here and kept in step by ingest afterwards.
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_AUDIT_LOG_INDEXES: dict[str, list[str]] = {
    "ix_audit_log_tenant_action": ["tenant_id", "action"],
    "ix_audit_log_tenant_resource_type": ["tenant_id", "resource_type"],
}

BACKFILL_DAILY_COUNT = """
INSERT INTO audit_daily_count (tenant_id, day, action, resource_type, result, count)
SELECT tenant_id, {day}, action, coalesce(resource_type, ''), result, count(*)
FROM audit_log GROUP BY tenant_id, {day}, action, coalesce(resource_type, ''), result
"""
BACKFILL_DAILY_ACTOR = """
INSERT INTO audit_daily_actor (tenant_id, day, actor_id, actor_email, count)
SELECT tenant_id, {day}, actor_id, max(actor_email), count(*)
FROM audit_log GROUP BY tenant_id, {day}, actor_id
"""


def day_expression(dialect: str) -> str:
    """The UTC calendar day of `audit_log.timestamp` in SQL of `dialect`."""
    return "CAST(timezone('UTC', timestamp) AS DATE)" if dialect == "postgresql" else "date(timestamp)"


def upgrade() -> None:
    for name, columns in NEW_AUDIT_LOG_INDEXES.items():
        op.create_index(name, "audit_log", columns)
    op.create_table(
        "audit_daily_count",
        sa.Column("tenant_id", sa.String(255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("resource_type", sa.String(128), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "action", "resource_type", "result"),
    )
    op.create_index("ix_audit_daily_count_day", "audit_daily_count", ["day"])
    op.create_table(
        "audit_daily_actor",
        sa.Column("tenant_id", sa.String(255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("actor_id", sa.String(255), nullable=False),
        sa.Column("actor_email", sa.String(320), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "actor_id"),
    )
    op.create_index("ix_audit_daily_actor_day", "audit_daily_actor", ["day"])
    day = day_expression(op.get_bind().dialect.name)
    op.execute(BACKFILL_DAILY_COUNT.format(day=day))
    op.execute(BACKFILL_DAILY_ACTOR.format(day=day))


def downgrade() -> None:
    op.drop_index("ix_audit_daily_actor_day", table_name="audit_daily_actor")
    op.drop_table("audit_daily_actor")
    op.drop_index("ix_audit_daily_count_day", table_name="audit_daily_count")
    op.drop_table("audit_daily_count")
    for name in NEW_AUDIT_LOG_INDEXES:
        op.drop_index(name, table_name="audit_log")
