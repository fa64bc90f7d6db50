"""API test fixtures: a client of a fresh app, and a small multi-tenant world of events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from audit_app.api import create_api
from audit_app.settings import Settings
from tests.api.helpers import World, at, bearer, event, write
from tests.helpers import TokenFactory


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An HTTP client of a freshly built API on the test database."""
    with TestClient(create_api()) as test_client:
        yield test_client


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


@pytest.fixture
def as_super(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("super_admin"))


@pytest.fixture
def as_northwind(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("partner_admin", partner_id="northwind"))


@pytest.fixture
def as_acme(make_token: TokenFactory) -> dict[str, str]:
    return bearer(make_token("tenant_admin", tenant_id="acme"))
