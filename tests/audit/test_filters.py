"""Filters: naive times are UTC, and named tenants and partners stay within the caller's scope (audit.filters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from audit_app.audit.filters import AuditFilters, check_filters_in_scope
from audit_app.audit.ingest import ingest_events
from audit_app.auth import (
    ForbiddenError,
)
from audit_app.models import AuditEventIn
from tests.principals import ACME, NORTHWIND, SUPER


def test_filters_take_naive_times_as_utc() -> None:
    filters = AuditFilters(start_time=datetime(2026, 3, 1, 12), end_time=datetime(2026, 3, 1, 14, tzinfo=UTC))
    assert filters.start_time == datetime(2026, 3, 1, 12, tzinfo=UTC)
    shifted = AuditFilters(start_time=datetime(2026, 3, 1, 12, tzinfo=UTC) + timedelta(hours=1))
    assert shifted.active() == {"start_time": "2026-03-01T13:00:00+00:00"}


def test_scope_checks_of_filters(session: Session) -> None:
    ingest_events(
        session,
        [
            AuditEventIn(tenant_id="acme", partner_id="northwind", actor_id="a", action="x"),
            AuditEventIn(tenant_id="initech", partner_id="southwind", actor_id="a", action="x"),
        ],
    )
    session.commit()
    check_filters_in_scope(session, NORTHWIND, AuditFilters(tenant_id="acme", partner_id="northwind"))
    check_filters_in_scope(session, ACME, AuditFilters(tenant_id="acme", partner_id="northwind"))
    check_filters_in_scope(session, SUPER, AuditFilters(tenant_id="anything", partner_id="anyone"))
    for principal, filters in (
        (NORTHWIND, AuditFilters(tenant_id="initech")),
        (NORTHWIND, AuditFilters(tenant_id="unknown")),
        (NORTHWIND, AuditFilters(partner_id="southwind")),
        (ACME, AuditFilters(tenant_id="initech")),
        (ACME, AuditFilters(partner_id="southwind")),
    ):
        with pytest.raises(ForbiddenError):
            check_filters_in_scope(session, principal, filters)
