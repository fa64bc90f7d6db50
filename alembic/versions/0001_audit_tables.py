"""audit tables: audit_log, tenant, chain_head, idempotency_record

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

AUDIT_LOG_INDEXES: dict[str, list[str]] = {
    "ix_audit_log_time": ["timestamp", "id"],
    "ix_audit_log_tenant_time": ["tenant_id", "timestamp", "id"],
    "ix_audit_log_actor_time": ["actor_id", "timestamp"],
    "ix_audit_log_actor_email_time": ["actor_email", "timestamp"],
    "ix_audit_log_action_time": ["action", "timestamp"],
    "ix_audit_log_resource_type_time": ["resource_type", "timestamp"],
    "ix_audit_log_resource_id_time": ["resource_id", "timestamp"],
    "ix_audit_log_result_time": ["result", "timestamp"],
    "ix_audit_log_ip_time": ["ip_address", "timestamp"],
    "ix_audit_log_request": ["request_id"],
    "ix_audit_log_session": ["session_id"],
}


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("timestamp", TIMESTAMP, nullable=False),
        sa.Column("tenant_id", sa.String(255), nullable=False),
        sa.Column("partner_id", sa.String(255), nullable=True),
        sa.Column("actor_id", sa.String(255), nullable=False),
        sa.Column("actor_email", sa.String(320), nullable=True),
        sa.Column("actor_type", sa.String(16), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("resource_type", sa.String(128), nullable=True),
        sa.Column("resource_id", sa.String(255), nullable=True),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("ip_address", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(1024), nullable=True),
        sa.Column("request_id", sa.String(255), nullable=True),
        sa.Column("session_id", sa.String(255), nullable=True),
        sa.Column("details", JSON_DOCUMENT, nullable=False),
        sa.Column("ingested_at", TIMESTAMP, nullable=False),
        sa.Column("chain_seq", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("tenant_id", "chain_seq", name="uq_audit_log_tenant_chain_seq"),
    )
    for name, columns in AUDIT_LOG_INDEXES.items():
        op.create_index(name, "audit_log", columns)
    op.create_table(
        "tenant",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("partner_id", sa.String(255), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_tenant_partner_id", "tenant", ["partner_id"])
    op.create_table(
        "chain_head",
        sa.Column("tenant_id", sa.String(255), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "idempotency_record",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("caller", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("ids", sa.JSON(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("key", "caller"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_record")
    op.drop_table("chain_head")
    op.drop_index("ix_tenant_partner_id", table_name="tenant")
    op.drop_table("tenant")
    for name in AUDIT_LOG_INDEXES:
        op.drop_index(name, table_name="audit_log")
    op.drop_table("audit_log")
