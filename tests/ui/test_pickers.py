"""The picker values and related-event filters the console relies on, per role, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import ingest_events
from audit_app.audit.query import list_events, list_results
from audit_app.audit.scope import Scope
from audit_app.auth import Principal
from audit_app.models import AuditEventIn
from audit_app.seed import TENANT_PARTNER
from tests.principals import ACME, SUPER

PARTNER = Principal(sub="p", email="p@x", role="partner_admin", partner_id="bluesky")


def _load(session: Session) -> None:
    events = [
        AuditEventIn(
            tenant_id=tenant,
            partner_id=TENANT_PARTNER[tenant],
            actor_id=f"usr_{tenant}",
            action="user.login",
            result=result,
            request_id=f"req_{tenant}",
            timestamp=datetime(2026, 4, 1, tzinfo=UTC),
        )
        for tenant, result in (("acme", "success"), ("wayne", "denied"), ("tyrell", "error"))
    ]
    ingest_events(session, events)
    session.commit()


def test_pickers_offer_only_the_scope(session: Session) -> None:
    _load(session)
    assert Scope.of(SUPER).tenant_ids(session) == ["acme", "tyrell", "wayne"]
    assert Scope.of(PARTNER).tenant_ids(session) == ["wayne"]
    assert Scope.of(ACME).tenant_ids(session) == ["acme"]
    assert Scope.of(SUPER).partner_ids(session) == ["bluesky", "northwind", "redwood"]
    assert Scope.of(PARTNER).partner_ids(session) == ["bluesky"]
    assert Scope.of(ACME).partner_ids(session) == ["northwind"]
    assert list_results(session, SUPER) == ["denied", "error", "success"]
    assert list_results(session, ACME) == ["success"]


def test_request_filter_stays_in_scope(session: Session) -> None:
    _load(session)
    assert list_events(session, SUPER, AuditFilters(request_id="req_wayne")).total == 1
    assert list_events(session, ACME, AuditFilters(request_id="req_wayne")).total == 0
    assert list_events(session, ACME, AuditFilters(request_id="req_acme")).total == 1
