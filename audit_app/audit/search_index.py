"""SQLite's free-text index (`audit_log_search`, FTS5 trigram) is filled by the writer, one statement per batch.

An insert trigger fed it row by row until migration 0014: FTS5 flushes its pending terms at
every statement savepoint, and a trigger runs each row's insert in one, so every event wrote
a segment of its own (three times the cost of the same rows in one statement; ingestion at a
third of its speed). `ingest_events` now notes the last rowid before its insert and, after
it, indexes the rows above that mark with one INSERT ... SELECT. Purges still remove their
rows through the delete trigger. A row whose rowid the index still holds (audit_log rows deleted
behind the triggers' back, a VACUUM that renumbered rowids) is replaced, as the trigger did.
PostgreSQL's trigram GIN index needs none of this.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

from audit_app.audit.filters import SQLITE_SEARCH_TEXT
from audit_app.migrations import SEARCH_TABLE

# S608: the SQL is built from this module's constants only
FILL = text(
    f"INSERT OR REPLACE INTO {SEARCH_TABLE}(rowid, body)"  # noqa: S608
    f" SELECT rowid, {SQLITE_SEARCH_TEXT} FROM audit_log WHERE rowid > :mark"
)


def uses_search_table(session: Session) -> bool:
    """Whether the search index is the FTS5 table (SQLite) rather than an index PostgreSQL keeps itself."""
    return session.get_bind().dialect.name == "sqlite"


def insert_mark(session: Session) -> int:
    """The highest rowid of audit_log now (0 when empty): the rows inserted next lie above it.

    Read under the writer's lock (after the batch's first write), so no other writer's rows
    can land above the mark before this transaction commits.
    """
    return int(session.connection().exec_driver_sql("SELECT coalesce(max(rowid), 0) FROM audit_log").scalar_one())


def index_rows_after(session: Session, mark: int) -> None:
    """Add the events inserted above `mark` (by this transaction) to the free-text index."""
    session.connection().execute(FILL, {"mark": mark})
