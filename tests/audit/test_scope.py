"""The caller's scope (audit/scope.py): one answer per principal, whichever path asks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import authorize_ingest, ingest_events
from audit_app.audit.integrity import tenants_to_verify
from audit_app.audit.query import count_events, get_event, list_actions, list_events
from audit_app.audit.retention import retention_settings
from audit_app.audit.scope import Scope
from audit_app.audit.stats import compute_stats
from audit_app.auth import ForbiddenError, Principal
from audit_app.models import AuditEventIn
from tests.principals import ACME, NORTHWIND, SUPER, UNBOUND_PARTNER, UNBOUND_TENANT


def _load(session: Session) -> list[str]:
    """acme and globex of northwind, wayne of bluesky, and `orphan` with no partner at all."""
    owners = {"acme": "northwind", "globex": "northwind", "wayne": "bluesky", "orphan": None}
    ids = ingest_events(
        session,
        [
            AuditEventIn(
                tenant_id=tenant,
                partner_id=partner,
                actor_id=f"usr_{tenant}",
                action=f"{tenant}.login",
                timestamp=datetime(2026, 4, 1, tzinfo=UTC),
            )
            for tenant, partner in owners.items()
        ],
    )
    session.commit()
    return ids


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        (SUPER, ["acme", "globex", "orphan", "wayne"]),
        (NORTHWIND, ["acme", "globex"]),
        (ACME, ["acme"]),
        (UNBOUND_PARTNER, []),
        (UNBOUND_TENANT, []),
    ],
)
def test_every_path_sees_the_same_tenants(session: Session, principal: Principal, expected: list[str]) -> None:
    ids = _load(session)
    scope = Scope.of(principal)
    assert scope.tenant_ids(session) == expected
    assert [tenant.id for tenant in scope.tenants(session)] == expected
    assert [t for t in ("acme", "globex", "orphan", "wayne") if scope.contains(session, t)] == expected
    listed = list_events(session, principal, AuditFilters(), per_page=10)
    assert sorted(row.tenant_id for row in listed.items) == expected
    assert count_events(session, principal, AuditFilters()) == len(expected)
    assert list_actions(session, principal) == [f"{tenant}.login" for tenant in expected]
    assert sorted(event_id for event_id in ids if get_event(session, principal, event_id)) == sorted(
        event_id
        for event_id, tenant in zip(ids, ("acme", "globex", "wayne", "orphan"), strict=True)
        if tenant in expected
    )
    assert compute_stats(session, principal, AuditFilters())["total"] == len(expected)
    assert tenants_to_verify(session, principal) == expected
    assert [policy.tenant_id for policy in retention_settings(session, principal).tenants] == expected


def test_a_partner_admin_without_a_partner_sees_no_partnerless_tenant(session: Session) -> None:
    """The old picker query turned `partner_id == None` into IS NULL and offered `orphan`."""
    _load(session)
    scope = Scope.of(UNBOUND_PARTNER)
    assert scope.is_empty
    assert scope.tenant_ids(session) == []
    assert scope.partner_ids(session) == []
    with pytest.raises(ForbiddenError):
        scope.check_named(session, tenant_id="orphan")
    with pytest.raises(ForbiddenError):
        authorize_ingest(session, UNBOUND_PARTNER, [AuditEventIn(tenant_id="orphan", actor_id="a", action="x")])


def test_named_tenants_and_partners_outside_the_scope_are_refused(session: Session) -> None:
    _load(session)
    Scope.of(ACME).check_named(session, tenant_id="acme", partner_id="northwind")
    Scope.of(NORTHWIND).check_named(session, tenant_id="globex", partner_id="northwind")
    Scope.of(SUPER).check_named(session, tenant_id="anything", partner_id="anyone")
    for principal, tenant_id, partner_id in (
        (ACME, "globex", None),
        (ACME, None, "bluesky"),
        (NORTHWIND, "wayne", None),
        (NORTHWIND, "orphan", None),
        (NORTHWIND, None, "bluesky"),
    ):
        with pytest.raises(ForbiddenError):
            Scope.of(principal).check_named(session, tenant_id=tenant_id, partner_id=partner_id)
