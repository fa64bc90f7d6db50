"""Fixtures of the trust tests: an HTTP client of a fresh API and a super admin's header."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from audit_app.api import create_api
from audit_app.settings import Settings
from tests.helpers import TokenFactory


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """An HTTP client of a freshly built API on the test database (server errors become 500s)."""
    with TestClient(create_api(), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def as_super(make_token: TokenFactory) -> dict[str, str]:
    """The Authorization header of a super admin with every scope."""
    return {"Authorization": f"Bearer {make_token('super_admin')}"}
