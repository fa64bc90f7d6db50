"""Signing in and out of the console without an identity provider: the server-side session behind an
HttpOnly cookie, the page and query asked for surviving sign-in (issue 12.2), and sign-out leaving
nothing of the previous person's views in the tab (12.3)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, WebSocket, expect
from sqlmodel import col, select

from audit_app.console_sessions import SESSION_COOKIE
from audit_app.models import AuditLog, ConsoleSession
from audit_app.seed import TENANT_PARTNER
from tests.e2e.conftest import PERSONA_BUTTONS, Console, result_count, sign_in

pytestmark = pytest.mark.e2e
DEEP_LINK = "/events?tenant_id=acme&action=user.login&result=failure&range=7d"


def test_no_sso_button_without_a_provider(page: Page) -> None:
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Sign in with SSO")).to_have_count(0)


def test_the_token_form_cannot_be_sent_before_the_page_is_live(page: Page, console: Console) -> None:
    """Before the page is hydrated a click would submit the form natively: a GET with the token in
    the URL (seen once in a loaded CI run: `/?token=eyJ...`). The served page's Sign in button is
    disabled until then, and enabled once the page is live."""
    served = page.request.get(console.base_url + "/").text()
    button = re.search(r"<button[^>]*>Sign in</button>", served)
    assert button is not None, "the served page holds the Sign in button"
    assert "disabled" in button.group(0), button.group(0)
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_enabled()


def test_a_pasted_token_opens_a_server_side_session(page: Page, console: Console) -> None:
    page.goto("/")
    token = console.token(role="partner_admin", partner_id="northwind", sub="pasted-partner")
    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(r"/events/?$"))
    expect(page.get_by_role("banner").get_by_label("Scope")).to_have_text("tenants of partner northwind")
    cookie = next(c for c in page.context.cookies() if c["name"] == SESSION_COOKIE)
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Lax")
    storage = page.evaluate("JSON.stringify([window.localStorage, window.sessionStorage, document.cookie])")
    assert token not in storage
    assert "eyJ" not in storage
    with console.session() as session:
        row = session.exec(select(ConsoleSession).where(ConsoleSession.sub == "pasted-partner")).one()
        event = session.exec(
            select(AuditLog).where(AuditLog.action == "console.sign_in", AuditLog.actor_id == "pasted-partner")
        ).one()
    assert row.kind == "token"
    assert token not in (row.refresh_token or "") + (row.id_token or "")
    assert (event.tenant_id, event.details["method"]) == ("platform", "token")


@pytest.mark.parametrize("how", ["persona", "token"])
def test_a_link_opened_signed_out_returns_after_sign_in(page: Page, console: Console, how: str) -> None:
    page.goto(DEEP_LINK)
    page.wait_for_url(re.compile(r"/\?next="))
    if how == "persona":
        page.get_by_role("button", name=PERSONA_BUTTONS["partner"]).click()
    else:
        page.get_by_label("Bearer token").fill(console.token(role="partner_admin", partner_id="northwind"))
        page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(r"/events/?\?tenant_id=acme&action=user\.login&result=failure&range=7d$"))
    expect(result_count(page)).to_be_visible()
    rows = page.get_by_role("table", name="Audit events").get_by_role("row").all()[1:]
    assert {row.get_by_role("cell").nth(1).inner_text().strip() for row in rows} <= {"acme"}


def test_a_link_to_another_site_is_not_followed_after_sign_in(page: Page) -> None:
    page.goto("/?next=https%3A%2F%2Fevil.example%2F")
    page.get_by_role("button", name=PERSONA_BUTTONS["tenant"]).click()
    page.wait_for_url(re.compile(r"/events/?$"))


def test_sign_out_resets_every_page_state(page: Page, console: Console) -> None:
    sign_in(page, "super")
    page.goto("/statistics?range=all")
    expect(page.locator(".js-plotly-plot")).to_have_count(5, timeout=15_000)
    page.goto("/events?range=all&tenant_id=globex")
    expect(result_count(page)).to_be_visible()
    # the time cell opens the event (the row's centre may be a filter link)
    page.get_by_role("table", name="Audit events").get_by_role("row").nth(1).get_by_role("cell").first.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    frames: list[str] = []

    def listen(socket: WebSocket) -> None:
        socket.on("framereceived", lambda payload: frames.append(str(payload)))

    page.on("websocket", listen)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/\?signed_out=1$"))
    sign_in(page, "tenant")
    page.goto("/statistics?range=all")
    expect(page.locator(".js-plotly-plot")).to_have_count(5, timeout=15_000)
    page.goto("/events")
    expect(result_count(page)).to_be_visible()
    expect(page.get_by_role("dialog")).to_have_count(0)
    # nothing the super admin saw reached the tab again: no other tenant anywhere in what the server sent
    others = sorted(tenant for tenant in TENANT_PARTNER if tenant != "acme")
    sent = "\n".join(frames)
    assert frames
    assert [tenant for tenant in others if re.search(rf"\b{re.escape(tenant)}\b", sent)] == []


def test_a_failed_load_shows_nothing_of_the_previous_view(page: Page) -> None:
    sign_in(page, "tenant")
    page.goto("/statistics?range=all")
    expect(page.locator(".js-plotly-plot")).to_have_count(5, timeout=15_000)
    page.goto("/statistics?range=all&tenant_id=globex")
    expect(page.get_by_role("alert")).to_contain_text("outside your scope")
    expect(page.get_by_role("region", name="Top actions")).to_be_hidden()
    expect(page.get_by_label("Events", exact=True)).to_be_hidden()


def test_every_console_action_checks_the_session(page: Page, console: Console) -> None:
    sign_in(page, "partner")
    with console.session() as session:
        row = session.exec(
            select(ConsoleSession)
            .where(ConsoleSession.sub == "demo-partner")
            .order_by(col(ConsoleSession.created_at).desc())
        ).first()
    assert row is not None
    with console.session() as session:
        stored = session.get(ConsoleSession, row.id)
        assert stored is not None
        stored.ended_at = stored.created_at  # ended elsewhere (another tab signed out)
        session.add(stored)
        session.commit()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"/\?next="))
    expect(page.get_by_role("alert")).to_contain_text("signed out")
