"""scale: (tenant_id, action, timestamp) replaces (tenant_id, action)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

"tenant + time range + action" is the console's most common narrowed view; with only
(tenant_id, action) the planner combined two bitmap scans and read a whole tenant. The wider
index serves that filter directly and still leads by (tenant_id, action) for the skip-scan
of distinct actions.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_log_tenant_action", table_name="audit_log")
    op.create_index("ix_audit_log_tenant_action_time", "audit_log", ["tenant_id", "action", "timestamp"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_tenant_action_time", table_name="audit_log")
    op.create_index("ix_audit_log_tenant_action", "audit_log", ["tenant_id", "action"])
