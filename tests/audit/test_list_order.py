"""The list in both time orders: offset pages and keyset cursors walk the same sequence (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import ingest_events
from audit_app.audit.query import list_events
from audit_app.models import AuditEventIn
from tests.principals import ACME, SUPER

START = datetime(2026, 3, 1, 9, tzinfo=UTC)


@pytest.fixture
def stored(session: Session) -> list[str]:
    """Seven acme events (two pairs share a timestamp) and one globex event; ids in oldest-first order."""
    minutes = [0, 1, 1, 2, 3, 3, 5]
    events = [
        AuditEventIn(
            tenant_id="acme",
            actor_id=f"usr_{i}",
            action="user.login",
            result="success",
            timestamp=START + timedelta(minutes=m),
        )
        for i, m in enumerate(minutes)
    ]
    events.append(AuditEventIn(tenant_id="globex", actor_id="usr_g", action="user.login", timestamp=START))
    ingest_events(session, events)
    session.commit()
    page = list_events(session, ACME, AuditFilters(), per_page=100)
    return [row.id for row in reversed(page.items)]


def _walk_offsets(session: Session, order: str, per_page: int) -> list[str]:
    first = list_events(session, ACME, AuditFilters(), per_page=per_page, order=order)
    seen = [row.id for row in first.items]
    for number in range(2, first.pages + 1):
        seen += [
            row.id
            for row in list_events(session, ACME, AuditFilters(), page=number, per_page=per_page, order=order).items
        ]
    return seen


def _walk_cursors(session: Session, order: str, per_page: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = list_events(session, ACME, AuditFilters(), per_page=per_page, cursor=cursor, order=order)
        seen += [row.id for row in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


@pytest.mark.parametrize("per_page", [1, 2, 3])
def test_oldest_first_is_the_exact_reverse_by_offset_and_by_cursor(
    session: Session, stored: list[str], per_page: int
) -> None:
    assert len(stored) == 7
    assert _walk_offsets(session, "asc", per_page) == stored
    assert _walk_cursors(session, "asc", per_page) == stored
    assert _walk_offsets(session, "desc", per_page) == stored[::-1]
    assert _walk_cursors(session, "desc", per_page) == stored[::-1]


def test_oldest_first_keeps_filters_scope_and_total(session: Session, stored: list[str]) -> None:
    window = AuditFilters(start_time=START + timedelta(minutes=1), end_time=START + timedelta(minutes=4))
    page = list_events(session, ACME, window, per_page=2, order="asc")
    assert page.total == 5
    stamps = [row.timestamp for row in page.items]
    assert stamps == sorted(stamps)
    everyone = list_events(session, SUPER, AuditFilters(), per_page=100, order="asc")
    assert everyone.total == 8
    with pytest.raises(ValueError, match="order"):
        list_events(session, ACME, AuditFilters(), order="sideways")
