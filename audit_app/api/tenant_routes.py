"""The tenant registry over HTTP: a super admin registers tenants and their partners; callers list theirs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from audit_app.api.deps import AdminPrincipal, ReaderPrincipal, ReadSessionDep, SessionDep
from audit_app.audit.tenants import list_tenants, register_tenant
from audit_app.models import Tenant

router = APIRouter(prefix="/api/v1/admin/tenants", tags=["Tenants"])
TenantIdPath = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[^\x00]*$")]


class TenantIn(BaseModel):
    """The partner that owns a tenant (null: no partner; only super admins and its own admins see it)."""

    model_config = ConfigDict(extra="forbid")

    partner_id: str | None = Field(min_length=1, max_length=255, pattern=r"^[^\x00]*$")


class TenantOut(BaseModel):
    """A registered tenant."""

    tenant_id: str
    partner_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        """The public form of a registry row."""
        return cls(tenant_id=tenant.id, partner_id=tenant.partner_id, created_at=tenant.created_at)


class TenantRegistration(TenantOut):
    """A tenant after `PUT`: whether it was created or moved to another partner, and the event recording it."""

    created: bool
    previous_partner_id: str | None = None
    audit_event_id: str | None = Field(description="the tenant.create or tenant.partner_change event; null = unchanged")


class TenantList(BaseModel):
    """The registered tenants in the caller's scope, sorted by id."""

    tenants: list[TenantOut]


@router.get("", summary="List Tenants")
def get_tenants(session: ReadSessionDep, principal: ReaderPrincipal) -> TenantList:
    """The registered tenants the caller may see, with their partners."""
    return TenantList(tenants=[TenantOut.of(tenant) for tenant in list_tenants(session, principal)])


@router.put("/{tenant_id}", summary="Register Tenant")
def put_tenant(
    session: SessionDep, principal: AdminPrincipal, tenant_id: TenantIdPath, body: TenantIn
) -> TenantRegistration:
    """Register a tenant with its partner, or move it to another partner (super admin); recorded as an event."""
    outcome = register_tenant(session, principal, tenant_id, body.partner_id)
    tenant = session.get_one(Tenant, tenant_id)
    return TenantRegistration(
        tenant_id=tenant.id,
        partner_id=tenant.partner_id,
        created_at=tenant.created_at,
        created=outcome.created,
        previous_partner_id=outcome.previous_partner_id,
        audit_event_id=outcome.event_id,
    )
