"""Verified bearer tokens are remembered only while valid, and only for the key that verified them."""

from __future__ import annotations

import pytest

from audit_app.auth import (
    VERIFIED_TOKENS,
    AuthError,
    LocalCheck,
    Principal,
    VerifiedTokens,
    decode_token,
    issue_download_token,
    issue_token,
)
from audit_app.settings import Settings
from tests.helpers import TEST_SECRET

CHECK: LocalCheck = (False, TEST_SECRET, ("HS256",), None, None)
ACME = Principal(sub="a", email="a@x", role="tenant_admin", scopes=frozenset({"audit:read"}), tenant_id="acme")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_is_answered_until_it_expires_with_the_leeway() -> None:
    clock = Clock()
    kept = VerifiedTokens(clock=clock)
    kept.keep("t", CHECK, ACME, expires=1_010)
    assert kept.get("t", CHECK) is ACME
    clock.now = 1_014.9  # exp + 5 s of leeway, as PyJWT accepts it
    assert kept.get("t", CHECK) is ACME
    clock.now = 1_015.0
    assert kept.get("t", CHECK) is None
    clock.now = 1_000.0
    assert kept.get("t", CHECK) is None  # forgotten, not merely hidden


def test_a_token_verified_with_another_key_issuer_or_audience_is_not_answered() -> None:
    kept = VerifiedTokens(clock=Clock())
    kept.keep("t", CHECK, ACME, expires=2_000)
    for other in (
        (False, "another-secret-" + "y" * 32, ("HS256",), None, None),
        (False, TEST_SECRET, ("HS256",), "https://issuer.example", None),
        (False, TEST_SECRET, ("HS256",), None, "audit-api"),
        (True, TEST_SECRET, ("HS256",), None, None),
    ):
        assert kept.get("t", other) is None
    assert kept.get("t", CHECK) is None


def test_the_least_recently_used_token_is_dropped_first() -> None:
    kept = VerifiedTokens(size=2, clock=Clock())
    kept.keep("a", CHECK, ACME, expires=2_000)
    kept.keep("b", CHECK, ACME, expires=2_000)
    assert kept.get("a", CHECK) is ACME
    kept.keep("c", CHECK, ACME, expires=2_000)
    assert kept.get("b", CHECK) is None
    assert kept.get("a", CHECK) is ACME
    assert kept.get("c", CHECK) is ACME


@pytest.fixture
def local() -> Settings:
    VERIFIED_TOKENS.clear()
    return Settings(database_url="sqlite://", jwt_secret=TEST_SECRET)


def test_decode_token_answers_a_verified_token_from_memory(local: Settings) -> None:
    token = issue_token(local, role="tenant_admin", tenant_id="acme", scope="audit:read")
    first = decode_token(token, local)
    assert decode_token(token, local) is first
    assert first.tenant_id == "acme"
    assert first.scopes == frozenset({"audit:read"})


def test_a_remembered_token_is_refused_once_the_key_or_issuer_changes(local: Settings) -> None:
    token = issue_token(local, role="super_admin")
    decode_token(token, local)
    with pytest.raises(AuthError, match="Signature verification failed"):
        decode_token(token, Settings(database_url="sqlite://", jwt_secret="rotated-secret-" + "z" * 32))
    with pytest.raises(AuthError, match="iss"):
        decode_token(token, Settings(database_url="sqlite://", jwt_secret=TEST_SECRET, jwt_issuer="https://idp"))


def test_refused_tokens_are_never_remembered(local: Settings) -> None:
    expired = issue_token(local, role="super_admin", ttl=-60)
    download = issue_download_token(local, decode_token(issue_token(local, role="super_admin"), local))
    for token in (expired, download, expired):
        with pytest.raises(AuthError):
            decode_token(token, local)
