"""search: SQLite's free-text table is filled by each batch's writer, not by a row trigger

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

The insert trigger of migration 0010 made FTS5 write one segment per event (it flushes its
pending terms at every statement savepoint, and a trigger runs each row in one), a third of
the ingestion speed. `audit_app.audit.search_index` now indexes each batch in one statement;
this drops the trigger (the purge trigger stays). Rows are indexed as before, so nothing is
refilled. PostgreSQL: nothing changes.
"""

# ruff: noqa: S608  (the SQL is built from this file's constants only)
from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIELDS = ("actor_id", "actor_email", "action", "resource_type", "resource_id", "ip_address", "request_id", "user_agent")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_search_insert")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    joined = " || ' ' || ".join(f"coalesce(new.{name}, '')" for name in FIELDS)
    body = f"({joined} || ' ' || coalesce(new.details, ''))"
    insert_new = f"INSERT OR REPLACE INTO audit_log_search(rowid, body) VALUES (new.rowid, {body});"
    op.execute(f"CREATE TRIGGER audit_log_search_insert AFTER INSERT ON audit_log BEGIN {insert_new} END")
    # rows stored while the trigger was gone were indexed by their writers: nothing to refill
