"""Sign-in state: tokens verified on the server, personas only in demo mode, clear messages."""

# Event handlers called on a state instance run directly; mypy sees them as EventHandler objects.
# mypy: disable-error-code="operator"

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audit_app.auth import issue_download_token, issue_token
from audit_app.settings import Settings, get_settings
from audit_app.ui.state.auth import EXPIRED_NOTICE, HOME_ROUTE, AuthState

SECRET = "ui-test-secret-" + "z" * 32


@pytest.fixture
def demo_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    """Settings with a known secret and demo mode on."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIT_JWT_SECRET", SECRET)
    monkeypatch.setenv("AUDIT_DEMO", "1")
    monkeypatch.delenv("AUDIT_JWT_PUBLIC_KEY", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _state() -> AuthState:
    return AuthState(_reflex_internal_init=True)  # type: ignore[call-arg]


def _redirects_to(spec: object, path: str) -> bool:
    return path in str(spec)


def test_a_valid_token_signs_in_and_fills_the_header(demo_settings: Settings) -> None:
    state = _state()
    token = issue_token(demo_settings, role="partner_admin", partner_id="northwind", email="p@n.example")
    spec = state.sign_in({"token": f"  {token}\n"})
    assert _redirects_to(spec, HOME_ROUTE)
    assert (state.who, state.role_label, state.scope_label) == (
        "p@n.example",
        "Partner admin",
        "tenants of partner northwind",
    )
    assert state.token == token
    assert state.notice == ""


def test_garbage_expired_and_download_tokens_are_refused(demo_settings: Settings) -> None:
    state = _state()
    assert state.sign_in({"token": "garbage"}) is None
    assert "not accepted" in state.notice
    assert state.token == ""
    assert state.sign_in({"token": issue_token(demo_settings, role="super_admin", ttl=-60)}) is None
    assert "expired" in state.notice
    principal_token = issue_token(demo_settings, role="tenant_admin", tenant_id="acme")
    state.sign_in({"token": principal_token})
    download = issue_download_token(demo_settings, state._principal)  # type: ignore[arg-type]
    assert state.sign_in({"token": download}) is None
    assert "not accepted" in state.notice
    assert state.who == ""


def test_a_token_without_read_scope_cannot_open_the_console(demo_settings: Settings) -> None:
    state = _state()
    writer = issue_token(demo_settings, role="super_admin", scope="audit:write audit:export")
    assert state.sign_in({"token": writer}) is None
    assert "audit:read" in state.notice
    assert state.token == ""
    assert state._principal is None


def test_a_stored_token_that_expired_returns_to_sign_in_with_the_reason(demo_settings: Settings) -> None:
    state = _state()
    state.token = issue_token(demo_settings, role="super_admin", ttl=-60)
    assert state.load_sign_in() is None
    assert state.notice == EXPIRED_NOTICE
    assert state.token == ""
    assert [p["key"] for p in state.personas] == ["super", "partner", "tenant"]


def test_personas_only_in_demo_mode(demo_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    state = _state()
    assert _redirects_to(state.sign_in_persona("tenant"), HOME_ROUTE)
    assert state.scope_label == "tenant acme"
    state.sign_out()
    assert (state.token, state.who, state._principal) == ("", "", None)
    monkeypatch.setenv("AUDIT_DEMO", "0")
    get_settings.cache_clear()
    assert state.sign_in_persona("super") is None
    assert state.token == ""
    assert "not available" in state.notice
    assert state.load_sign_in() is None
    assert state.personas == []
