"""Test helpers for tests/trust: writing events, and tampering with the database as an attacker would."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from audit_app.audit.ingest import ingest_events
from audit_app.db import engine_for
from audit_app.models import AuditEventIn, AuditLog


def write(
    session: Session, tenant: str, count: int, *, partner: str | None = None, when: datetime | None = None
) -> list[str]:
    """Append `count` events to `tenant`'s chain (one transaction) and return their ids in order."""
    events = [
        AuditEventIn(
            tenant_id=tenant,
            partner_id=partner,
            actor_id=f"user-{i}",
            action="user.login",
            timestamp=when,
            details={"n": i, "note": "x"},
        )
        for i in range(count)
    ]
    ids = ingest_events(session, events)
    session.commit()
    return ids


def chain_ids(session: Session, tenant: str) -> list[str]:
    """The ids of `tenant`'s events in chain order."""
    stmt = select(AuditLog.id).where(AuditLog.tenant_id == tenant).order_by(col(AuditLog.chain_seq))
    return list(session.exec(stmt).all())


def tamper(url: str, *statements: str, **params: Any) -> None:
    """Run SQL with the append-only guards switched off, as someone with database access can."""
    engine = engine_for(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))  # skips ordinary triggers
            for statement in statements:
                conn.execute(text(statement), params)
            return
        triggers = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name IN ('audit_log', 'purge_checkpoint')"
            )
        ).all()
        for name, _sql in triggers:
            conn.execute(text(f"DROP TRIGGER {name}"))
        try:
            for statement in statements:
                conn.execute(text(statement), params)
        finally:
            for _name, sql in triggers:
                conn.execute(text(sql))
