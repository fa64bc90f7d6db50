"""The tenant registry: who registers tenants, who may write them, and no existence oracle."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from audit_app.__main__ import main
from audit_app.models import AuditLog, Tenant
from tests.api.helpers import bearer
from tests.helpers import TokenFactory

TENANTS = "/api/v1/admin/tenants"
EVENTS = "/api/v1/audit/events"


def ev(tenant: str, **fields: Any) -> dict[str, Any]:
    return {"tenant_id": tenant, "actor_id": "svc-1", "action": "user.login"} | fields


def registry(session: Session) -> dict[str, str | None]:
    session.expire_all()
    return {tenant.id: tenant.partner_id for tenant in session.execute(select(Tenant)).scalars()}


def events_of(session: Session, tenant: str, action: str) -> list[AuditLog]:
    session.expire_all()
    stmt = select(AuditLog).where(col(AuditLog.tenant_id) == tenant, col(AuditLog.action) == action)
    return list(session.execute(stmt).scalars())


def test_a_super_admin_registers_tenants_and_moves_them_on_the_record(
    client: TestClient, make_token: TokenFactory, session: Session
) -> None:
    admin = bearer(make_token("super_admin"))
    created = client.put(f"{TENANTS}/wayne", json={"partner_id": "bluesky"}, headers=admin)
    assert created.status_code == 200, created.text
    assert created.json()["created"] is True
    assert registry(session) == {"wayne": "bluesky"}
    (create,) = events_of(session, "wayne", "tenant.create")
    assert create.details["changes"] == {"partner_id": {"from": None, "to": "bluesky"}}
    assert create.id == created.json()["audit_event_id"]
    same = client.put(f"{TENANTS}/wayne", json={"partner_id": "bluesky"}, headers=admin).json()
    assert (same["created"], same["audit_event_id"]) == (False, None)
    moved = client.put(f"{TENANTS}/wayne", json={"partner_id": "northwind"}, headers=admin).json()
    assert moved["previous_partner_id"] == "bluesky"
    (change,) = events_of(session, "wayne", "tenant.partner_change")
    assert change.details["changes"] == {"partner_id": {"from": "bluesky", "to": "northwind"}}
    assert change.actor_id == "super_admin-local"
    assert registry(session) == {"wayne": "northwind"}
    verified = client.get("/api/v1/admin/audit/verify", params={"tenant_id": "wayne"}, headers=admin).json()
    assert verified["ok"] is True


def test_only_a_super_admin_with_audit_admin_registers(
    client: TestClient, make_token: TokenFactory, session: Session
) -> None:
    body = {"partner_id": "northwind"}
    reader = bearer(make_token("super_admin", scope="audit:read audit:write"))
    partner = bearer(make_token("partner_admin", partner_id="northwind", scope="audit:read audit:admin"))
    tenant = bearer(make_token("tenant_admin", tenant_id="acme", scope="audit:read audit:admin"))
    for headers in (reader, partner, tenant):
        assert client.put(f"{TENANTS}/acme", json=body, headers=headers).status_code == 403
    admin = bearer(make_token("super_admin"))
    for bad in ({}, {"partner_id": ""}, {"partner_id": "x\x00"}, {"partner_id": "n", "extra": 1}):
        response = client.put(f"{TENANTS}/acme", json=bad, headers=admin)
        assert response.status_code == 422, bad
        assert "detail" in response.json()
    assert client.put(f"{TENANTS}/{'x' * 256}", json=body, headers=admin).status_code == 422
    assert registry(session) == {}


def test_the_listing_shows_what_the_caller_may_see(client: TestClient, make_token: TokenFactory) -> None:
    admin = bearer(make_token("super_admin"))
    for tenant, partner in (("acme", "northwind"), ("globex", "northwind"), ("initech", "southwind")):
        client.put(f"{TENANTS}/{tenant}", json={"partner_id": partner}, headers=admin)
    client.put(f"{TENANTS}/solo", json={"partner_id": None}, headers=admin)

    def listed(headers: dict[str, str]) -> dict[str, str | None]:
        response = client.get(TENANTS, headers=headers)
        assert response.status_code == 200, response.text
        return {t["tenant_id"]: t["partner_id"] for t in response.json()["tenants"]}

    assert listed(admin) == {"acme": "northwind", "globex": "northwind", "initech": "southwind", "solo": None}
    northwind = bearer(make_token("partner_admin", partner_id="northwind", scope="audit:read"))
    assert listed(northwind) == {"acme": "northwind", "globex": "northwind"}
    assert listed(bearer(make_token("tenant_admin", tenant_id="initech", scope="audit:read"))) == {
        "initech": "southwind"
    }
    assert client.get(TENANTS, headers=bearer(make_token("super_admin", scope="audit:write"))).status_code == 403


def test_whoever_writes_first_no_longer_owns_a_tenant(
    client: TestClient, make_token: TokenFactory, session: Session
) -> None:
    admin = bearer(make_token("super_admin"))
    client.put(f"{TENANTS}/acme", json={"partner_id": "northwind"}, headers=admin)
    northwind = bearer(make_token("partner_admin", partner_id="northwind"))
    grabbed = client.post(EVENTS, json={"events": [ev("wayne-enterprises")]}, headers=northwind)
    assert grabbed.status_code == 403
    wayne = bearer(make_token("tenant_admin", tenant_id="wayne-enterprises"))
    assert client.post(EVENTS, json={"events": [ev("wayne-enterprises")]}, headers=wayne).status_code == 403
    assert "wayne-enterprises" not in registry(session)
    client.put(f"{TENANTS}/wayne-enterprises", json={"partner_id": "bluesky"}, headers=admin)
    assert client.post(EVENTS, json={"events": [ev("wayne-enterprises")]}, headers=wayne).status_code == 201
    bluesky = bearer(make_token("partner_admin", partner_id="bluesky"))
    assert client.post(EVENTS, json={"events": [ev("wayne-enterprises")]}, headers=bluesky).status_code == 201
    assert client.post(EVENTS, json={"events": [ev("wayne-enterprises")]}, headers=northwind).status_code == 403
    seen = client.get("/api/v1/admin/audit/", params={"tenant_id": "wayne-enterprises"}, headers=northwind)
    assert seen.status_code == 403
    assert client.post(EVENTS, json={"events": [ev("acme")]}, headers=northwind).status_code == 201


def test_unknown_and_foreign_tenants_answer_alike_even_through_an_idempotency_key(
    client: TestClient, make_token: TokenFactory
) -> None:
    admin = bearer(make_token("super_admin"))
    client.put(f"{TENANTS}/acme", json={"partner_id": "northwind"}, headers=admin)
    client.put(f"{TENANTS}/secret-co", json={"partner_id": "southwind"}, headers=admin)
    northwind = bearer(make_token("partner_admin", partner_id="northwind"))

    def probe(tenant: str, key: str | None) -> tuple[int, Any]:
        # The probe names the tenant under the same id length, so only existence could differ.
        headers = northwind | ({"Idempotency-Key": key} if key else {})
        response = client.post(EVENTS, json={"events": [ev(tenant)]}, headers=headers)
        return response.status_code, response.json()["detail"].replace(tenant, "<tenant>")

    assert (
        client.post(EVENTS, json={"events": [ev("acme")]}, headers=northwind | {"Idempotency-Key": "k1"}).status_code
        == 201
    )
    for key in (None, "k1", "fresh"):
        foreign, unknown = probe("secret-co", key), probe("nobody-co", key)
        assert foreign == unknown, key
        assert foreign[0] == 403


def test_a_super_admin_writer_registers_new_tenants_by_naming_their_partner(
    client: TestClient, make_token: TokenFactory, session: Session
) -> None:
    admin = bearer(make_token("super_admin"))
    written = client.post(EVENTS, json={"events": [ev("newco", partner_id="northwind")]}, headers=admin)
    assert written.status_code == 201
    assert registry(session)["newco"] == "northwind"
    moved = client.post(EVENTS, json={"events": [ev("newco", partner_id="southwind")]}, headers=admin)
    assert moved.status_code == 422
    assert moved.json()["detail"][0]["loc"] == ["body", "events", 0, "partner_id"]
    assert registry(session)["newco"] == "northwind"


def test_no_read_path_creates_or_changes_a_tenant(
    client: TestClient, make_token: TokenFactory, session: Session
) -> None:
    admin = bearer(make_token("super_admin"))
    client.put(f"{TENANTS}/acme", json={"partner_id": "northwind"}, headers=admin)
    (event_id,) = client.post(EVENTS, json={"events": [ev("acme")]}, headers=admin).json()["ids"]
    before = registry(session)
    ghost = bearer(make_token("tenant_admin", tenant_id="ghost"))
    audit = "/api/v1/admin/audit"
    for headers in (admin, ghost):
        for path, params in (
            (f"{audit}/verify", {"tenant_id": "ghost"}),
            (f"{audit}/verify", {}),
            (f"{audit}/", {"tenant_id": "ghost"}),
            (f"{audit}/stats", {"tenant_id": "ghost"}),
            (f"{audit}/actions", {}),
            (f"{audit}/retention", {}),
            (f"{audit}/export", {"tenant_id": "ghost"}),
            (f"{audit}/{event_id}", {}),
            (TENANTS, {}),
        ):
            assert client.get(path, params=params, headers=headers).status_code < 500, path
    assert {k: v for k, v in registry(session).items() if k != "platform"} == before


def test_cli_tenant_add_and_list(client: TestClient, session: Session, capsys: Any) -> None:
    assert main(["tenant", "add", "acme", "--partner-id", "northwind"]) == 0
    assert main(["tenant", "add", "solo", "--no-partner"]) == 0
    assert main(["tenant", "add", "acme", "--partner-id", "southwind"]) == 0
    assert "Moved tenant acme from northwind to partner southwind" in capsys.readouterr().out
    assert registry(session) == {"acme": "southwind", "solo": None}
    (change,) = events_of(session, "acme", "tenant.partner_change")
    assert change.actor_id.startswith("cli:")
    assert main(["tenant", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["acme", "southwind"], ["solo", "-"]]
    assert main(["tenant", "list", "--partner-id", "southwind"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["acme"]
