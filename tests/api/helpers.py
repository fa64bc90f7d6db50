"""What the API tests share: the list URL, a small world of tenants and events, bearer headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from audit_app.audit.ingest import ingest_events
from audit_app.models import AuditEventIn

LIST = "/api/v1/admin/audit/"


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A UTC instant in March 2026."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


# tenant -> partner: northwind owns acme and globex, southwind owns initech, umbrella has none.
PARTNERS = {"acme": "northwind", "globex": "northwind", "initech": "southwind", "umbrella": None}


def event(tenant: str, when: datetime, **fields: Any) -> AuditEventIn:
    """An event of `tenant` at `when` with sensible defaults."""
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "partner_id": PARTNERS.get(tenant),
        "actor_id": f"{tenant}-alice",
        "actor_email": f"alice@{tenant}.example",
        "action": "user.login",
        "resource_type": "session",
        "resource_id": f"sess-{tenant}",
        "result": "success",
        "ip_address": "10.0.0.1",
        "timestamp": when,
    }
    values.update(fields)
    return AuditEventIn(**values)


@dataclass
class World:
    """The events written for a test, by tenant, with their ids."""

    ids: dict[str, list[str]]

    def of(self, *tenants: str) -> set[str]:
        """The ids of the events of `tenants`."""
        return {event_id for tenant in tenants for event_id in self.ids[tenant]}

    @property
    def all(self) -> set[str]:
        return self.of(*self.ids)


def write(session: Session, events: list[AuditEventIn]) -> list[str]:
    """Write events directly through the domain (test set-up)."""
    ids = ingest_events(session, events)
    session.commit()
    return ids


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of `token`."""
    return {"Authorization": f"Bearer {token}"}


def ids_of(body: dict[str, Any]) -> set[str]:
    """The ids of a list response's items."""
    return {item["id"] for item in body["items"]}
