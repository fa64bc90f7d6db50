"""How events are shown in the console: table rows, drawer fields, change diffs, related links."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from audit_app.audit.query import ListedEvent
from audit_app.models import AuditLog
from audit_app.ui.url_filters import events_href

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
AROUND = timedelta(minutes=5)
"""How far either side of an event "Events around this one" looks."""
COPYABLE = {
    "Event ID": "event id",
    "Actor ID": "actor id",
    "Resource ID": "resource id",
    "IP address": "IP address",
    "Request ID": "request id",
    "Session ID": "session id",
    "Hash": "hash",
    "Previous hash": "previous hash",
}
"""Drawer fields with a copy button, and what the button's name calls them ("Copy event id")."""


def show_time(value: datetime | None, zone: tzinfo = UTC) -> str:
    """A time in 24-hour form in `zone` (UTC unless given), as `2026-05-01 09:30:12`."""
    if not value:
        return ""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(zone).strftime(TIME_FORMAT)


def ago(value: datetime | None, now: datetime) -> str:
    """How long before `now` a time was, in words: "just now", "5 min ago", "3 days ago"."""
    if not value:
        return ""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    seconds = int((now - aware).total_seconds())
    if seconds < 0:
        return "in the future"
    for size, unit in ((86400 * 365, "year"), (86400 * 30, "month"), (86400, "day"), (3600, "hour"), (60, "min")):
        if seconds >= size:
            count = seconds // size
            plural = "s" if count != 1 and unit != "min" else ""
            return f"{count} {unit}{plural} ago"
    return "just now"


def event_row(event: AuditLog | ListedEvent, zone: tzinfo = UTC, now: datetime | None = None) -> dict[str, str]:
    """One results-table row: display strings only (times in `zone`, with how long ago as of `now`)."""
    return {
        "id": event.id,
        "time": show_time(event.timestamp, zone),
        "ago": ago(event.timestamp, now or datetime.now(UTC)),
        "utc": show_time(event.timestamp) + " UTC",
        "tenant_id": event.tenant_id,
        "actor_id": event.actor_id,
        "actor": event.actor_email or event.actor_id,
        "actor_type": event.actor_type,
        "action": event.action,
        "resource_type": event.resource_type or "",
        "resource_id": event.resource_id or "",
        "resource": "/".join(part for part in (event.resource_type, event.resource_id) if part),
        "result": event.result,
        "ip_address": event.ip_address or "",
    }


def event_fields(event: AuditLog, zone: tzinfo = UTC) -> list[dict[str, str]]:
    """Every field of an event as label/value pairs for the drawer (times in UTC, and in `zone` too)."""
    local = [] if str(zone) == "UTC" else [(f"Time ({zone})", show_time(event.timestamp, zone))]
    pairs = [
        ("Event ID", event.id),
        *local,
        ("Time (UTC)", show_time(event.timestamp)),
        ("Tenant", event.tenant_id),
        ("Partner", event.partner_id),
        ("Actor ID", event.actor_id),
        ("Actor email", event.actor_email),
        ("Actor type", event.actor_type),
        ("Action", event.action),
        ("Resource type", event.resource_type),
        ("Resource ID", event.resource_id),
        ("Result", event.result),
        ("IP address", event.ip_address),
        ("User agent", event.user_agent),
        ("Request ID", event.request_id),
        ("Session ID", event.session_id),
        ("Ingested (UTC)", show_time(event.ingested_at)),
        ("Chain position", str(event.chain_seq)),
        ("Hash", event.hash),
        ("Previous hash", event.prev_hash),
    ]
    return [
        {"label": label, "value": value or "—", "copy": COPYABLE.get(label, "") if value else ""}
        for label, value in pairs
    ]


def raw_event(event: AuditLog) -> str:
    """The whole stored event as indented JSON (what the drawer's "Raw JSON" tab shows)."""
    return json.dumps(event.model_dump(mode="json"), indent=2, ensure_ascii=False)


def around_href(event: AuditLog) -> str:
    """The events of the same tenant within AROUND either side of `event` (whole minutes, UTC)."""
    stamp = event.timestamp if event.timestamp.tzinfo else event.timestamp.replace(tzinfo=UTC)
    start = (stamp - AROUND).astimezone(UTC).replace(second=0, microsecond=0)
    end = (stamp + AROUND).astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    minute = "%Y-%m-%dT%H:%M"
    return events_href(tenant_id=event.tenant_id, start_time=start.strftime(minute), end_time=end.strftime(minute))


def _show_value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def change_rows(details: dict[str, Any]) -> list[dict[str, str]]:
    """`details.changes` ({field: {from, to}} or {field: {old, new}}) as before/after rows."""
    changes = details.get("changes") if isinstance(details, dict) else None
    if not isinstance(changes, dict):
        return []
    rows = []
    for name, change in changes.items():
        if isinstance(change, dict) and ({"from", "to"} & change.keys() or {"old", "new"} & change.keys()):
            before = change.get("from", change.get("old"))
            after = change.get("to", change.get("new"))
        else:
            before, after = None, change
        rows.append({"field": str(name), "before": _show_value(before), "after": _show_value(after)})
    return rows


def pretty_details(details: dict[str, Any]) -> str:
    """The `details` JSON, indented and key-sorted."""
    return json.dumps(details or {}, indent=2, sort_keys=True, ensure_ascii=False)


def related_links(event: AuditLog, window: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """Links to the events sharing this one's actor, resource, request or IP address.

    `window` (URL parameters of the current time window) is kept on every link.
    """
    kept = dict(window or {})
    links = [
        ("Same actor", event.actor_email or event.actor_id, events_href(actor_id=event.actor_id, **kept)),
        (
            "Same resource",
            "/".join(p for p in (event.resource_type, event.resource_id) if p),
            events_href(resource_type=event.resource_type, resource_id=event.resource_id, **kept)
            if event.resource_id
            else "",
        ),
        (
            "Same request",
            event.request_id or "",
            events_href(request_id=event.request_id, **kept) if event.request_id else "",
        ),
        ("Same IP address", event.ip_address or "", events_href(ip_address=event.ip_address, **kept)),
    ]
    return [{"label": label, "value": value, "href": href} for label, value, href in links if href and value]
