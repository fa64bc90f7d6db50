"""`audit:admin`: administrative changes (retention, legal hold) need it on top of the role."""

from __future__ import annotations

from fastapi.testclient import TestClient

from audit_app.auth import SCOPE_ADMIN, decode_token
from audit_app.settings import Settings
from tests.api.helpers import bearer
from tests.helpers import TokenFactory

RETENTION = "/api/v1/admin/audit/retention"


def test_retention_changes_need_the_admin_scope(client: TestClient, make_token: TokenFactory) -> None:
    reader = bearer(make_token("super_admin", scope="audit:read audit:export audit:write"))
    admin = bearer(make_token("super_admin", scope="audit:admin"))
    assert client.put("/api/v1/admin/tenants/acme", headers=admin, json={"partner_id": "northwind"}).status_code == 200
    assert client.put(RETENTION, headers=reader, json={"days": 30}).status_code == 403
    tenant = client.put(f"{RETENTION}/tenants/acme", headers=reader, json={"legal_hold": True})
    assert tenant.status_code == 403
    assert "audit:admin" in tenant.json()["detail"]
    assert client.get(RETENTION, headers=bearer(make_token("super_admin"))).json()["default_days"] is None
    assert client.put(RETENTION, headers=admin, json={"days": 30}).json()["default_days"] == 30
    held = client.put(f"{RETENTION}/tenants/acme", headers=admin, json={"legal_hold": True})
    assert held.status_code == 200, held.text
    assert held.json()["legal_hold"] is True


def test_the_admin_scope_does_not_lift_the_role(client: TestClient, make_token: TokenFactory) -> None:
    partner = bearer(make_token("partner_admin", partner_id="northwind", scope="audit:read audit:admin"))
    assert client.put(RETENTION, headers=partner, json={"days": 30}).status_code == 403


def test_local_super_admin_tokens_hold_the_admin_scope(settings: Settings, make_token: TokenFactory) -> None:
    assert SCOPE_ADMIN in decode_token(make_token("super_admin"), settings).scopes
    assert SCOPE_ADMIN not in decode_token(make_token("tenant_admin", tenant_id="acme"), settings).scopes


def test_retention_of_an_unregistered_tenant_is_a_validation_error(
    client: TestClient, make_token: TokenFactory
) -> None:
    response = client.put(f"{RETENTION}/tenants/ghost", headers=bearer(make_token("super_admin")), json={})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "tenant_id"]
