"""The benchmark asks Datasette only the list cases its table view can express the same way."""

from __future__ import annotations

import pytest

from audit_app.audit.filters import AuditFilters
from audit_app.auth import Principal
from bench.datasette import list_params

SUPER = Principal(sub="bench", email="bench@example.com", role="super_admin", scopes=frozenset({"audit:read"}))


@pytest.mark.parametrize(
    "filters",
    [
        AuditFilters(q="smith"),
        AuditFilters(not_action="user.login"),
        AuditFilters(action="user.delete,role.assign"),
        AuditFilters(resource_id="usr_00*"),
        AuditFilters(ip_address="10.0.0.0/8"),
        AuditFilters(actor_email="Ann@Example.com"),
    ],
)
def test_search_filters_have_no_datasette_equivalent(filters: AuditFilters) -> None:
    assert list_params(filters, SUPER) is None


def test_exact_filters_are_asked_of_datasette() -> None:
    params = list_params(AuditFilters(action="user.login", ip_address="10.1.2.3"), SUPER)
    assert params is not None
    assert params["action"] == "user.login"
    assert params["ip_address"] == "10.1.2.3"
    assert params["_sort_desc"] == "timestamp"
