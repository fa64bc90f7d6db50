"""Console sessions over HTTP: the one-time hand-over sets the HttpOnly cookie, sign-out clears it,
expiry and refresh decisions, and every sign-in, refusal and sign-out is recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from audit_app.api import create_api
from audit_app.api.auth_routes import safe_next
from audit_app.audit.access import Client
from audit_app.audit.ingest import insert_tenants
from audit_app.auth import Principal
from audit_app.console_sessions import (
    EXPIRED,
    SESSION_COOKIE,
    SIGNED_OUT,
    Grant,
    SessionEndedError,
    digest,
    end_session,
    find,
    hand_logout,
    hand_over,
    needs_refresh,
    read_notice,
    record_failure,
    renewed_by_another,
    store_refresh,
)
from audit_app.models import AuditLog, ConsoleSession, utcnow
from audit_app.settings import ConfigError, Settings, get_settings, load_settings

TENANT = Principal(
    sub="tia", email="tia@acme.example", role="tenant_admin", scopes=frozenset({"audit:read"}), tenant_id="acme"
)
SUPER = Principal(sub="sam", email="sam@platform.example", role="super_admin", scopes=frozenset({"audit:read"}))


def _grant(principal: Principal = TENANT, *, hours: float = 1, kind: str = "token") -> Grant:
    return Grant(kind, principal, utcnow() + timedelta(hours=hours))


def _sign_in(client: TestClient, grant: Grant, next_path: str = "/events?result=failure") -> str:
    answer = client.get("/auth/session", params={"code": hand_over(grant, next_path)}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == next_path
    return str(answer.cookies[SESSION_COOKIE])


def _recorded(session: Session, action: str) -> list[AuditLog]:
    return list(session.exec(select(AuditLog).where(AuditLog.action == action)).all())


def test_a_hand_over_opens_a_session_behind_an_httponly_cookie_once(
    client: TestClient, session: Session, settings: Settings
) -> None:
    insert_tenants(session, {"acme": "northwind"})
    session.commit()
    code = hand_over(_grant(), "/events?action=user.login")
    answer = client.get("/auth/session", params={"code": code}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/events?action=user.login"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie
    assert f"Max-Age={8 * 3600}" in cookie
    secret = answer.cookies[SESSION_COOKIE]
    row = find(secret)
    assert row is not None
    assert row.id == digest(secret) != secret  # the secret itself is never stored
    assert (row.sub, row.role, row.tenant_id, row.kind) == ("tia", "tenant_admin", "acme", "token")
    assert row.expires_at - row.created_at == timedelta(hours=8)
    (event,) = _recorded(session, "console.sign_in")
    assert (event.tenant_id, event.actor_id, event.details["method"]) == ("acme", "tia", "token")
    # the code works once
    again = client.get("/auth/session", params={"code": code}, follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"].startswith("/?notice=")
    assert SESSION_COOKIE not in again.cookies
    assert "used" in (read_notice(again.headers["location"].split("=", 1)[1]) or "")


def test_the_cookie_is_secure_behind_an_https_public_url(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("AUDIT_PUBLIC_URL", "https://audit.example.com/")
    get_settings.cache_clear()
    assert get_settings().public_url == "https://audit.example.com"
    with TestClient(create_api()) as client:
        answer = client.get("/auth/session", params={"code": hand_over(_grant(), "/events")}, follow_redirects=False)
    assert "Secure" in answer.headers["set-cookie"]


def test_a_super_admin_sign_in_is_recorded_in_the_platform_tenant(client: TestClient, session: Session) -> None:
    _sign_in(client, _grant(SUPER, kind="demo"))
    (event,) = _recorded(session, "console.sign_in")
    assert (event.tenant_id, event.details["method"]) == ("platform", "demo")


def test_sessions_end_at_their_ttl_or_their_credential(client: TestClient, settings: Settings) -> None:
    secret = _sign_in(client, _grant(hours=20))
    row = find(secret)
    assert row is not None
    assert needs_refresh(row) is False
    with pytest.raises(SessionEndedError, match="expired"):
        needs_refresh(row, row.created_at + settings.session_ttl)  # AUDIT_SESSION_TTL, though the token lasts 20 h
    short = find(_sign_in(client, _grant(hours=0.5)))
    assert short is not None
    with pytest.raises(SessionEndedError) as ended:
        needs_refresh(short, short.created_at + timedelta(hours=0.6))  # never later than the credential
    assert str(ended.value) == EXPIRED
    short.refresh_token = "a refresh token"
    assert needs_refresh(short, short.created_at + timedelta(hours=0.6)) is True  # ...unless it can be renewed
    with pytest.raises(SessionEndedError):
        needs_refresh(short, short.created_at + timedelta(hours=9))  # but never past the TTL


def test_a_refresh_token_already_used_by_another_worker_does_not_end_the_session(
    client: TestClient, session: Session
) -> None:
    """Providers rotate refresh tokens: when two workers renew the same session at once, the loser's
    refusal must find the winner's renewal instead of ending the session (CI saw this race)."""
    secret = _sign_in(client, _grant())
    stored = session.get(ConsoleSession, digest(secret))
    assert stored is not None
    stored.kind, stored.refresh_token = "sso", "first"
    stored.token_expires_at = utcnow() - timedelta(seconds=1)
    session.add(stored)
    session.commit()
    row = find(secret)
    assert row is not None
    assert needs_refresh(row)
    assert renewed_by_another(secret, "first") is None  # nobody renewed it: a refusal is real
    store_refresh(row.id, Grant("sso", TENANT, utcnow() + timedelta(hours=1), refresh_token="second"))
    renewed = renewed_by_another(secret, "first")
    assert renewed is not None
    assert renewed.refresh_token == "second"
    assert renewed_by_another(secret, "second") is None  # a refusal of the current token is real
    end_session(secret, Client(None, None), expired=True)  # the provider refused the current token
    assert renewed_by_another(secret, "first") is None  # an ended session stays ended
    ended = find(secret)
    assert ended is not None
    with pytest.raises(SessionEndedError) as why:
        needs_refresh(ended)  # every later check (another page handler) says why: expired
    assert str(why.value) == EXPIRED


def test_sign_out_ends_the_session_and_only_its_own_logout_clears_the_cookie(
    client: TestClient, session: Session
) -> None:
    secret = _sign_in(client, _grant())
    other = _sign_in(client, _grant(SUPER))
    row = end_session(secret, Client("10.1.2.3", "pytest"))
    assert row is not None
    assert row.ended_at is not None
    with pytest.raises(SessionEndedError) as ended:
        needs_refresh(row)
    assert str(ended.value) == SIGNED_OUT
    assert end_session(secret, Client()) is not None  # ending twice records once
    (event,) = _recorded(session, "console.sign_out")
    assert (event.actor_id, event.ip_address, event.details["reason"]) == ("tia", "10.1.2.3", "signed out")
    code = hand_logout(row)
    # a link carrying the code but sent from a browser holding another session clears nothing
    client.cookies.set(SESSION_COOKIE, other)
    answer = client.get("/auth/logout", params={"code": code}, follow_redirects=False)
    assert answer.headers["location"] == "/"
    assert "set-cookie" not in answer.headers
    # the browser of the ended session: the cookie is cleared, the sign-in page says so
    code = hand_logout(row)
    client.cookies.set(SESSION_COOKIE, secret)
    answer = client.get("/auth/logout", params={"code": code}, follow_redirects=False)
    assert answer.headers["location"] == "/?signed_out=1"
    assert answer.headers["set-cookie"].startswith(f'{SESSION_COOKIE}=""')
    assert "Max-Age=0" in answer.headers["set-cookie"]
    assert find(other) is not None
    assert find(other).ended_at is None  # type: ignore[union-attr]


def test_refused_sign_ins_are_recorded_with_the_reason(session: Session, settings: Settings) -> None:
    insert_tenants(session, {"acme": "northwind"})
    session.commit()
    record_failure("No role: nothing maps", Client("10.0.0.9"), {"sub": "x1", "org": {"t": "acme"}}, "sso", "org.t")
    record_failure("That token was not accepted", Client(), None, "token")
    first, second = sorted(_recorded(session, "console.sign_in_failed"), key=lambda e: e.actor_id)
    assert (first.actor_id, first.tenant_id, first.result) == ("anonymous", "platform", "failure")
    assert first.details == {"method": "token", "reason": "That token was not accepted"}
    assert (second.actor_id, second.tenant_id, second.ip_address) == ("x1", "acme", "10.0.0.9")


def test_sign_in_with_sso_without_a_provider_says_so(client: TestClient) -> None:
    answer = client.get("/auth/login", params={"next": "/events"}, follow_redirects=False)
    assert answer.status_code == 303
    assert "not configured" in (read_notice(answer.headers["location"].split("=", 1)[1]) or "")
    callback = client.get("/auth/callback", params={"code": "x", "state": "y"}, follow_redirects=False)
    assert callback.headers["location"].startswith("/?notice=")
    assert SESSION_COOKIE not in callback.cookies


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        ("/events?tenant_id=acme&range=7d", "/events?tenant_id=acme&range=7d"),
        ("/statistics", "/statistics"),
        ("https://evil.example/x", "/events"),
        ("//evil.example/x", "/events"),
        ("/\\evil.example", "/events"),
        ("/auth/logout?code=x", "/events"),
        ("/?notice=x", "/events"),
        ("/events\r\nSet-Cookie: x=1", "/events"),
        (None, "/events"),
    ],
)
def test_only_pages_of_the_console_are_returned_to(asked: str | None, kept: str) -> None:
    assert safe_next(asked) == kept


def test_session_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    assert (settings.session_ttl, settings.oidc_scopes, settings.sso_enabled) == (
        timedelta(hours=8),
        "openid email profile",
        False,
    )
    monkeypatch.setenv("AUDIT_SESSION_TTL", "PT30M")
    monkeypatch.setenv("AUDIT_OIDC_ISSUER", "https://sso.example.com/realms/acme")
    monkeypatch.setenv("AUDIT_OIDC_CLIENT_ID", "audit-console")
    loaded = load_settings()
    assert (loaded.session_ttl, loaded.sso_enabled, loaded.secure_cookies) == (timedelta(minutes=30), True, False)
    monkeypatch.setenv("AUDIT_OIDC_SCOPES", "email profile")
    with pytest.raises(ConfigError, match=r"AUDIT_OIDC_SCOPES.*openid"):
        load_settings()
    monkeypatch.setenv("AUDIT_OIDC_SCOPES", "openid")
    monkeypatch.setenv("AUDIT_SESSION_TTL", "0")
    with pytest.raises(ConfigError, match="AUDIT_SESSION_TTL"):
        load_settings()
    monkeypatch.setenv("AUDIT_SESSION_TTL", "3600")
    monkeypatch.setenv("AUDIT_PUBLIC_URL", "audit.example.com")
    with pytest.raises(ConfigError, match="AUDIT_PUBLIC_URL"):
        load_settings()


def test_rows_hold_no_browser_secret(client: TestClient, session: Session) -> None:
    secret = _sign_in(client, _grant())
    stored = [str(value) for row in session.exec(select(ConsoleSession)).all() for value in row.model_dump().values()]
    assert all(secret not in value for value in stored)
