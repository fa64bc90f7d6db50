"""Claims to roles: dotted claim paths, lists, AUDIT_ROLE_MAP, and the settings a provider needs."""

from __future__ import annotations

from typing import Any

import pytest

from audit_app.auth import AuthError, ClaimsMapping, UnmappedRoleError, parse_role_map, principal_from_claims
from audit_app.settings import ConfigError, Settings

KEYCLOAK = ClaimsMapping(
    role_claim="realm_access.roles",
    tenant_claim="tenant",
    partner_claim="org.partner",
    scope_claim="scope",
    role_map=parse_role_map(
        "audit-super=super_admin:audit:read audit:export audit:admin,audit-viewers=tenant_admin:audit:read,"
        "audit-partners=partner_admin"
    ),
)


def claims(**values: Any) -> dict[str, Any]:
    return {"sub": "u-1", "email": "u@example.com", **values}


def test_the_role_map_reads_the_format_of_the_issue() -> None:
    entries = dict(KEYCLOAK.role_map)
    assert entries["audit-super"].role == "super_admin"
    assert entries["audit-super"].scopes == {"audit:read", "audit:export", "audit:admin"}
    assert entries["audit-viewers"].scopes == {"audit:read"}
    assert entries["audit-partners"].scopes == frozenset()


@pytest.mark.parametrize("text", ["audit-super", "=super_admin", "x=root:audit:read", "x=:audit:read"])
def test_a_malformed_role_map_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigError, match="AUDIT_ROLE_MAP"):
        parse_role_map(text)


def test_dotted_paths_and_lists_map_to_role_tenant_and_scopes() -> None:
    principal = principal_from_claims(
        claims(realm_access={"roles": ["offline_access", "audit-viewers"]}, tenant=["acme"], scope="openid email"),
        KEYCLOAK,
    )
    assert (principal.role, principal.tenant_id, principal.partner_id) == ("tenant_admin", "acme", None)
    assert principal.scopes == {"openid", "email", "audit:read"}
    partner = principal_from_claims(
        claims(realm_access={"roles": ["audit-partners"]}, org={"partner": "northwind"}), KEYCLOAK
    )
    assert (partner.role, partner.partner_id, partner.scopes) == ("partner_admin", "northwind", frozenset())


def test_the_first_matching_entry_of_the_map_wins() -> None:
    principal = principal_from_claims(claims(realm_access={"roles": ["audit-viewers", "audit-super"]}), KEYCLOAK)
    assert principal.role == "super_admin"


def test_a_scope_claim_may_be_a_list() -> None:
    principal = principal_from_claims(
        claims(role="super_admin", scp=["audit:read", "audit:write"]), ClaimsMapping(scope_claim="scp")
    )
    assert principal.scopes == {"audit:read", "audit:write"}


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"realm_access": {"roles": ["marketing"]}}, "matches no entry of AUDIT_ROLE_MAP"),
        ({}, "(absent) matches no entry"),
        ({"realm_access": "audit-super"}, "(absent) matches no entry"),  # a string where a mapping was expected
    ],
)
def test_a_person_mapped_to_no_role_is_refused_saying_why(values: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnmappedRoleError) as refused:
        principal_from_claims(claims(**values), KEYCLOAK)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"realm_access": {"roles": ["audit-viewers"]}}, "must carry a tenant claim"),
        ({"realm_access": {"roles": ["audit-viewers"]}, "tenant": ["acme", "globex"]}, "names 2 values"),
        ({"realm_access": {"roles": [1]}}, "string or a list of strings"),
        ({"realm_access": {"roles": ["audit-super"]}, "scope": {"a": 1}}, "string or a list of strings"),
    ],
)
def test_claims_of_the_wrong_shape_are_refused(values: dict[str, Any], reason: str) -> None:
    with pytest.raises(AuthError, match=reason):
        principal_from_claims(claims(**values), KEYCLOAK)


def test_without_a_map_the_role_claim_names_the_role() -> None:
    mapping = ClaimsMapping(role_claim="app.roles")
    assert principal_from_claims(claims(app={"roles": ["viewer", "super_admin"]}), mapping).role == "super_admin"
    with pytest.raises(AuthError, match="Unknown role 'viewer'"):
        principal_from_claims(claims(app={"roles": ["viewer"]}), mapping)


def test_provider_keys_need_an_audience(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUDIT_JWT_SECRET", "AUDIT_JWT_PUBLIC_KEY", "AUDIT_JWT_AUDIENCE", "AUDIT_OIDC_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(oidc_issuer="https://idp.example.com/realms/acme")
    with pytest.raises(ConfigError, match="AUDIT_JWT_AUDIENCE"):
        settings.require_signing_key()
    assert Settings(oidc_issuer="https://idp.example.com", oidc_client_id="audit").token_audience == "audit"
    Settings(jwt_jwks_url="https://idp.example.com/keys", jwt_audience="api").require_signing_key()
    with pytest.raises(ValueError, match="http"):
        Settings(oidc_issuer="idp.example.com")
