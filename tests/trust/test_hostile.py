"""Hostile input through HTTP: token attacks, odd and oversized values, and the integrity endpoints."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlmodel import Session

from audit_app.api import create_api
from audit_app.settings import Settings, get_settings
from tests.helpers import TokenFactory
from tests.trust.helpers import tamper, write

LIST = "/api/v1/admin/audit/"
EVENTS = "/api/v1/audit/events"
VERIFY = "/api/v1/admin/audit/verify"
ISSUER, AUDIENCE = "https://id.example.com/", "audit-api"

SQL = "' OR '1'='1'; DROP TABLE audit_log; -- \\ \" `x` $1 %s {0}"
LIKE = "%_[]^*?.+()|"
UNICODE = "Zoë 北京 😀 \u202eevil\u202c e\u0301 \ufeff \u200b"
BIG = "x" * 10_240
NUL = "a\x00b"
FILTERS = [
    "tenant_id",
    "partner_id",
    "actor_id",
    "actor_email",
    "action",
    "resource_type",
    "resource_id",
    "result",
    "ip_address",
    "start_time",
    "end_time",
]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A JWT assembled by hand (PyJWT refuses to build the nastiest ones)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture
def rsa_world(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Any, str]]:
    """An API configured for RS256 tokens of the platform's OAuth server, with issuer and audience."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    monkeypatch.delenv("AUDIT_JWT_SECRET")
    monkeypatch.setenv("AUDIT_JWT_PUBLIC_KEY", public_pem)
    monkeypatch.setenv("AUDIT_JWT_ISSUER", ISSUER)
    monkeypatch.setenv("AUDIT_JWT_AUDIENCE", AUDIENCE)
    get_settings.cache_clear()
    with TestClient(create_api(), raise_server_exceptions=False) as client:
        yield client, private, public_pem
    get_settings.cache_clear()


def test_token_attacks_are_all_401(rsa_world: tuple[TestClient, Any, str]) -> None:
    client, private, public_pem = rsa_world
    now = int(time.time())
    good: dict[str, Any] = {
        "sub": "alice",
        "role": "super_admin",
        "scope": "audit:read",
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    good |= {"iat": now, "exp": now + 600}

    def rs256(claims: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(claims, private, algorithm="RS256", headers=headers or None)

    valid = rs256(good)
    assert client.get(LIST, headers={"Authorization": f"Bearer {valid}"}).status_code == 200
    head, body, signature = valid.split(".")
    escalated = json.loads(base64.urlsafe_b64decode(body + "=="))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacks = {
        "alg none": _forge({"alg": "none", "typ": "JWT"}, good, None),
        "alg None, valid signature kept": f"{_b64(json.dumps({'alg': 'None'}).encode())}.{body}.{signature}",
        "HS256 signed with the public key": _forge({"alg": "HS256", "typ": "JWT"}, good, public_pem.encode()),
        "signed by another key": jwt.encode(good, other_key, algorithm="RS256"),
        "expired": rs256(good | {"exp": now - 60}),
        "not yet valid": rs256(good | {"nbf": now + 3600}),
        "wrong issuer": rs256(good | {"iss": "https://evil.example.com/"}),
        "no issuer": rs256({k: v for k, v in good.items() if k != "iss"}),
        "wrong audience": rs256(good | {"aud": "another-api"}),
        "no audience": rs256({k: v for k, v in good.items() if k != "aud"}),
        "missing exp": rs256({k: v for k, v in good.items() if k != "exp"}),
        "tampered payload": f"{head}.{_b64(json.dumps(escalated | {'scope': 'audit:read audit:write'}).encode())}."
        f"{signature}",
        "oversized header": rs256(good, kid="k" * 9000),
        "oversized but signed header": rs256(good, kid="k" * 4000, x5u="https://evil.example.com/" + "u" * 2000),
        "truncated signature": valid[:-10],
        "empty": "",
    }
    for name, token in attacks.items():
        response = client.get(LIST, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (name, response.status_code, response.text)
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token", error_description=')


def test_hostile_values_are_stored_and_returned_exactly(client: TestClient, as_super: dict[str, str]) -> None:
    event = {
        "tenant_id": UNICODE,
        "actor_id": SQL,
        "actor_email": LIKE,
        "action": "user.login",
        "resource_type": UNICODE,
        "resource_id": SQL,
        "request_id": LIKE,
        "session_id": "'; --",
        "user_agent": BIG[:1024],
        "details": {"sql": SQL, "big": BIG, "unicode": UNICODE, SQL: LIKE, "list": [UNICODE, 1, None, True]},
    }
    created = client.post(EVENTS, json={"events": [event]}, headers=as_super)
    assert created.status_code == 201, created.text
    (event_id,) = created.json()["ids"]
    stored = client.get(LIST + event_id, headers=as_super).json()
    assert {key: stored[key] for key in event} == event
    for name, value in (("actor_id", SQL), ("resource_type", UNICODE), ("actor_email", LIKE), ("tenant_id", UNICODE)):
        found = client.get(LIST, params={name: value, "action": "user.login"}, headers=as_super).json()
        assert [item["id"] for item in found["items"]] == [event_id], name
    assert client.get(VERIFY, headers=as_super).json()["ok"] is True


@pytest.mark.parametrize("field", ["tenant_id", "actor_id", "actor_email", "resource_id", "user_agent", "session_id"])
def test_oversized_or_nul_fields_are_422(client: TestClient, as_super: dict[str, str], field: str) -> None:
    for value in (BIG, NUL):
        event = {"tenant_id": "acme", "actor_id": "a", "action": "user.login", field: value}
        response = client.post(EVENTS, json={"events": [event]}, headers=as_super)
        assert response.status_code == 422, (field, value[:5], response.text)
        assert response.json()["detail"][0]["loc"][:4] == ["body", "events", 0, field]
    nul_in_details = {"tenant_id": "acme", "actor_id": "a", "action": "x", "details": {"k": NUL}}
    assert client.post(EVENTS, json={"events": [nul_in_details]}, headers=as_super).status_code == 422


def test_hostile_filters_never_fail_the_server(client: TestClient, as_super: dict[str, str]) -> None:
    client.post(EVENTS, json={"events": [{"tenant_id": "acme", "actor_id": SQL, "action": "a.b"}]}, headers=as_super)
    for name in FILTERS:
        for value in (SQL, LIKE, UNICODE, BIG, NUL):
            for path in (LIST, LIST + "stats", LIST + "export", VERIFY):
                response = client.get(path, params={name: value}, headers=as_super)
                assert response.status_code in (200, 422), (path, name, value[:10], response.status_code)
            response = client.get(LIST, params={name: value}, headers=as_super)
            if response.status_code == 200:
                # (audit.* events are left out: exporting a tenant records the export in that tenant)
                items = [item for item in response.json()["items"] if not item["action"].startswith("audit.")]
                assert [item[name] for item in items] == ([SQL] if (name, value) == ("actor_id", SQL) else [])
        for raw in ("%ED%A0%80", "%FF%FE", "%C0%AF", "%00", "%25%27%22"):
            response = client.get(f"{LIST}?{name}={raw}", headers=as_super)
            assert response.status_code in (200, 422), (name, raw, response.status_code)


def test_oversized_requests_are_refused_early(client: TestClient, as_super: dict[str, str]) -> None:
    one = {"tenant_id": "acme", "actor_id": "a", "action": "user.login"}
    response = client.post(EVENTS, json={"events": [one] * 1001}, headers=as_super)
    assert response.status_code == 422
    assert "at most 1000" in response.text
    assert len(response.content) < 2048  # the batch is not echoed back
    huge = (
        b'{"events": [{"tenant_id": "acme", "actor_id": "a", "action": "x", "details": {"a": "'
        + b"x" * (10 * 1024 * 1024)
        + b'"}}]}'
    )
    response = client.post(EVENTS, content=huge, headers=as_super | {"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    for depth in (40, 1000, 100_000):
        nested = '{"a":' * depth + "1" + "}" * depth
        body = '{"events": [{"tenant_id": "acme", "actor_id": "a", "action": "x", "details": ' + nested + "}]}"
        response = client.post(EVENTS, content=body, headers=as_super | {"Content-Type": "application/json"})
        assert response.status_code == 422, (depth, response.status_code)
        assert "nested" in response.text
    for value in ("1e400", "NaN", "-Infinity"):
        body = '{"events": [{"tenant_id": "acme", "actor_id": "a", "action": "x", "details": {"n": ' + value + "}}]}"
        response = client.post(EVENTS, content=body, headers=as_super | {"Content-Type": "application/json"})
        assert response.status_code == 422, (value, response.text)
    assert client.get(LIST, params={"per_page": 100}, headers=as_super).json()["total"] == 0


def test_verify_endpoint_reports_the_broken_event_within_scope(
    client: TestClient, as_super: dict[str, str], make_token: TokenFactory, session: Session, database_url: str
) -> None:
    ids = write(session, "acme", 6)
    write(session, "globex", 2)
    body = client.get(VERIFY, params={"tenant_id": "globex"}, headers=as_super).json()
    assert (body["ok"], body["events_checked"], body["tenants_checked"]) == (True, 2, 1)
    tamper(database_url, "UPDATE audit_log SET action = 'user.logout' WHERE id = :id", id=ids[2])
    acme = {"Authorization": f"Bearer {make_token('tenant_admin', tenant_id='acme')}"}
    body = client.get(VERIFY, headers=acme).json()
    assert body["ok"] is False
    full = client.get(VERIFY, params={"full": "true"}, headers=as_super).json()
    assert (full["first_broken"]["event_id"], full["tenants_checked"]) == (ids[2], 2)
    assert (body["first_broken"]["event_id"], body["first_broken"]["check"]) == (ids[2], "hash")
    assert [chain["tenant_id"] for chain in body["chains"]] == ["acme"]
    assert client.get(VERIFY, params={"tenant_id": "globex"}, headers=acme).status_code == 403
    assert client.get(VERIFY).status_code == 401
    no_read = {"Authorization": f"Bearer {make_token('super_admin', scope='audit:write')}"}
    assert client.get(VERIFY, headers=no_read).status_code == 403
    audited = client.get(LIST, params={"action": "audit.verify"}, headers=acme).json()["items"]
    assert audited[0]["details"]["first_broken"]["event_id"] == ids[2]


def test_retention_endpoints(client: TestClient, as_super: dict[str, str], make_token: TokenFactory) -> None:
    client.post(EVENTS, json={"events": [{"tenant_id": "acme", "actor_id": "a", "action": "x"}]}, headers=as_super)
    acme = {"Authorization": f"Bearer {make_token('tenant_admin', tenant_id='acme')}"}
    assert client.put(LIST + "retention", json={"days": 30}, headers=acme).status_code == 403
    assert client.put(LIST + "retention", json={"days": 0}, headers=as_super).status_code == 422
    assert client.put(LIST + "retention", json={"days": 30}, headers=as_super).json()["default_days"] == 30
    held = client.put(LIST + "retention/tenants/acme", json={"legal_hold": True}, headers=as_super)
    assert held.json() == {"tenant_id": "acme", "days": None, "effective_days": 30, "legal_hold": True}
    seen = client.get(LIST + "retention", headers=acme).json()
    assert seen == {"default_days": 30, "tenants": [held.json()]}
    changes = client.get(LIST, params={"action": "audit.retention.update"}, headers=as_super).json()
    assert changes["total"] == 2


def test_an_unreachable_database_is_503_not_500(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, make_token: TokenFactory
) -> None:
    token = make_token("super_admin")
    monkeypatch.setenv("AUDIT_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/none")
    get_settings.cache_clear()
    with TestClient(create_api(), raise_server_exceptions=False) as client:
        for path in (LIST, VERIFY, LIST + "stats"):
            response = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 503, (path, response.text)
            assert response.headers["retry-after"] == "1"
    get_settings.cache_clear()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
