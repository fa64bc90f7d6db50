"""Query parameters of the audit endpoints, validated into AuditFilters (422 on bad input)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from audit_app.audit.filters import AuditFilters
from audit_app.models import utc

PartnerQuery = Annotated[str | None, Query(description="Filter by partner (all tenants in partner)")]
# Extensions of the reference (documented in the README): optional, after the documented parameters.
RequestIdQuery = Annotated[str | None, Query(description="Only events of this request (correlation id)")]
StatsPartnerQuery = Annotated[str | None, Query(description="Only the tenants of this partner")]


def _error(name: str, value: Any, message: str) -> dict[str, Any]:
    return {"type": "value_error", "loc": ("query", name), "msg": message, "input": value}


def validated_filters(**values: Any) -> AuditFilters:
    """AuditFilters from query values, or RequestValidationError naming each bad parameter.

    Text the database cannot compare (NUL characters), instants outside the representable range
    and a window that ends before it starts are the caller's mistakes, not server errors.
    """
    errors: list[dict[str, Any]] = []
    clean: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, str) and "\x00" in value:
            errors.append(_error(name, value, "Value error, must not contain NUL characters"))
        elif isinstance(value, datetime):
            try:
                clean[name] = utc(value)
            except (OverflowError, ValueError):
                errors.append(_error(name, value.isoformat(), "Value error, is outside the supported time range"))
        else:
            clean[name] = value
    start, end = clean.get("start_time"), clean.get("end_time")
    if start is not None and end is not None and start > end:
        errors.append(_error("start_time", values["start_time"].isoformat(), "Value error, is after end_time"))
    if errors:
        raise RequestValidationError(errors)
    return AuditFilters(**clean)


async def list_filters(
    tenant_id: str | None = None,
    partner_id: PartnerQuery = None,
    actor_id: str | None = None,
    actor_email: str | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    result: str | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    ip_address: str | None = None,
    request_id: RequestIdQuery = None,
) -> AuditFilters:
    """The documented filters of the list (and export) endpoint, plus `request_id`."""
    return validated_filters(
        tenant_id=tenant_id,
        partner_id=partner_id,
        actor_id=actor_id,
        actor_email=actor_email,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        result=result,
        start_time=start_time,
        end_time=end_time,
        ip_address=ip_address,
        request_id=request_id,
    )


async def stats_filters(
    tenant_id: str | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    partner_id: StatsPartnerQuery = None,
) -> AuditFilters:
    """The documented filters of the stats endpoint, plus `partner_id`."""
    return validated_filters(tenant_id=tenant_id, start_time=start_time, end_time=end_time, partner_id=partner_id)


async def feed_filters(
    tenant_id: str | None = None,
    partner_id: PartnerQuery = None,
    action: str | None = None,
    resource_type: str | None = None,
    result: str | None = None,
) -> AuditFilters:
    """The filters of the feed (exact matches; no time window: a feed is followed, not windowed)."""
    return validated_filters(
        tenant_id=tenant_id, partner_id=partner_id, action=action, resource_type=resource_type, result=result
    )
