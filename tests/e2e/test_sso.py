"""Sign-in with SSO in Chromium against a real OpenID provider (Canaille, which enforces PKCE for
public clients such as this console): each role, no role, wrong state, a replayed code, expiry,
refresh, sign-out at the provider, and a deep link that survives sign-in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect
from sqlalchemy import update
from sqlmodel import col, select

from audit_app.console_sessions import SESSION_COOKIE
from audit_app.models import AuditLog, ConsoleSession, utcnow
from bench.cluster import free_port
from tests.e2e.conftest import ENV_ASSET, Console, _pin_backend_port, result_count, running_console
from tests.oidc_provider import CONSOLE_CLIENT, PROVIDER_ENV, SCOPES, Provider

pytestmark = pytest.mark.e2e

PEOPLE = {
    "super": {"groups": ("audit-super",), "scope": "all tenants", "role": "Super admin", "recorded_in": "platform"},
    "partner": {
        "groups": ("audit-partners",),
        "partner": "northwind",
        "scope": "tenants of partner northwind",
        "role": "Partner admin",
        "recorded_in": "platform",
    },
    "tenant": {
        "groups": ("audit-viewers",),
        "tenant": "acme",
        "scope": "tenant acme",
        "role": "Tenant admin",
        "recorded_in": "acme",
    },
}


@pytest.fixture(scope="module")
def sso_console(tmp_path_factory: pytest.TempPathFactory, iam_server: Any) -> Iterator[Console]:
    """The console with only the provider's settings added: issuer, public client, scopes, public URL."""
    port = free_port()
    env = {
        **PROVIDER_ENV,
        "AUDIT_OIDC_ISSUER": str(iam_server.url).rstrip("/"),
        "AUDIT_OIDC_CLIENT_ID": CONSOLE_CLIENT,
        "AUDIT_OIDC_SCOPES": SCOPES,
        "AUDIT_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    with running_console(tmp_path_factory.mktemp("sso"), seed_events=300, extra_env=env, port=port) as (console, _):
        yield console


@pytest.fixture
def sso(provider: Provider, sso_console: Console) -> Iterator[Provider]:
    """The provider with the console registered as a public client redirecting to its callback."""
    # ID tokens name the console alone (Authlib requires `azp` of a token naming several audiences)
    provider.client(
        CONSOLE_CLIENT,
        audience=(),
        redirect_uris=(f"{sso_console.base_url}/auth/callback",),
        post_logout_redirect_uris=(f"{sso_console.base_url}/auth/signed-out",),
    )
    _forget_codes(provider)
    yield provider
    provider.server.logout()
    _forget_codes(provider)


def _forget_codes(provider: Provider) -> None:
    """Drop authorization codes never exchanged (a held or refused sign-in leaves one).

    Canaille's in-memory backend answers `query(code=..., client=...)` with any code matching
    either filter, so a stale code of the same client could be taken for the next sign-in's.
    """
    backend, models = provider.server.backend, provider.server.models
    for code in backend.query(models.AuthorizationCode):
        backend.delete(code)


@pytest.fixture
def sso_page(browser: Browser, sso_console: Console) -> Iterator[Page]:
    """A fresh browser profile on the SSO console."""
    context = browser.new_context(base_url=sso_console.base_url, viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(15_000)
    context.route(ENV_ASSET, lambda route: _pin_backend_port(route, sso_console.base_url))
    page = context.new_page()
    yield page
    context.close()


def _person(provider: Provider, key: str) -> Any:
    spec: dict[str, Any] = PEOPLE[key]
    return provider.person(groups=spec["groups"], tenant=spec.get("tenant"), partner=spec.get("partner"))


def _sign_in_with_sso(page: Page, provider: Provider, person: Any, start: str = "/") -> list[str]:
    """Press Sign in with SSO as `person` (signed in at the provider); returns the provider URLs visited."""
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    provider.server.login(person)
    page.goto(start)
    page.get_by_role("button", name="Sign in with SSO").click()
    return visited


def _events(console: Console, action: str, sub: str) -> list[AuditLog]:
    with console.session() as session:
        query = select(AuditLog).where(AuditLog.action == action, AuditLog.actor_id == sub)
        return list(session.exec(query).all())


def _session_row(console: Console, sub: str) -> ConsoleSession:
    with console.session() as session:
        query = select(ConsoleSession).where(ConsoleSession.sub == sub).order_by(col(ConsoleSession.created_at).desc())
        row = session.exec(query).first()
    assert row is not None
    return row


def _set_session(console: Console, sub: str, **values: Any) -> None:
    with console.session() as session:
        session.execute(update(ConsoleSession).where(col(ConsoleSession.sub) == sub).values(**values))
        session.commit()


@pytest.mark.parametrize("key", list(PEOPLE))
def test_sign_in_with_sso_for_each_role(sso_page: Page, sso: Provider, sso_console: Console, key: str) -> None:
    person = _person(sso, key)
    visited = _sign_in_with_sso(sso_page, sso, person)
    sso_page.wait_for_url(re.compile(r"/events/?$"))
    expect(result_count(sso_page)).to_be_visible()
    banner = sso_page.get_by_role("banner")
    expect(banner.get_by_label("Role")).to_have_text(PEOPLE[key]["role"])
    expect(banner.get_by_label("Scope")).to_have_text(PEOPLE[key]["scope"])
    # the authorization request carried a PKCE S256 challenge, state and nonce
    authorize = next(url for url in visited if "/oauth/authorize" in url)
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert query["state"][0]
    assert query["nonce"][0]
    assert query["redirect_uri"] == [f"{sso_console.base_url}/auth/callback"]
    # the session is an HttpOnly, SameSite=Lax cookie; page scripts see no cookie and no token
    cookie = next(c for c in sso_page.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # AUDIT_PUBLIC_URL is http here
    assert SESSION_COOKIE not in sso_page.evaluate("document.cookie")
    assert sso_page.evaluate("JSON.stringify(window.localStorage)").find("eyJ") == -1
    # the sign-in is recorded in the principal's tenant (super and partner admins: the platform's)
    (event,) = _events(sso_console, "console.sign_in", person.user_name)
    assert event.tenant_id == PEOPLE[key]["recorded_in"]
    assert event.details["method"] == "sso"


def test_a_person_mapped_to_no_role_is_told_why(sso_page: Page, sso: Provider, sso_console: Console) -> None:
    person = sso.person(groups=("marketing",))
    _sign_in_with_sso(sso_page, sso, person)
    sso_page.wait_for_url(re.compile(r"/no-access/?\?notice="))
    expect(sso_page.get_by_role("heading", name="No access to the audit console")).to_be_visible()
    expect(sso_page.get_by_role("alert")).to_contain_text("matches no entry of AUDIT_ROLE_MAP")
    expect(sso_page.get_by_role("alert")).to_contain_text("marketing")
    assert SESSION_COOKIE not in {c["name"] for c in sso_page.context.cookies()}
    (event,) = _events(sso_console, "console.sign_in_failed", person.user_name)
    assert event.result == "failure"
    assert "AUDIT_ROLE_MAP" in event.details["reason"]
    sso_page.goto("/events")
    sso_page.wait_for_url(re.compile(r"/\?next="))


def _held_sign_in(page: Page) -> str:
    """Press Sign in with SSO but hold the browser before the provider: returns the authorization URL.

    (Playwright cannot intercept the hops of a redirect, so the test takes the browser's part there.)
    """
    held: list[str] = []

    def hold(route: Route) -> None:
        answer = route.fetch(max_redirects=0)
        held.append(answer.headers["location"])
        headers = {"content-type": "text/plain", "set-cookie": answer.headers["set-cookie"]}
        route.fulfill(status=200, headers=headers, body="held before the provider")

    page.route(re.compile(r"/auth/login\?"), hold)
    page.goto("/")
    page.get_by_role("button", name="Sign in with SSO").click()
    page.wait_for_url(re.compile(r"/auth/login\?"))
    page.unroute(re.compile(r"/auth/login\?"))
    (url,) = held
    return url


def _provider_redirect(url: str) -> str:
    """What the provider answers an authorization request with (the signed-in person's callback URL)."""
    answer = httpx.get(url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def _with_query(url: str, **values: str) -> str:
    parts = urlsplit(url)
    query = {name: found[0] for name, found in parse_qs(parts.query).items()} | values
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def test_a_wrong_state_is_refused(sso_page: Page, sso: Provider, sso_console: Console) -> None:
    sso.server.login(_person(sso, "super"))
    callback = _provider_redirect(_held_sign_in(sso_page))
    state = parse_qs(urlsplit(callback).query)["state"][0]
    sso_page.goto(_with_query(callback, state="forged-" + state))
    sso_page.wait_for_url(re.compile(r"/\?notice="))
    expect(sso_page.get_by_role("alert")).to_contain_text("mismatching_state")
    assert SESSION_COOKIE not in {c["name"] for c in sso_page.context.cookies()}
    reasons = [e.details["reason"] for e in _events(sso_console, "console.sign_in_failed", "anonymous")]
    assert any("mismatching_state" in reason for reason in reasons)


def test_a_replayed_code_is_refused(sso_page: Page, sso: Provider, sso_console: Console) -> None:
    person = _person(sso, "tenant")
    callbacks: list[str] = []
    sso_page.on("request", lambda r: callbacks.append(r.url) if "/auth/callback" in r.url else None)
    _sign_in_with_sso(sso_page, sso, person)
    sso_page.wait_for_url(re.compile(r"/events/?$"))
    (used,) = callbacks
    # the same callback again, from another browser that has the URL (and no cookie of this sign-in)
    sso_page.context.clear_cookies()
    sso_page.goto(used)
    sso_page.wait_for_url(re.compile(r"/\?notice="))
    expect(sso_page.get_by_role("alert")).to_contain_text("not started in this browser")
    # the spent code with the state of a new sign-in of this browser: the provider refuses the code itself
    state = parse_qs(urlsplit(_held_sign_in(sso_page)).query)["state"][0]
    sso_page.goto(_with_query(used, state=state))
    sso_page.wait_for_url(re.compile(r"/\?notice="))
    expect(sso_page.get_by_role("alert")).to_contain_text("invalid_grant")
    assert SESSION_COOKIE not in {c["name"] for c in sso_page.context.cookies()}
    reasons = [e.details["reason"] for e in _events(sso_console, "console.sign_in_failed", "anonymous")]
    assert any("not started in this browser" in reason for reason in reasons)
    assert any("invalid_grant" in reason for reason in reasons)


def test_an_expired_session_returns_to_sign_in_and_back(sso_page: Page, sso: Provider, sso_console: Console) -> None:
    person = _person(sso, "super")
    _sign_in_with_sso(sso_page, sso, person)
    sso_page.wait_for_url(re.compile(r"/events/?$"))
    _set_session(sso_console, person.user_name, expires_at=utcnow() - timedelta(seconds=1))
    sso_page.goto("/events?result=failure&range=7d")
    sso_page.wait_for_url(re.compile(r"/\?next="))
    expect(sso_page.get_by_role("alert")).to_contain_text("Your session has expired")
    # signing in again returns to the page and query asked for
    sso_page.get_by_role("button", name="Sign in with SSO").click()
    sso_page.wait_for_url(re.compile(r"/events/?\?result=failure&range=7d$"))
    expect(result_count(sso_page)).to_be_visible()


def test_a_deep_link_survives_sign_in(sso_page: Page, sso: Provider) -> None:
    person = _person(sso, "tenant")
    sso.server.login(person)
    sso_page.goto("/events?action=user.login&result=failure&range=30d")
    sso_page.wait_for_url(re.compile(r"/\?next="))
    sso_page.get_by_role("button", name="Sign in with SSO").click()
    sso_page.wait_for_url(re.compile(r"/events/?\?action=user\.login&result=failure&range=30d$"))
    expect(result_count(sso_page)).to_be_visible()


def test_a_session_past_its_provider_token_is_refreshed(sso_page: Page, sso: Provider, sso_console: Console) -> None:
    sso._count_requests("oidc.endpoints.issue_token")
    person = _person(sso, "partner")
    _sign_in_with_sso(sso_page, sso, person)
    sso_page.wait_for_url(re.compile(r"/events/?$"))
    before = _session_row(sso_console, person.user_name)
    assert before.refresh_token
    exchanges = sso.requests["oidc.endpoints.issue_token"]
    _set_session(sso_console, person.user_name, token_expires_at=utcnow() - timedelta(seconds=1))
    sso_page.goto("/events?result=failure")
    expect(result_count(sso_page)).to_be_visible()
    expect(sso_page.get_by_role("banner").get_by_label("Scope")).to_have_text("tenants of partner northwind")
    assert sso.requests["oidc.endpoints.issue_token"] == exchanges + 1
    after = _session_row(sso_console, person.user_name)
    assert after.token_expires_at > utcnow()
    assert after.ended_at is None
    # a refresh the provider refuses ends the session
    _set_session(sso_console, person.user_name, token_expires_at=utcnow() - timedelta(seconds=1), refresh_token="bad")
    sso_page.goto("/statistics")
    sso_page.wait_for_url(re.compile(r"/\?next=%2Fstatistics"))
    expect(sso_page.get_by_role("alert")).to_contain_text("Your session has expired")


def test_sign_out_ends_the_session_here_and_at_the_provider(
    sso_page: Page, sso: Provider, sso_console: Console
) -> None:
    sso._count_requests("oidc.endpoints.end_session")
    person = _person(sso, "tenant")
    _sign_in_with_sso(sso_page, sso, person)
    sso_page.wait_for_url(re.compile(r"/events/?$"))
    sso_page.get_by_role("button", name="Sign out").click()
    sso_page.wait_for_url(re.compile(r"/\?signed_out=1$"))
    expect(sso_page.get_by_role("alert")).to_contain_text("You are signed out")
    assert sso.requests["oidc.endpoints.end_session"] == 1
    assert SESSION_COOKIE not in {c["name"] for c in sso_page.context.cookies()}
    assert _session_row(sso_console, person.user_name).ended_at is not None
    (event,) = _events(sso_console, "console.sign_out", person.user_name)
    assert event.tenant_id == "acme"
    sso.server.logout()
    sso_page.goto("/events")
    sso_page.wait_for_url(re.compile(r"/\?next=%2Fevents$"))
    expect(sso_page.get_by_role("button", name="Sign in with SSO")).to_be_visible()
