"""ingestion: drop (session_id), which no query reads

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01

`session_id` is stored, shown and exported, but no filter, search, sort or grouping reads it:
it is not among the list's filters (`audit.filters.AuditFilters`) nor in the free-text body
(`SEARCH_FIELDS`). Its index cost every ingested event a B-tree insert on a randomly keyed
leaf: on SQLite about one page in seven of what a 1,000-event batch writes to the WAL (and
copies into the file at the checkpoint), on PostgreSQL one more index entry per event.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_log_session", table_name="audit_log")


def downgrade() -> None:
    op.create_index("ix_audit_log_session", "audit_log", ["session_id"])
