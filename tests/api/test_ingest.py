"""`POST /api/v1/audit/events`: atomic batches, who may write which tenant, idempotency, size limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session, col

from audit_app.api import create_api
from audit_app.audit.ingest import TENANT_CREATE, insert_tenants
from audit_app.models import AuditLog, Tenant
from audit_app.settings import Settings, get_settings
from tests.api.helpers import LIST, bearer
from tests.helpers import TokenFactory

EVENTS = "/api/v1/audit/events"


def ev(tenant: str = "acme", **fields: Any) -> dict[str, Any]:
    return {"tenant_id": tenant, "actor_id": "svc-1", "action": "user.login"} | fields


def register(session: Session, **owners: str | None) -> None:
    """Register tenants directly (test set-up; the API's registration has tests of its own)."""
    insert_tenants(session, owners)
    session.commit()


def count(session: Session) -> int:
    """The events written by batches (the `tenant.create` records of registration left out)."""
    session.expire_all()
    stmt = select(func.count()).select_from(AuditLog).where(col(AuditLog.action) != TENANT_CREATE)
    return session.execute(stmt).scalar_one()


def test_a_batch_is_written_in_order_and_registers_partners(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    batch = [
        ev("acme", partner_id="northwind", timestamp="2026-03-01T10:00:00+02:00", details={"k": [1, 2]}),
        ev("acme", action="role.assign", ip_address="2001:db8::1", user_agent="agent/1"),
        ev("globex", partner_id="northwind", actor_type="service", result="failure", request_id="req-1"),
    ]
    before = datetime.now(UTC)
    response = client.post(EVENTS, json={"events": batch}, headers=as_super)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["count"] == 3
    assert len(set(body["ids"])) == 3
    stored = {e.id: e for e in session.execute(select(AuditLog)).scalars()}
    first, second, third = (stored[i] for i in body["ids"])
    assert first.timestamp == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert first.details == {"k": [1, 2]}
    assert second.action == "role.assign"
    assert second.ip_address == "2001:db8::1"
    assert second.timestamp >= before  # no timestamp: now
    assert (third.actor_type, third.result, third.request_id) == ("service", "failure", "req-1")
    partner = client.get(LIST, params={"partner_id": "northwind"}, headers=as_super).json()
    assert partner["total"] == 5  # the acme event without partner_id counts too, and each tenant.create record
    # The super admin's ingestion registered both tenants, each recorded in its own chain.
    created = client.get(LIST, params={"action": TENANT_CREATE}, headers=as_super).json()["items"]
    assert sorted((e["tenant_id"], e["actor_id"], e["resource_id"]) for e in created) == [
        ("acme", "super_admin-local", "acme"),
        ("globex", "super_admin-local", "globex"),
    ]
    assert {e["details"]["via"] for e in created} == {"ingestion"}
    assert [e["details"]["changes"]["partner_id"] for e in created] == [{"from": None, "to": "northwind"}] * 2
    again = client.post(EVENTS, json={"events": batch}, headers=as_super)
    assert again.status_code == 201
    assert client.get(LIST, params={"action": TENANT_CREATE}, headers=as_super).json()["total"] == 2  # no new tenant


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"timestamp": "next tuesday"}, "timestamp"),
        ({"details": ["not", "an", "object"]}, "details"),
        ({"details": "text"}, "details"),
        ({"ip_address": "999.1.1.1"}, "ip_address"),
        ({"result": "maybe"}, "result"),
        ({"action": "=cmd|' /C calc'!A0"}, "action"),
        ({"tenant_id": ""}, "tenant_id"),
        ({"actor_id": "a\x00b"}, "actor_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_one_invalid_event_rejects_the_whole_batch(
    client: TestClient, as_super: dict[str, str], session: Session, bad: dict[str, Any], field: str
) -> None:
    batch = [ev(), ev() | bad, ev()]
    response = client.post(EVENTS, json={"events": batch}, headers=as_super)
    assert response.status_code == 422, response.text
    locs = [error["loc"] for error in response.json()["detail"]]
    assert ["body", "events", 1, field] in locs
    assert count(session) == 0


@pytest.mark.parametrize("missing", ["tenant_id", "actor_id", "action"])
def test_required_fields(client: TestClient, as_super: dict[str, str], session: Session, missing: str) -> None:
    event = ev()
    del event[missing]
    response = client.post(EVENTS, json={"events": [ev(), event]}, headers=as_super)
    assert response.status_code == 422
    assert ["body", "events", 1, missing] in [error["loc"] for error in response.json()["detail"]]
    assert count(session) == 0


def test_batch_size_and_body_shape(client: TestClient, as_super: dict[str, str], session: Session) -> None:
    bodies: list[Any] = [{"events": []}, {"events": [ev()] * 1001}, {}, [ev()], {"events": [ev()], "extra": 1}]
    for body in bodies:
        assert client.post(EVENTS, json=body, headers=as_super).status_code == 422, body
    response = client.post(EVENTS, content=b"{not json", headers=as_super | {"Content-Type": "application/json"})
    assert response.status_code == 422
    assert count(session) == 0
    response = client.post(EVENTS, json={"events": [ev(actor_id=f"a{n}") for n in range(1000)]}, headers=as_super)
    assert response.status_code == 201
    assert response.json()["count"] == 1000 == count(session)


def test_a_tenant_of_another_partner_is_refused_for_everyone(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    assert (
        client.post(EVENTS, json={"events": [ev("initech", partner_id="southwind")]}, headers=as_super).status_code
        == 201
    )
    response = client.post(
        EVENTS, json={"events": [ev("acme"), ev("initech", partner_id="northwind")]}, headers=as_super
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "events", 1, "partner_id"]
    assert count(session) == 1


def test_tenant_bound_tokens_write_only_their_tenant(
    client: TestClient, make_token: TokenFactory, session: Session
) -> None:
    acme = bearer(make_token("tenant_admin", tenant_id="acme"))
    assert client.post(EVENTS, json={"events": [ev("acme")]}, headers=acme).status_code == 403  # not registered
    register(session, acme=None)
    assert client.post(EVENTS, json={"events": [ev("acme"), ev("acme")]}, headers=acme).status_code == 201
    for batch in ([ev("globex")], [ev("acme"), ev("globex")], [ev("acme", partner_id="southwind")]):
        response = client.post(EVENTS, json={"events": batch}, headers=acme)
        assert response.status_code == 403, batch
        assert set(response.json()) == {"detail"}
    assert count(session) == 2


def test_partner_admins_write_only_their_partners_registered_tenants(
    client: TestClient, make_token: TokenFactory, as_super: dict[str, str], session: Session
) -> None:
    seed = [ev("acme", partner_id="northwind"), ev("initech", partner_id="southwind"), ev("umbrella")]
    assert client.post(EVENTS, json={"events": seed}, headers=as_super).status_code == 201
    register(session, newco="northwind")
    northwind = bearer(make_token("partner_admin", partner_id="northwind"))
    ok = [ev("acme"), ev("newco", partner_id="northwind"), ev("newco")]
    assert client.post(EVENTS, json={"events": ok}, headers=northwind).status_code == 201
    assert client.get(LIST, params={"tenant_id": "newco"}, headers=northwind).json()["total"] == 2
    for batch in (
        [ev("initech")],
        [ev("umbrella")],
        [ev("platform")],
        [ev("newer")],
        [ev("acme"), ev("another", partner_id="northwind")],
        [ev("acme"), ev("another", partner_id="southwind")],
        [ev("acme", partner_id="southwind")],
    ):
        response = client.post(EVENTS, json={"events": batch}, headers=northwind)
        assert response.status_code == 403, batch
        assert "southwind" not in response.json()["detail"] or "southwind" in json.dumps(batch)
    assert count(session) == 6
    owners = {tenant.id for tenant in session.execute(select(Tenant)).scalars()}
    assert not {"newer", "another"} & owners


def test_idempotency_key_replays_the_same_ids(client: TestClient, make_token: TokenFactory, session: Session) -> None:
    token = make_token("super_admin", sub="producer-1")
    headers = bearer(token) | {"Idempotency-Key": "batch-0001"}
    batch = {"events": [ev(), ev(action="role.assign")]}
    first = client.post(EVENTS, json=batch, headers=headers)
    again = client.post(
        EVENTS,
        json=batch,
        headers=bearer(make_token("super_admin", sub="producer-1")) | {"Idempotency-Key": "batch-0001"},
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert count(session) == 2
    changed = client.post(EVENTS, json={"events": [ev(action="user.delete")]}, headers=headers)
    assert changed.status_code == 409
    assert "different batch" in changed.json()["detail"]
    other_caller = client.post(
        EVENTS,
        json=batch,
        headers=bearer(make_token("super_admin", sub="producer-2")) | {"Idempotency-Key": "batch-0001"},
    )
    assert other_caller.status_code == 201
    assert set(other_caller.json()["ids"]).isdisjoint(first.json()["ids"])
    no_key = client.post(EVENTS, json=batch, headers=bearer(token))
    assert set(no_key.json()["ids"]).isdisjoint(first.json()["ids"])
    assert count(session) == 6
    for key in ("", "x" * 256, "bad\tkey", "ключ".encode()):
        response = client.post(EVENTS, json=batch, headers=bearer(token) | {"Idempotency-Key": key})
        assert response.status_code in (400, 422), key
    assert count(session) == 6


def test_a_failed_batch_does_not_burn_its_idempotency_key(
    client: TestClient, make_token: TokenFactory, session: Session
) -> None:
    register(session, acme="northwind", platform=None)
    headers = bearer(make_token("partner_admin", partner_id="northwind")) | {"Idempotency-Key": "k1"}
    assert client.post(EVENTS, json={"events": [ev("platform")]}, headers=headers).status_code == 403
    response = client.post(EVENTS, json={"events": [ev("acme")]}, headers=headers)
    assert response.status_code == 201
    assert count(session) == 1


def test_bodies_over_5_mb_are_refused_before_parsing(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    big = {"events": [ev(details={"blob": "x" * 1_000_000}) for _ in range(6)]}
    response = client.post(EVENTS, json=big, headers=as_super)
    assert response.status_code == 413
    assert "5 MB" in response.json()["detail"]

    def chunked() -> Iterator[bytes]:
        yield b'{"events": ['
        for _ in range(6):
            yield json.dumps(ev(details={"blob": "x" * 1_000_000})).encode() + b","
        yield b"{}]}"

    response = client.post(EVENTS, content=chunked(), headers=as_super | {"Content-Type": "application/json"})
    assert response.status_code == 413
    lying = client.post(
        EVENTS,
        content=b"{" * 6_000_000,
        headers=as_super | {"Content-Type": "application/json", "Content-Length": "10"},
    )
    assert lying.status_code in (400, 413)
    assert count(session) == 0


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00Z",
        "1999-12-31T23:59:59.999999Z",
        "9999-12-31T23:59:59Z",
        (datetime.now(UTC) + timedelta(days=1, hours=1)).isoformat(),
    ],
)
def test_timestamps_outside_the_accepted_window_reject_the_batch(
    client: TestClient, as_super: dict[str, str], session: Session, when: str
) -> None:
    response = client.post(EVENTS, json={"events": [ev(), ev(timestamp=when), ev()]}, headers=as_super)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "events", 1, "timestamp"]
    assert "AUDIT_M" in error["msg"]
    assert count(session) == 0


def test_timestamps_at_the_edges_of_the_window_are_accepted(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    batch = [ev(timestamp="2000-01-01T00:00:00Z"), ev(timestamp=(datetime.now(UTC) + timedelta(hours=23)).isoformat())]
    assert client.post(EVENTS, json={"events": batch}, headers=as_super).status_code == 201
    assert count(session) == 2


def test_the_window_follows_the_settings(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, session: Session, make_token: TokenFactory
) -> None:
    monkeypatch.setenv("AUDIT_MAX_FUTURE_SKEW", "PT1H")
    monkeypatch.setenv("AUDIT_MIN_EVENT_TIME", "2020-01-01T00:00:00Z")
    get_settings.cache_clear()
    client = TestClient(create_api())
    headers = bearer(make_token("super_admin"))
    soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    for when, accepted in (("2019-12-31T23:00:00Z", False), (soon, False), ("2020-01-01T00:00:00Z", True)):
        response = client.post(EVENTS, json={"events": [ev(timestamp=when)]}, headers=headers)
        assert response.status_code == (201 if accepted else 422), (when, response.text)
    assert count(session) == 1
