"""search: free text (`q`) through the database's text index, case-insensitive email, IP networks

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

`q` searches one document per event: its ids, email, action, resource, IP, request id, user agent
and the text of `details` (the expression in `audit_app.audit.filters`, copied here as of this
revision; tests/api/test_search.py checks they stay equal).
- PostgreSQL: `pg_trgm` and a GIN trigram index on that expression (ILIKE '%word%' uses it);
  a GiST index on `CAST(ip_address AS inet)` for CIDR filters (ingest stores only valid
  addresses, so the cast cannot fail).
- SQLite: an FTS5 table with the trigram tokenizer holding the same text, kept in step by
  triggers on insert, purge (and any update, though the append-only guard refuses those). Its
  rowids are audit_log's: after a VACUUM (which may renumber them) refill it with
  `DELETE FROM audit_log_search` and this migration's `INSERT INTO audit_log_search ... SELECT`.
- Both: an index on lower(actor_email), for the case-insensitive email filter.
"""

# ruff: noqa: S608  (the SQL is built from this file's constants only)
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_FIELDS = (
    "actor_id",
    "actor_email",
    "action",
    "resource_type",
    "resource_id",
    "ip_address",
    "request_id",
    "user_agent",
)


def document(details: str, row: str = "") -> str:
    """The searched text of a row (`row`: `new.`/`old.` inside a trigger)."""
    joined = " || ' ' || ".join(f"coalesce({row}{name}, '')" for name in SEARCH_FIELDS)
    return f"({joined} || ' ' || {details})"


PG_SEARCH_TEXT = document("details::text")
SQLITE_SEARCH_TEXT = document("coalesce(details, '')")


def upgrade() -> None:
    op.create_index("ix_audit_log_actor_email_lower", "audit_log", [sa.text("lower(actor_email)"), "timestamp"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(f"CREATE INDEX ix_audit_log_search ON audit_log USING gin (({PG_SEARCH_TEXT}) gin_trgm_ops)")
        op.execute("CREATE INDEX ix_audit_log_inet ON audit_log USING gist ((CAST(ip_address AS inet)) inet_ops)")
        return
    op.execute("CREATE VIRTUAL TABLE audit_log_search USING fts5(body, tokenize='trigram')")
    new_text = document("coalesce(new.details, '')", "new.")
    insert_new = f"INSERT OR REPLACE INTO audit_log_search(rowid, body) VALUES (new.rowid, {new_text});"
    delete_old = "DELETE FROM audit_log_search WHERE rowid = old.rowid;"
    op.execute(f"CREATE TRIGGER audit_log_search_insert AFTER INSERT ON audit_log BEGIN {insert_new} END")
    op.execute(f"CREATE TRIGGER audit_log_search_delete AFTER DELETE ON audit_log BEGIN {delete_old} END")
    op.execute(f"CREATE TRIGGER audit_log_search_update AFTER UPDATE ON audit_log BEGIN {delete_old} {insert_new} END")
    op.execute(f"INSERT INTO audit_log_search(rowid, body) SELECT rowid, {SQLITE_SEARCH_TEXT} FROM audit_log")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_audit_log_inet")
        op.execute("DROP INDEX IF EXISTS ix_audit_log_search")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_search_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_search_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_log_search_insert")
        op.execute("DROP TABLE IF EXISTS audit_log_search")
    op.drop_index("ix_audit_log_actor_email_lower", table_name="audit_log")
