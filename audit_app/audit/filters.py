"""The user's search (filters), applied on top of the caller's scope (`audit.scope`).

The scope is the security restriction derived from the token; filters are untrusted input.
Every query is `scope AND filters`, so no filter can widen what a caller sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import Session, col

from audit_app.audit.scope import Scope, tenants_of_partner
from audit_app.auth import Principal
from audit_app.models import AuditLog, utc

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


def filter_conditions(filters: AuditFilters) -> list[ColumnElement[bool]]:
    """The SQL conditions of the user's filters (exact matches; start inclusive, end exclusive)."""
    conditions: list[ColumnElement[bool]] = []
    for name in EXACT_MATCH_COLUMNS:
        value = getattr(filters, name)
        if value is not None and value != "":
            conditions.append(col(getattr(AuditLog, name)) == value)
    if filters.partner_id:
        conditions.append(col(AuditLog.tenant_id).in_(tenants_of_partner(filters.partner_id)))
    if filters.start_time is not None:
        conditions.append(col(AuditLog.timestamp) >= filters.start_time)
    if filters.end_time is not None:
        conditions.append(col(AuditLog.timestamp) < filters.end_time)
    return conditions


def check_filters_in_scope(session: Session, principal: Principal, filters: AuditFilters) -> None:
    """Refuse (403) a filter that names a tenant or partner outside the caller's scope."""
    Scope.of(principal).check_named(session, filters.tenant_id, filters.partner_id)


def where_clause(session: Session, principal: Principal, filters: AuditFilters) -> list[ColumnElement[bool]]:
    """Scope and filters together, after checking that the filters stay within the scope (403)."""
    check_filters_in_scope(session, principal, filters)
    return [Scope.of(principal).condition(), *filter_conditions(filters)]
