"""Integrity and retention endpoints: chain verification and retention settings, over `audit_app.audit`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from audit_app.api.deps import AdminPrincipal, CurrentPrincipal, ReaderPrincipal, SessionDep
from audit_app.audit.integrity import verify_chains
from audit_app.audit.retention import (
    MAX_RETENTION_DAYS,
    UNSET,
    UnregisteredTenantError,
    retention_settings,
    set_default_retention,
    set_tenant_retention,
)

FULL_HELP = (
    "walk every link from each chain's start, not only those since its last verification (super admin: 403 else)"
)
router = APIRouter(prefix="/api/v1/admin/audit", tags=["Audit integrity"])
TenantId = Annotated[str | None, Query(min_length=1, max_length=255, pattern=r"^[^\x00]*$")]


class BrokenLinkOut(BaseModel):
    """The first link that does not hold."""

    tenant_id: str
    event_id: str | None
    chain_seq: int
    check: str = Field(description="hash, prev_hash, chain_seq or head")
    expected: str
    found: str
    message: str


class ChainOut(BaseModel):
    """One tenant's chain."""

    tenant_id: str
    ok: bool
    events_checked: int
    first_seq: int
    head_seq: int
    head_hash: str
    resumed_after_seq: int | None = Field(
        description="the remembered verified link this run re-checked and walked on from; null = from the chain's start"
    )


class VerifyOut(BaseModel):
    """The result of a verification run."""

    ok: bool
    events_checked: int
    tenants_checked: int
    first_broken: BrokenLinkOut | None
    chains: list[ChainOut]
    audit_event_id: str | None


class TenantPolicyOut(BaseModel):
    """The retention of one tenant."""

    tenant_id: str
    days: int | None = Field(description="the tenant's own retention; null = the default")
    effective_days: int | None = Field(description="what applies; null = kept forever")
    legal_hold: bool


class RetentionOut(BaseModel):
    """The platform default and the tenants in the caller's scope."""

    default_days: int | None
    tenants: list[TenantPolicyOut]


class DefaultRetentionIn(BaseModel):
    """A new platform default (null = keep forever)."""

    model_config = ConfigDict(extra="forbid")

    days: int | None = Field(ge=1, le=MAX_RETENTION_DAYS)


class TenantRetentionIn(BaseModel):
    """A tenant's own retention and/or legal hold; omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    days: int | None = Field(default=None, ge=1, le=MAX_RETENTION_DAYS, description="null = use the default")
    legal_hold: bool | None = None


def _client(request: Request) -> tuple[str | None, str | None]:
    return (request.client.host if request.client else None), request.headers.get("user-agent")


@router.get("/verify", summary="Verify Audit Chains")
def verify_audit_chains(
    request: Request,
    session: SessionDep,
    principal: ReaderPrincipal,
    tenant_id: TenantId = None,
    full: Annotated[bool, Query(description=FULL_HELP)] = False,
) -> VerifyOut:
    """Walk the hash chains of the caller's tenants (or one of them) and report the first broken link.

    Only the links appended since each chain's last verification are walked (after re-checking
    the remembered link) unless `full=true`. 429 with Retry-After while another verification
    holds one of the chains.
    """
    address, user_agent = _client(request)
    report = verify_chains(session, principal, tenant_id, full=full, ip_address=address, user_agent=user_agent)
    broken = report.first_broken
    return VerifyOut(
        ok=report.ok,
        events_checked=report.events_checked,
        tenants_checked=report.tenants_checked,
        first_broken=BrokenLinkOut.model_validate(broken, from_attributes=True) if broken else None,
        chains=[
            ChainOut(
                tenant_id=chain.tenant_id,
                ok=chain.ok,
                events_checked=chain.events_checked,
                first_seq=chain.first_seq,
                head_seq=chain.head_seq,
                head_hash=chain.head_hash,
                resumed_after_seq=chain.resumed_after,
            )
            for chain in report.chains
        ],
        audit_event_id=report.event_id,
    )


def _retention_out(session: SessionDep, principal: CurrentPrincipal) -> RetentionOut:
    current = retention_settings(session, principal)
    return RetentionOut(
        default_days=current.default_days,
        tenants=[TenantPolicyOut.model_validate(policy, from_attributes=True) for policy in current.tenants],
    )


@router.get("/retention", summary="Get Retention Settings")
def get_retention(session: SessionDep, principal: ReaderPrincipal) -> RetentionOut:
    """The platform default retention and the retention and legal hold of each tenant in scope."""
    return _retention_out(session, principal)


@router.put("/retention", summary="Set Default Retention")
def put_default_retention(session: SessionDep, principal: AdminPrincipal, body: DefaultRetentionIn) -> RetentionOut:
    """Set the platform default retention (super admin); the change is audited."""
    set_default_retention(session, principal, body.days)
    return _retention_out(session, principal)


@router.put("/retention/tenants/{tenant_id}", summary="Set Tenant Retention")
def put_tenant_retention(
    session: SessionDep, principal: AdminPrincipal, tenant_id: str, body: TenantRetentionIn
) -> TenantPolicyOut:
    """Set a tenant's own retention and/or legal hold (super admin); the change is audited."""
    if not 0 < len(tenant_id) <= 255 or "\x00" in tenant_id:
        raise HTTPException(status_code=422, detail="tenant_id must be 1 to 255 characters without NUL.")
    try:
        policy = set_tenant_retention(
            session,
            principal,
            tenant_id,
            days=body.days if "days" in body.model_fields_set else UNSET,
            legal_hold=body.legal_hold,
        )
    except UnregisteredTenantError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("path", "tenant_id"), "msg": f"Value error, {exc}", "input": tenant_id}]
        ) from None
    return TenantPolicyOut.model_validate(policy, from_attributes=True)
