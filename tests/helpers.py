"""What every test module may share: the test secret, the PostgreSQL admin URL, emptying the tables,
the token factory's type."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlmodel import Session

from audit_app.audit.filters import SQLITE_SEARCH_TEXT
from audit_app.db import engine_for

TEST_SECRET = "test-secret-" + "x" * 32


PG_ADMIN_URL = os.environ.get("AUDIT_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")


TABLES = (
    "audit_log",
    "tenant",
    "chain_head",
    "idempotency_record",
    "spent_download_token",
    "audit_daily_count",
    "audit_daily_actor",
    "audit_hourly_count",
    "audit_hourly_actor",
    "feed_collector",
    "export_progress",
    "log_stream",
    "audit_view",
    "console_session",
    "console_sign_in",
    "verified_link",
    "verify_lease",
)


RETENTION_TABLES = ("retention_default", "tenant_retention", "purge_checkpoint")


def clear_tables(url: str) -> None:
    """Empty every table, so each test starts from nothing.

    audit_log is append-only: like the retention purge, this opens the purge window of its
    own transaction (tests/trust prove that nothing else can delete).
    """
    engine = engine_for(url)
    tables = (*TABLES, *RETENTION_TABLES)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL audit.allow_purge = 'on'"))
            conn.execute(text(f"TRUNCATE {', '.join(tables)}"))
        else:
            conn.execute(text("UPDATE purge_guard SET active = 1"))
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(text("UPDATE purge_guard SET active = 0"))


TokenFactory = Callable[..., str]


def pg_unreachable(reason: str) -> None:
    """PostgreSQL tests fail under CI (the server must be there) and skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required under CI but unreachable: {reason}")
    pytest.skip(f"PostgreSQL unreachable: {reason}")


def search_index_errors(session: Session) -> dict[str, int]:
    """How SQLite's FTS5 search table differs from audit_log: every count 0 when it is exact.

    Read through an fts5vocab table of its entries: each event is indexed under its own rowid
    with one entry per trigram of its searched text (its whole text found there as one phrase),
    and no other rowid is indexed (a purged event left nothing behind).
    """
    vocab = "temp.audit_log_search_instances"
    session.execute(
        text(f"CREATE VIRTUAL TABLE IF NOT EXISTS {vocab} USING fts5vocab(main, audit_log_search, instance)")
    )
    per_row = f"(SELECT doc, count(*) AS n FROM {vocab} GROUP BY doc)"
    phrase = f"""'"' || replace({SQLITE_SEARCH_TEXT}, '"', '""') || '"'"""
    queries = {
        "stray": f"SELECT count(DISTINCT doc) FROM {vocab} WHERE doc NOT IN (SELECT rowid FROM audit_log)",
        "miscounted": f"SELECT count(*) FROM audit_log LEFT JOIN {per_row} AS i ON i.doc = audit_log.rowid"
        f" WHERE coalesce(i.n, 0) != length({SQLITE_SEARCH_TEXT}) - 2",
        "unfound": "SELECT count(*) FROM audit_log WHERE rowid NOT IN"
        f" (SELECT rowid FROM audit_log_search WHERE audit_log_search MATCH {phrase})",
    }
    return {name: int(session.execute(text(sql)).scalar_one()) for name, sql in queries.items()}
