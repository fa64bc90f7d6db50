"""ingestion: drop (actor_email, timestamp), which no query reads since the email filter ignores case

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01

Since migration 0010 the `actor_email` filter compares `lower(actor_email)` (and its prefix), which
`ix_audit_log_actor_email_lower` serves on both databases; nothing else filters, sorts or groups
audit_log by the stored spelling (/stats reads actors from its aggregate tables). Every ingested
event still paid an entry in the old index: one B-tree insert per event, and on SQLite about one
page in sixteen of what a 1,000-event batch writes to the WAL.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_log_actor_email_time", table_name="audit_log")


def downgrade() -> None:
    op.create_index("ix_audit_log_actor_email_time", "audit_log", ["actor_email", "timestamp"])
