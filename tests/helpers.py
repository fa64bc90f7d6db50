"""What every test module may share: the test secret, the PostgreSQL admin URL, emptying the tables,
the token factory's type."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from sqlalchemy import text

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
