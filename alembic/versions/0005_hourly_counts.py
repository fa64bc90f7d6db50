"""scale: hourly pre-aggregated counts for the partial days at the edges of a /stats window

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

Filled from existing events here and kept in step by ingest afterwards (like the daily ones).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
BACKFILL_COUNT = """
INSERT INTO audit_hourly_count (tenant_id, hour, action, resource_type, result, count)
SELECT tenant_id, {hour}, action, coalesce(resource_type, ''), result, count(*)
FROM audit_log GROUP BY tenant_id, {hour}, action, coalesce(resource_type, ''), result
"""
BACKFILL_ACTOR = """
INSERT INTO audit_hourly_actor (tenant_id, hour, actor_id, actor_email, count)
SELECT tenant_id, {hour}, actor_id, max(actor_email), count(*)
FROM audit_log GROUP BY tenant_id, {hour}, actor_id
"""


def hour_expression(dialect: str) -> str:
    """The UTC hour of `audit_log.timestamp`, as the column type stores it."""
    if dialect == "postgresql":
        return "timezone('UTC', date_trunc('hour', timezone('UTC', timestamp)))"
    return r"strftime('%Y-%m-%d %H\:00\:00.000000', timestamp)"  # \: keeps text() from seeing binds


def upgrade() -> None:
    op.create_table(
        "audit_hourly_count",
        sa.Column("tenant_id", sa.String(255), nullable=False),
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("resource_type", sa.String(128), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "hour", "action", "resource_type", "result"),
    )
    op.create_index("ix_audit_hourly_count_hour", "audit_hourly_count", ["hour"])
    op.create_table(
        "audit_hourly_actor",
        sa.Column("tenant_id", sa.String(255), nullable=False),
        sa.Column("hour", TIMESTAMP, nullable=False),
        sa.Column("actor_id", sa.String(255), nullable=False),
        sa.Column("actor_email", sa.String(320), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "hour", "actor_id"),
    )
    op.create_index("ix_audit_hourly_actor_hour", "audit_hourly_actor", ["hour"])
    hour = hour_expression(op.get_bind().dialect.name)
    op.execute(BACKFILL_COUNT.format(hour=hour))
    op.execute(BACKFILL_ACTOR.format(hour=hour))


def downgrade() -> None:
    op.drop_index("ix_audit_hourly_actor_hour", table_name="audit_hourly_actor")
    op.drop_table("audit_hourly_actor")
    op.drop_index("ix_audit_hourly_count_hour", table_name="audit_hourly_count")
    op.drop_table("audit_hourly_count")
