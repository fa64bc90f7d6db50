"""API test fixtures: a client of a fresh app, and a small multi-tenant world of events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from audit_app.api import create_api
from audit_app.audit.ingest import ingest_events
from audit_app.models import AuditEventIn
from audit_app.settings import Settings
from tests.conftest import TokenFactory

LIST = "/api/v1/admin/audit/"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An HTTP client of a freshly built API on the test database."""
    with TestClient(create_api()) as test_client:
        yield test_client


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


@pytest.fixture
def world(session: Session) -> World:
    """Eleven events over four tenants and three days, with distinct actors, actions and results."""
    events = {
        "acme": [
            event("acme", at(1, 9)),
            event("acme", at(1, 10), action="role.assign", resource_type="role", resource_id="admin"),
            event("acme", at(2, 0), result="failure", ip_address="192.0.2.7"),
            event(
                "acme",
                at(3, 23, 59),
                actor_id="acme-bob",
                actor_email="bob@acme.example",
                action="user.delete",
                resource_type="user",
                resource_id="u-1",
                result="denied",
                user_agent="curl/8.0",
                details={"before": {"role": "admin"}, "after": {"role": "viewer"}},
            ),
        ],
        "globex": [
            event("globex", at(1, 11)),
            event("globex", at(2, 12), action="apikey.revoke", resource_type="apikey", resource_id="k-1"),
        ],
        "initech": [
            event("initech", at(1, 12)),
            event("initech", at(2, 13), action="initech.secret", resource_type="initech_vault"),
            event("initech", at(3, 14), result="error"),
        ],
        "umbrella": [
            event("umbrella", at(2, 8)),
            event("umbrella", at(3, 8), action="umbrella.only", resource_type="umbrella_thing"),
        ],
    }
    return World(ids={tenant: write(session, batch) for tenant, batch in events.items()})


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of `token`."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def as_super(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("super_admin"))


@pytest.fixture
def as_northwind(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("partner_admin", partner_id="northwind"))


@pytest.fixture
def as_acme(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("tenant_admin", tenant_id="acme"))


def ids_of(body: dict[str, Any]) -> set[str]:
    """The ids of a list response's items."""
    return {item["id"] for item in body["items"]}
