"""Access tokens of a real OpenID provider (Canaille on loopback): keys by `kid`, rotation, claims mapping."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from jwt.utils import base64url_encode

from audit_app.api import create_api
from audit_app.settings import Settings, get_settings
from audit_app.startup import checked_settings
from tests.api.helpers import LIST, World
from tests.oidc_provider import API_AUDIENCE, PROVIDER_ENV, Provider, Relay

Configure = Callable[..., Settings]


@pytest.fixture
def configure(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Configure:
    """Re-read the settings for a provider deployment: no local key, the provider's claims mapping."""

    def apply(**env: str) -> Settings:
        monkeypatch.delenv("AUDIT_JWT_SECRET")
        for name, value in {**PROVIDER_ENV, **env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return get_settings()

    return apply


@pytest.fixture
def api(provider: Provider, configure: Configure) -> Iterator[TestClient]:
    """The API trusting the provider by discovery (AUDIT_OIDC_ISSUER) alone."""
    provider.client()
    configure(AUDIT_OIDC_ISSUER=provider.issuer, AUDIT_JWKS_MIN_REFRESH_SECONDS="0.2")
    with TestClient(create_api()) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def listed_tenants(client: TestClient, token: str) -> set[str]:
    response = client.get(LIST, params={"per_page": 500}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return {item["tenant_id"] for item in response.json()["items"]}


def test_each_role_sees_exactly_its_scope(api: TestClient, provider: Provider, world: World) -> None:
    super_admin = provider.person(groups=("audit-super",))
    partner_admin = provider.person(groups=("audit-partners",), partner="northwind")
    tenant_admin = provider.person(groups=("audit-viewers",), tenant="acme")
    assert listed_tenants(api, provider.access_token(super_admin)) == {"acme", "globex", "initech", "umbrella"}
    assert listed_tenants(api, provider.access_token(partner_admin)) == {"acme", "globex"}
    assert listed_tenants(api, provider.access_token(tenant_admin)) == {"acme"}
    # The role map grants scopes: only the super admins' entry grants audit:export.
    assert api.get(LIST + "export", headers=bearer(provider.access_token(super_admin))).status_code == 200
    assert api.get(LIST + "export", headers=bearer(provider.access_token(tenant_admin))).status_code == 403


def test_a_person_mapped_to_no_role_is_refused_saying_why(api: TestClient, provider: Provider) -> None:
    outsider = provider.person(groups=("marketing",), tenant="acme")
    response = api.get(LIST, headers=bearer(provider.access_token(outsider)))
    assert response.status_code == 401
    assert "matches no entry of AUDIT_ROLE_MAP" in response.json()["detail"]
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token", error_description="No role')


def test_a_request_without_a_token_gets_a_bare_challenge(api: TestClient) -> None:
    response = api.get(LIST)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"  # RFC 6750: no error code without a token


def test_a_token_for_another_audience_is_refused(api: TestClient, provider: Provider) -> None:
    provider.client("other-app", audience=())
    person = provider.person(groups=("audit-super",))
    response = api.get(LIST, headers=bearer(provider.access_token(person, "other-app")))
    assert response.status_code == 401
    assert "audience" in response.json()["detail"].lower()


def test_a_token_of_another_issuer_is_refused(provider: Provider, configure: Configure) -> None:
    provider.client()
    configure(AUDIT_OIDC_ISSUER=provider.issuer, AUDIT_JWT_ISSUER="https://idp.example.com")
    token = provider.access_token(provider.person(groups=("audit-super",)))
    with TestClient(create_api()) as client:
        response = client.get(LIST, headers=bearer(token))
    assert response.status_code == 401
    assert "issuer" in response.json()["detail"].lower()


def test_rotation_on_the_provider_needs_no_restart(api: TestClient, provider: Provider) -> None:
    person = provider.person(groups=("audit-viewers",), tenant="acme")
    before = provider.access_token(person)
    assert api.get(LIST, headers=bearer(before)).status_code == 200

    new_kid = provider.rotate_key()
    time.sleep(0.3)  # past AUDIT_JWKS_MIN_REFRESH_SECONDS of this deployment
    after = provider.access_token(person)
    assert jwt.get_unverified_header(after)["kid"] == new_kid != jwt.get_unverified_header(before)["kid"]
    assert api.get(LIST, headers=bearer(after)).status_code == 200
    assert api.get(LIST, headers=bearer(before)).status_code == 200  # the old key is still published

    newest_kid = provider.rotate_key(keep_old=False)
    time.sleep(0.3)
    newest = provider.access_token(person)
    assert jwt.get_unverified_header(newest)["kid"] == newest_kid
    assert api.get(LIST, headers=bearer(newest)).status_code == 200


def super_admin_claims(issuer: str) -> dict[str, object]:
    """Claims that would make a super admin of the API, if the signature held."""
    return {
        "sub": "mallory",
        "iss": issuer,
        "aud": API_AUDIENCE,
        "exp": int(time.time()) + 300,
        "groups": ["audit-super"],
    }


def forged(kid: str, issuer: str, algorithm: str = "RS256", key: object | None = None) -> str:
    """A token with the right claims, signed by a key the provider never published."""
    signer = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = super_admin_claims(issuer)
    return jwt.encode(claims, signer, algorithm=algorithm, headers={"kid": kid})  # type: ignore[arg-type]


def test_unknown_kids_refetch_the_key_set_at_most_once_a_minute(provider: Provider, configure: Configure) -> None:
    provider.client()
    configure(AUDIT_OIDC_ISSUER=provider.issuer)  # the default: at most one re-fetch a minute
    with TestClient(create_api()) as client:
        known = provider.access_token(provider.person(groups=("audit-super",)))
        assert client.get(LIST, headers=bearer(known)).status_code == 200
        fetches = provider.jwks_fetches
        for attempt in range(5):
            response = client.get(LIST, headers=bearer(forged(f"made-up-{attempt}", provider.issuer)))
            assert response.status_code == 401
            assert "publishes no usable key" in response.json()["detail"]
        assert provider.jwks_fetches == fetches  # the set was fetched just now: no re-fetch within the minute
        assert client.get(LIST, headers=bearer(known)).status_code == 200


def hmac_forged(kid: str, issuer: str, secret: bytes) -> str:
    """An HS256 token whose secret is `secret` (PyJWT refuses to sign with a public key, attackers don't)."""
    claims = super_admin_claims(issuer)
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = ".".join(base64url_encode(json.dumps(part).encode()).decode() for part in (header, claims))
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64url_encode(signature).decode()}"


def test_a_token_signed_with_the_published_key_as_hmac_secret_is_refused(api: TestClient, provider: Provider) -> None:
    known = provider.access_token(provider.person(groups=("audit-super",)))
    kid = jwt.get_unverified_header(known)["kid"]
    published = jwt.PyJWKClient(provider.metadata["jwks_uri"]).get_signing_key(kid).key
    for secret in (
        published.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        json.dumps(published_jwk(provider, kid)).encode(),
    ):
        response = api.get(LIST, headers=bearer(hmac_forged(kid, provider.issuer, secret)))
        assert response.status_code == 401
        assert "alg value is not allowed" in response.json()["detail"]
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def published_jwk(provider: Provider, kid: str) -> dict[str, object]:
    keys = httpx.get(provider.metadata["jwks_uri"]).json()["keys"]
    return next(key for key in keys if key["kid"] == kid)


def test_provider_unreachable_at_start_up_is_not_fatal(
    provider: Provider, configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    """AUDIT_JWT_JWKS_URL alone, through a relay that is down at start-up and comes up later."""
    provider.client()
    relay = Relay(target_port=provider.server.port)
    configure(
        AUDIT_JWT_JWKS_URL=f"http://127.0.0.1:{relay.port}/oauth/jwks.json",
        AUDIT_JWT_ISSUER=provider.issuer,
        AUDIT_JWKS_MIN_REFRESH_SECONDS="0.2",
    )
    with caplog.at_level(logging.WARNING, logger="audit_app.oidc"):
        checked_settings()
    assert [record.getMessage() for record in caplog.records if record.name == "audit_app.oidc"] == [
        caplog.records[-1].getMessage()
    ]
    assert "unreachable at start-up" in caplog.records[-1].getMessage()
    token = provider.access_token(provider.person(groups=("audit-super",)))
    try:
        with TestClient(create_api()) as client:
            response = client.get(LIST, headers=bearer(token))
            assert response.status_code == 401
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith(
                'Bearer error="invalid_token", error_description="The token\'s signing key is unavailable'
            )
            assert "could not be fetched" in response.json()["detail"]
            relay.start()
            time.sleep(0.3)
            recovered = client.get(LIST, headers=bearer(token))
            assert recovered.status_code == 200, recovered.text
    finally:
        relay.stop()
