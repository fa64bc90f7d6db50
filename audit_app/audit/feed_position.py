"""The feed's commit-ordered position: how ingest assigns it and how far a reader may serve it.

A position may be served only once no transaction can still commit a row at or below it
(docs/feed.md). PostgreSQL: a row's position is its writing transaction's id, and a reader
serves positions below the oldest transaction still running in its own statement's snapshot
(`pg_snapshot_xip`) - every transaction with a smaller id has committed or aborted. Transactions
seen running in another database of the cluster cannot write here and are left out, so a long
job elsewhere does not hold the feed back; one that cannot be placed counts (only delays).
SQLite: one writer at a time, so the position is `max + 1` taken under the write lock, commit
order is position order, and everything a reader sees is final.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, select, true
from sqlmodel import Session, col

from audit_app.models import AuditLog

PG_XACT_ID = "pg_current_xact_id()::text::bigint"
PG_HORIZON = """(
SELECT least(
  pg_snapshot_xmax(snap)::text::bigint,
  (SELECT min(running::text::bigint) FROM pg_snapshot_xip(snap) AS running
   WHERE running::text::bigint % 4294967296 NOT IN (
     SELECT backend_xid::text::bigint FROM pg_stat_activity
     WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database())))
FROM pg_current_snapshot() AS snap)"""
"""The first position not yet final: the statement's snapshot's xmax, or the smallest id in its
list of running transactions that is not seen running in another database (`least` skips NULL)."""


def assign_position(session: Session) -> int:
    """The position of the rows this transaction writes; call it after the transaction's first write.

    One statement per batch: every row of a batch shares the position (ties are ordered by id).
    """
    if session.get_bind().dialect.name == "postgresql":
        return int(session.execute(select(literal_column(PG_XACT_ID))).scalar_one())
    latest = session.execute(select(func.coalesce(func.max(col(AuditLog.feed_pos)), 0))).scalar_one()
    return int(latest) + 1


def served(session: Session) -> ColumnElement[bool]:
    """The condition keeping only final positions (those no running transaction can still write)."""
    if session.get_bind().dialect.name == "postgresql":
        horizon: Any = literal_column(PG_HORIZON)
        return col(AuditLog.feed_pos) < horizon  # type: ignore[no-any-return]
    return true()
