"""Authentication, scopes and tenant scoping of every endpoint, through HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from audit_app.api import create_api
from audit_app.auth import (
    SCOPE_EXPORT,
    SCOPE_READ,
    SCOPE_WRITE,
    Principal,
    download_signing_key,
    issue_download_token,
)
from audit_app.models import SpentDownloadToken, utcnow
from audit_app.settings import ConfigError, Settings, get_settings
from tests.api.helpers import LIST, World, bearer, ids_of
from tests.helpers import TEST_SECRET, TokenFactory

pytestmark = pytest.mark.usefixtures("world")

EVENTS = "/api/v1/audit/events"
READS = [LIST, LIST.rstrip("/"), LIST + "actions", LIST + "resource-types", LIST + "stats", LIST + "some-id"]
ONE_EVENT = {"events": [{"tenant_id": "acme", "actor_id": "svc", "action": "user.login"}]}


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "mallory", "role": "super_admin", "scope": "audit:read audit:export", "exp": now + 600} | extra


def bad_tokens() -> dict[str, str]:
    """Tokens that must all be refused with 401, by what is wrong with them."""
    return {
        "garbage": "not-a-jwt",
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.",
        "alg none, fake signature": f"{b64({'alg': 'none'})}.{b64(claims())}.{b64({'x': 1})}",
        "wrong secret": jwt.encode(claims(), "another-secret-" + "y" * 32, algorithm="HS256"),
        "HS512 not allowed": jwt.encode(claims(), TEST_SECRET, algorithm="HS512"),
        "expired": jwt.encode(claims(exp=int(time.time()) - 60), TEST_SECRET, algorithm="HS256"),
        "no exp": jwt.encode({k: v for k, v in claims().items() if k != "exp"}, TEST_SECRET, algorithm="HS256"),
        "no sub": jwt.encode({k: v for k, v in claims().items() if k != "sub"}, TEST_SECRET, algorithm="HS256"),
        "unknown role": jwt.encode(claims(role="root"), TEST_SECRET, algorithm="HS256"),
        "tenant admin without tenant": jwt.encode(claims(role="tenant_admin"), TEST_SECRET, algorithm="HS256"),
        "partner admin without partner": jwt.encode(claims(role="partner_admin"), TEST_SECRET, algorithm="HS256"),
        "download token as bearer": jwt.encode(claims(use="download"), TEST_SECRET, algorithm="HS256"),
        "oversized": "a" * 10_000,
    }


def assert_401(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert isinstance(response.json()["detail"], str)


def test_missing_or_malformed_header_is_401_everywhere(client: TestClient) -> None:
    for authorization in (None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer a b", "bearer"):
        headers = {} if authorization is None else {"Authorization": authorization}
        for path in [*READS, LIST + "export"]:
            assert_401(client.get(path, headers=headers))
        assert_401(client.post(EVENTS, json=ONE_EVENT, headers=headers))


def test_bad_tokens_are_401(client: TestClient) -> None:
    for reason, token in bad_tokens().items():
        for path in (LIST, LIST + "stats", LIST + "export"):
            response = client.get(path, headers=bearer(token))
            assert response.status_code == 401, (reason, path, response.text)
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert client.post(EVENTS, json=ONE_EVENT, headers=bearer(token)).status_code == 401, reason


def test_scheme_is_case_insensitive(client: TestClient, make_token: TokenFactory) -> None:
    response = client.get(LIST, headers={"Authorization": f"bearer {make_token()}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        (SCOPE_READ, {"read"}),
        (SCOPE_EXPORT, {"export"}),
        (SCOPE_WRITE, {"write"}),
        (f"{SCOPE_READ} {SCOPE_EXPORT}", {"read", "export"}),
        ("", set()),
        ("audit:admin openid", set()),
    ],
)
def test_scopes_decide_what_a_token_may_do(
    client: TestClient, make_token: TokenFactory, world: World, scope: str, allowed: set[str]
) -> None:
    headers = bearer(make_token("super_admin", scope=scope))
    some_id = sorted(world.all)[0]
    for path in [*READS[:-1], LIST + some_id]:
        response = client.get(path, headers=headers)
        assert response.status_code == (200 if "read" in allowed else 403), (path, response.text)
    response = client.get(LIST + "export", headers=headers)
    assert response.status_code == (200 if "export" in allowed else 403)
    response = client.post(EVENTS, json=ONE_EVENT, headers=headers)
    assert response.status_code == (201 if "write" in allowed else 403)
    if not allowed:
        assert response.json() == {"detail": "This token lacks the 'audit:write' scope."}


def test_partner_admin_sees_only_its_partners_tenants(
    client: TestClient, as_northwind: dict[str, str], world: World
) -> None:
    body = client.get(LIST, headers=as_northwind).json()
    assert ids_of(body) == world.of("acme", "globex")
    assert body["total"] == 6
    assert client.get(LIST, params={"tenant_id": "globex"}, headers=as_northwind).json()["total"] == 2
    assert client.get(LIST, params={"partner_id": "northwind"}, headers=as_northwind).json()["total"] == 6
    for params in ({"tenant_id": "initech"}, {"tenant_id": "umbrella"}, {"partner_id": "southwind"}):
        for path in (LIST, LIST + "stats", LIST + "export"):
            response = client.get(path, params=params, headers=as_northwind)
            assert response.status_code == 403, (path, params)
            assert "initech" not in response.text
            assert "southwind" not in response.text
    actions = client.get(LIST + "actions", headers=as_northwind).json()["actions"]
    assert actions == ["apikey.revoke", "role.assign", "user.delete", "user.login"]
    stats = client.get(LIST + "stats", headers=as_northwind).json()
    assert stats["total"] == 6
    for entry_id in world.of("initech", "umbrella"):
        assert client.get(LIST + entry_id, headers=as_northwind).status_code == 404
    for entry_id in world.of("globex"):
        assert client.get(LIST + entry_id, headers=as_northwind).status_code == 200


def test_tenant_admin_never_sees_another_tenant(
    client: TestClient, as_acme: dict[str, str], as_super: dict[str, str], world: World
) -> None:
    body = client.get(LIST, params={"per_page": 500}, headers=as_acme).json()
    assert ids_of(body) == world.of("acme")
    assert body["total"] == 4
    assert body["pages"] == 1
    # Its own partner is a valid filter, but it still shows only its own tenant.
    assert ids_of(client.get(LIST, params={"partner_id": "northwind"}, headers=as_acme).json()) == world.of("acme")
    # Filters that would match only other tenants' events find nothing within the scope.
    assert client.get(LIST, params={"action": "apikey.revoke"}, headers=as_acme).json()["total"] == 0
    assert client.get(LIST, params={"actor_id": "globex-alice"}, headers=as_acme).json()["total"] == 0
    foreign = ("globex", "initech", "umbrella", "northwind", "southwind", "apikey", "initech_vault", "umbrella")
    for params in (
        {"tenant_id": "globex"},
        {"tenant_id": "initech"},
        {"partner_id": "southwind"},
        {"partner_id": "nobody"},
        {"tenant_id": "acme", "partner_id": "southwind"},
    ):
        for path in (LIST, LIST + "stats", LIST + "export"):
            response = client.get(path, params=params, headers=as_acme)
            assert response.status_code == 403, (path, params)
            assert set(response.json()) == {"detail"}
            for name in foreign:
                if name not in params.values():
                    assert name not in response.text
    stats = client.get(LIST + "stats", headers=as_acme).json()
    assert stats["total"] == 4
    assert {actor["actor_id"] for actor in stats["top_actors"]} == {"acme-alice", "acme-bob"}
    assert set(stats["by_action"]) == {"user.login", "role.assign", "user.delete"}
    assert client.get(LIST + "actions", headers=as_acme).json() == {
        "actions": ["role.assign", "user.delete", "user.login"]
    }
    assert client.get(LIST + "resource-types", headers=as_acme).json() == {
        "resource_types": ["role", "session", "user"]
    }
    export = client.get(LIST + "export", headers=as_acme)
    assert export.status_code == 200
    assert not any(name in export.text for name in ("globex", "initech", "umbrella"))
    assert len(export.text.strip().splitlines()) == 5  # header + acme's 4 events
    unknown = client.get(LIST + "00000000-0000-0000-0000-000000000000", headers=as_acme)
    for entry_id in world.of("globex", "initech", "umbrella"):
        response = client.get(LIST + entry_id, headers=as_acme)
        assert response.status_code == 404
        assert response.json() == unknown.json()
    # The super admin sees the tenant's view events, none leaked into other tenants' logs.
    views = client.get(LIST, params={"action": "audit.view"}, headers=as_super).json()
    assert views["total"] == 0


def test_download_token_exports_with_the_callers_scope_and_nothing_else(
    client: TestClient, settings: Settings, world: World
) -> None:
    acme = Principal(
        sub="tia", email="tia@acme.example", role="tenant_admin", scopes=frozenset({SCOPE_EXPORT}), tenant_id="acme"
    )
    token = issue_download_token(settings, acme)
    response = client.get(LIST + "export", params={"download_token": token, "format": "jsonl"})
    assert response.status_code == 200
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert {row["id"] for row in rows} == world.of("acme")
    assert_401(client.get(LIST + "export", params={"download_token": token}))  # single use: spent above
    another = issue_download_token(settings, acme)
    assert client.get(LIST + "export", params={"download_token": another, "tenant_id": "globex"}).status_code == 403
    # Useless anywhere else, and not a bearer token.
    assert_401(client.get(LIST, params={"download_token": token}))
    assert_401(client.get(LIST, headers=bearer(token)))
    assert_401(client.get(LIST + "export", headers=bearer(token)))
    # A "download" token signed with the bearer key is not a download token.
    forged = jwt.encode(claims(use="download", scope=SCOPE_EXPORT), TEST_SECRET, algorithm="HS256")
    assert_401(client.get(LIST + "export", params={"download_token": forged}))
    expired = issue_download_token(settings, acme, ttl=-60)
    assert_401(client.get(LIST + "export", params={"download_token": expired}))


def test_public_key_deployments_verify_bearer_and_download_tokens(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, world: World
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    monkeypatch.delenv("AUDIT_JWT_SECRET")
    monkeypatch.setenv("AUDIT_JWT_PUBLIC_KEY", public_pem)
    get_settings.cache_clear()
    pk_settings = get_settings()
    client = TestClient(create_api())
    good = jwt.encode(claims(role="tenant_admin", tenant_id="acme"), key, algorithm="ES256")
    assert ids_of(client.get(LIST, headers=bearer(good)).json()) == world.of("acme")
    # Algorithm confusion: the public key used as an HMAC secret must not verify.
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims())}"
    mac = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"
    hs256 = jwt.encode(claims(), TEST_SECRET, algorithm="HS256")
    for token in (confused, hs256, f"{b64({'alg': 'none'})}.{b64(claims())}."):
        assert_401(client.get(LIST, headers=bearer(token)))
    principal = Principal(sub="tia", email="", role="tenant_admin", scopes=frozenset({SCOPE_EXPORT}), tenant_id="acme")
    download = issue_download_token(pk_settings, principal)
    response = client.get(LIST + "export", params={"download_token": download})
    assert response.status_code == 200
    assert len(response.text.strip().splitlines()) == 5
    assert_401(client.get(LIST, headers=bearer(download)))


def _public_pem(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.mark.parametrize("configured", ["rsa", "ec"])
def test_a_token_of_the_other_key_type_is_401_everywhere(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, world: World, configured: str
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    key, other, other_alg = (rsa_key, ec_key, "ES256") if configured == "rsa" else (ec_key, rsa_key, "RS256")
    monkeypatch.delenv("AUDIT_JWT_SECRET")
    monkeypatch.setenv("AUDIT_JWT_PUBLIC_KEY", _public_pem(key))
    get_settings.cache_clear()
    client = TestClient(create_api(), raise_server_exceptions=False)
    own_alg = "RS256" if configured == "rsa" else "ES256"
    assert client.get(LIST, headers=bearer(jwt.encode(claims(), key, algorithm=own_alg))).status_code == 200
    tokens = {
        "issue example": f"{b64({'alg': other_alg})}.e30.AAAA",
        "signed by a key of the other type": jwt.encode(claims(), other, algorithm=other_alg),
        "other header, any signature, full claims": f"{b64({'alg': other_alg, 'typ': 'JWT'})}.{b64(claims())}.AAAA",
    }
    for reason, token in tokens.items():
        for path in (LIST, LIST + "export", LIST + "verify", LIST + "stats"):
            response = client.get(path, headers=bearer(token))
            assert response.status_code == 401, (reason, path, response.text)
            assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token", error_description=')
        assert_401(client.post(EVENTS, json=ONE_EVENT, headers=bearer(token)))


def test_a_public_key_of_neither_kind_stops_start_up(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUDIT_JWT_SECRET")
    monkeypatch.setenv("AUDIT_JWT_PUBLIC_KEY", "not a pem")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="AUDIT_JWT_PUBLIC_KEY is not a PEM public key"):
        create_api()


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", "s" * 256),
        ("email", "e" * 309 + "@example.com"),
        ("sub", "alice\x00"),
        ("email", "alice@example.com\x00"),
        ("role", "super_admin\x00"),
        ("scope", "audit:read audit:export\x00"),
        ("name", "Alice\x00"),
    ],
)
def test_claims_the_log_cannot_store_are_401_at_authentication(
    client: TestClient, world: World, claim: str, value: str
) -> None:
    token = jwt.encode(claims(**{claim: value}), TEST_SECRET, algorithm="HS256")
    some_id = sorted(world.all)[0]
    for path in (LIST, LIST + some_id, LIST + "verify", LIST + "export", LIST + "stats"):
        response = client.get(path, headers=bearer(token))
        assert_401(response)
        assert repr(claim) in response.json()["detail"], response.text
    assert_401(client.post(EVENTS, json=ONE_EVENT, headers=bearer(token)))
    # Nothing was exported unrecorded: no access event exists at all.
    admin = jwt.encode(claims(scope="audit:read"), TEST_SECRET, algorithm="HS256")
    assert client.get(LIST, params={"action": "audit.export"}, headers=bearer(admin)).json()["total"] == 0


def test_claims_at_the_column_limits_still_authenticate(client: TestClient, world: World) -> None:
    token = jwt.encode(claims(sub="s" * 255, email="e" * 308 + "@example.com"), TEST_SECRET, algorithm="HS256")
    some_id = sorted(world.all)[0]
    assert client.get(LIST + some_id, headers=bearer(token)).status_code == 200
    assert client.get(LIST + "verify", headers=bearer(token)).status_code == 200


def test_a_download_token_works_once_whichever_worker_sees_it(
    settings: Settings, session: Session, world: World
) -> None:
    acme = Principal(
        sub="tia", email="tia@acme.example", role="tenant_admin", scopes=frozenset({SCOPE_EXPORT}), tenant_id="acme"
    )
    token = issue_download_token(settings, acme)
    first, second = TestClient(create_api()), TestClient(create_api())  # two API workers on one database
    response = first.get(LIST + "export", params={"download_token": token})
    assert response.status_code == 200, response.text
    for worker in (first, second):
        response = worker.get(LIST + "export", params={"download_token": token})
        assert_401(response)
        assert "already used" in response.json()["detail"]
    # Spent tokens are forgotten once they have expired anyway.
    session.add(SpentDownloadToken(jti="long-expired", expires_at=utcnow() - timedelta(minutes=1)))
    session.commit()
    assert (
        second.get(LIST + "export", params={"download_token": issue_download_token(settings, acme)}).status_code == 200
    )
    session.expire_all()
    spent = session.execute(select(col(SpentDownloadToken.jti))).scalars().all()
    assert len(spent) == 2
    assert "long-expired" not in spent


def test_a_download_token_without_jti_is_refused(client: TestClient, settings: Settings) -> None:
    unnamed = jwt.encode(
        claims(use="download", scope=SCOPE_EXPORT) | {"sub": "tia"}, download_signing_key(settings), algorithm="HS256"
    )
    assert_401(client.get(LIST + "export", params={"download_token": unnamed}))
