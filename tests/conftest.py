"""Shared fixtures: a migrated database per backend (SQLite file, real PostgreSQL), settings, tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlmodel import Session

from audit_app.auth import issue_token
from audit_app.db import engine_for
from audit_app.migrations import upgrade
from audit_app.oidc import forget_provider_keys
from audit_app.settings import Settings, get_settings
from tests.helpers import (
    PG_ADMIN_URL,
    TEST_SECRET,
    TokenFactory,
    clear_tables,
    pg_unreachable,
)
from tests.oidc_provider import Provider, provider_of


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database file, shared by the session's tests."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'audit.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A freshly created, migrated PostgreSQL database, dropped at the end of the session."""
    name = f"audit_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pg_unreachable(str(exc).strip().splitlines()[0])
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    upgrade(url)
    yield url
    engine_for(url).dispose()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Provider settings a developer's environment might hold; the tests set those they need.
PROVIDER_SETTINGS = (
    "AUDIT_OIDC_ISSUER",
    "AUDIT_OIDC_CLIENT_ID",
    "AUDIT_OIDC_CLIENT_SECRET",
    "AUDIT_OIDC_SCOPES",
    "AUDIT_PUBLIC_URL",
    "AUDIT_SESSION_TTL",
    "AUDIT_JWT_JWKS_URL",
    "AUDIT_ROLE_CLAIM",
    "AUDIT_TENANT_CLAIM",
    "AUDIT_PARTNER_CLAIM",
    "AUDIT_SCOPE_CLAIM",
    "AUDIT_ROLE_MAP",
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty, migrated database of each backend (tests using it run once per backend)."""
    url: str = request.getfixturevalue(f"{request.param}_database")
    clear_tables(url)
    return url


@pytest.fixture
def settings(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    """Settings aimed at the test database with a known HS256 secret."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIT_DATABASE_URL", database_url)
    monkeypatch.setenv("AUDIT_JWT_SECRET", TEST_SECRET)
    for name in ("AUDIT_JWT_PUBLIC_KEY", "AUDIT_JWT_ISSUER", "AUDIT_JWT_AUDIENCE", "AUDIT_DEMO", *PROVIDER_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    """A session on the test database."""
    with Session(engine_for(settings.database_url), expire_on_commit=False) as session:
        yield session


@pytest.fixture
def make_token(settings: Settings) -> TokenFactory:
    """Mint a token: make_token("tenant_admin", tenant_id="acme", scope="audit:read").

    Without `scope`, the role's default scopes (`audit:admin` too for a super admin).
    """

    def make(role: str = "super_admin", *, scope: str | None = None, ttl: int = 600, **claims: str) -> str:
        return issue_token(settings, role=role, scope=scope, ttl=ttl, **claims)

    return make


@pytest.fixture
def provider(iam_server: Any) -> Iterator[Provider]:
    """A real OpenID provider on loopback (Canaille through pytest-iam), keys restored afterwards.

    Each test is a new deployment: the process-wide cache of the provider's keys starts empty, so
    a key set fetched by an earlier test (and its refresh cooldown) cannot decide this one.
    """
    forget_provider_keys()
    yield from provider_of(iam_server)
    forget_provider_keys()
