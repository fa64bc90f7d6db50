"""The feed's commit-ordered position: how ingest assigns it and how far a reader may serve it.

A position may be served only once no transaction can still commit a row at or below it
(docs/feed.md). PostgreSQL: a row's position is its writing transaction's id, and a reader
serves positions below `pg_snapshot_xmin` of its own statement's snapshot - every transaction
with a smaller id has committed or aborted. SQLite: one writer at a time, so the position is
`max + 1` taken under the write lock, commit order is position order, and everything a reader
sees is final.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, select, true
from sqlmodel import Session, col

from audit_app.models import AuditLog

PG_XACT_ID = "pg_current_xact_id()::text::bigint"
PG_HORIZON = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


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
