"""The tenant registry: which tenants exist and the partner owning each, changed only by a super admin.

Partner and tenant admins write only into registered tenants of their scope; a super admin
registers a tenant (`register_tenant`, `PUT /api/v1/admin/tenants/{tenant_id}`, `python -m
audit_app tenant add`), and its own ingestion may register new tenants by naming them with
their partner (`ingest.register_tenants`; recorded as `tenant.create` too). Creating
a tenant and changing its partner are recorded in the tenant's own chain (`tenant.create`,
`tenant.partner_change`, with from/to in `details.changes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import Session, col

from audit_app.audit.ingest import TENANT_CREATE, insert_tenants, record_access
from audit_app.audit.scope import Scope
from audit_app.auth import Principal
from audit_app.models import Tenant

TENANT_PARTNER_CHANGE = "tenant.partner_change"


@dataclass(frozen=True)
class Registration:
    """The outcome of registering a tenant: whether it was created or moved, and the event saying so."""

    tenant_id: str
    partner_id: str | None
    created: bool
    previous_partner_id: str | None = None
    event_id: str | None = None

    @property
    def changed(self) -> bool:
        """Whether anything changed (a new tenant, or another partner)."""
        return self.event_id is not None


def register_tenant(session: Session, principal: Principal, tenant_id: str, partner_id: str | None) -> Registration:
    """Register `tenant_id` as owned by `partner_id` (None: no partner), or move it to that partner.

    Super admins only (ForbiddenError otherwise). The change and its event commit together;
    registering a tenant as it already is changes nothing and records nothing.
    """
    Scope.of(principal).require_everything("Only a super admin may register tenants or change their partner.")
    try:
        created = bool(insert_tenants(session, {tenant_id: partner_id}))
        previous: str | None = None
        if not created:
            row = session.get(Tenant, tenant_id, with_for_update=True)
            previous = row.partner_id if row else None
            if previous == partner_id:
                session.rollback()
                return Registration(tenant_id, partner_id, created=False, previous_partner_id=previous)
            session.execute(update(Tenant).where(col(Tenant.id) == tenant_id).values(partner_id=partner_id))
        event_id = record_access(
            session,
            principal,
            TENANT_CREATE if created else TENANT_PARTNER_CHANGE,
            tenant_id=tenant_id,
            resource_type="tenant",
            resource_id=tenant_id,
            details={"changes": {"partner_id": {"from": previous, "to": partner_id}}},
            commit=False,
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return Registration(tenant_id, partner_id, created, previous_partner_id=previous, event_id=event_id)


def list_tenants(session: Session, principal: Principal) -> Sequence[Tenant]:
    """The registered tenants `principal` may see, sorted by id."""
    return Scope.of(principal).tenants(session)
