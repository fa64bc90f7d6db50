"""The user's search (filters) and the caller's security scope, kept apart.

The scope is the security restriction derived from the token; filters are untrusted input.
Every query is `scope AND filters`, so no filter can widen what a caller sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, select, true
from sqlmodel import Session, col

from audit_app.auth import ForbiddenError, Principal
from audit_app.models import AuditLog, Tenant, utc

SYSTEM_TENANT = "platform"


@dataclass(frozen=True)
class AuditFilters:
    """The documented filters of the list endpoint; each is an exact match when set."""

    tenant_id: str | None = None
    partner_id: str | None = None
    actor_id: str | None = None
    actor_email: str | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    result: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    ip_address: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("start_time", "end_time"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, utc(value))

    def active(self) -> dict[str, Any]:
        """The filters that are set, as JSON-ready values (for logs, file names, URLs)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if value is None or value == "":
                continue
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        return out

    def replace(self, **changes: Any) -> AuditFilters:
        """A copy with some filters changed."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return AuditFilters(**values)


TIME_FILTERS: tuple[str, ...] = ("start_time", "end_time")
TEXT_FILTERS: tuple[str, ...] = tuple(f.name for f in fields(AuditFilters) if f.name not in TIME_FILTERS)
"""The text filters, in the order of AuditFilters (forms and URLs list them so)."""
EXACT_MATCH_COLUMNS: tuple[str, ...] = tuple(name for name in TEXT_FILTERS if name != "partner_id")
"""Filters that compare one column for equality; `partner_id` means every tenant of a partner."""


def tenants_of_partner(partner_id: str) -> Any:
    """A subquery of the ids of every tenant owned by `partner_id`."""
    return select(col(Tenant.id)).where(col(Tenant.partner_id) == partner_id)


def scope_condition(principal: Principal, tenant_column: Any = None) -> ColumnElement[bool]:
    """The rows `principal` may see, whatever it filters on.

    `tenant_column` applies the same scope to another table keyed by tenant (the daily counts).
    """
    tenant: Any = col(AuditLog.tenant_id) if tenant_column is None else tenant_column
    if principal.role == "super_admin":
        return true()
    if principal.role == "partner_admin" and principal.partner_id:
        return tenant.in_(tenants_of_partner(principal.partner_id))  # type: ignore[no-any-return]
    if principal.role == "tenant_admin" and principal.tenant_id:
        return tenant == principal.tenant_id  # type: ignore[no-any-return]
    return false()


def filter_conditions(filters: AuditFilters) -> list[ColumnElement[bool]]:
    """The SQL conditions of the user's filters (exact matches; start inclusive, end exclusive)."""
    conditions: list[ColumnElement[bool]] = []
    for name in EXACT_MATCH_COLUMNS:
        value = getattr(filters, name)
        if value is not None and value != "":
            conditions.append(getattr(AuditLog, name) == value)
    if filters.partner_id:
        conditions.append(AuditLog.tenant_id.in_(tenants_of_partner(filters.partner_id)))  # type: ignore[attr-defined]
    if filters.start_time is not None:
        conditions.append(AuditLog.timestamp >= filters.start_time)  # type: ignore[arg-type]
    if filters.end_time is not None:
        conditions.append(AuditLog.timestamp < filters.end_time)  # type: ignore[arg-type]
    return conditions


def tenant_partner(session: Session, tenant_id: str) -> str | None:
    """The partner owning `tenant_id`, None when it has none or is unknown."""
    return session.execute(select(col(Tenant.partner_id)).where(col(Tenant.id) == tenant_id)).scalar()


def tenant_in_scope(session: Session, principal: Principal, tenant_id: str) -> bool:
    """Whether `principal` may see events of `tenant_id`."""
    if principal.role == "super_admin":
        return True
    if principal.role == "tenant_admin":
        return tenant_id == principal.tenant_id
    owner = tenant_partner(session, tenant_id)
    return owner is not None and owner == principal.partner_id


def check_filters_in_scope(session: Session, principal: Principal, filters: AuditFilters) -> None:
    """Refuse (403) a filter that names a tenant or partner outside the caller's scope."""
    if filters.tenant_id and not tenant_in_scope(session, principal, filters.tenant_id):
        raise ForbiddenError("The requested tenant is outside your scope.")
    if filters.partner_id and principal.role != "super_admin":
        if principal.role == "partner_admin" and filters.partner_id != principal.partner_id:
            raise ForbiddenError("The requested partner is outside your scope.")
        if principal.role == "tenant_admin":
            owner = tenant_partner(session, principal.tenant_id or "")
            if owner != filters.partner_id:
                raise ForbiddenError("The requested partner is outside your scope.")


def where_clause(session: Session, principal: Principal, filters: AuditFilters) -> list[ColumnElement[bool]]:
    """Scope and filters together, after checking that the filters stay within the scope."""
    check_filters_in_scope(session, principal, filters)
    return [scope_condition(principal), *filter_conditions(filters)]


def visible_tenants(session: Session, principal: Principal) -> list[Tenant]:
    """The tenants `principal` may see, sorted by id (for pickers)."""
    stmt = select(Tenant).order_by(Tenant.id)  # type: ignore[arg-type]
    if principal.role == "partner_admin":
        stmt = stmt.where(Tenant.partner_id == principal.partner_id)  # type: ignore[arg-type]
    elif principal.role == "tenant_admin":
        stmt = stmt.where(Tenant.id == principal.tenant_id)  # type: ignore[arg-type]
    return list(session.execute(stmt).scalars().all())


def visible_partners(session: Session, principal: Principal) -> list[str]:
    """The partners owning the tenants `principal` may see, sorted (for pickers)."""
    partners = {tenant.partner_id for tenant in visible_tenants(session, principal) if tenant.partner_id}
    return sorted(partners)
