"""The end of the feed, where a live tail starts: only later events of the scope follow (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from audit_app.audit.feed import FeedCursor, feed_end, read_feed
from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import ingest_events
from audit_app.models import AuditEventIn
from tests.principals import ACME, SUPER


def _store(session: Session, *tenants: str) -> list[str]:
    events = [
        AuditEventIn(tenant_id=t, actor_id="usr_1", action="user.login", timestamp=datetime.now(UTC)) for t in tenants
    ]
    ids = ingest_events(session, events)
    session.commit()
    return ids


def test_feed_end_follows_only_new_events_of_the_scope(session: Session) -> None:
    assert feed_end(session, ACME) == FeedCursor()  # nothing stored yet: from the start
    _store(session, "acme", "globex", "acme")
    batch = _store(session, "acme", "globex")  # one position; ties are ordered by id
    end = feed_end(session, ACME)
    assert read_feed(session, ACME, AuditFilters(), end, 100).items == []
    assert feed_end(session, SUPER).event_id == max(batch)
    later = _store(session, "globex", "acme", "acme")
    page = read_feed(session, ACME, AuditFilters(), end, 100)
    assert sorted(row.id for row in page.items) == sorted(later[1:])
    assert read_feed(session, ACME, AuditFilters(), page.next, 100).items == []
