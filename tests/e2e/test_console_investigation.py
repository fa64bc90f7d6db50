"""Investigating in the console: the drawer's raw JSON, copy buttons and links, columns, sort, live tail, 390 px."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select
from sqlmodel import col

from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import ingest_events
from audit_app.models import AuditEventIn, AuditLog
from tests.e2e.conftest import Console, result_count, sign_in
from tests.e2e.test_console import expect_total, query, total

pytestmark = pytest.mark.e2e


def table(page: Page) -> Locator:
    """The results table."""
    return page.get_by_role("table", name="Audit events")


def open_first(page: Page) -> tuple[Locator, str]:
    """Open the first row's event by its time cell; the drawer and the event's id."""
    table(page).get_by_role("row").nth(1).get_by_role("cell").first.click()
    drawer = page.get_by_role("dialog", name="Audit event")
    event_id = drawer.locator("dt", has_text="Event ID").locator("xpath=following-sibling::dd")
    expect(event_id).not_to_have_text("—")
    return drawer, event_id.inner_text().strip()


def test_drawer_raw_json_copy_and_links_that_keep_or_drop_the_window(page: Page, console: Console) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, "super")
    page.goto("/events?result=failure&range=7d")
    expect(result_count(page)).to_be_visible()
    drawer, event_id = open_first(page)
    # copy buttons carry the value; the raw JSON is the whole event
    drawer.get_by_role("button", name="Copy event id").click()
    assert page.evaluate("navigator.clipboard.readText()") == event_id
    expect(drawer.get_by_role("button", name="Copy IP address")).to_have_count(1)
    expect(drawer.get_by_role("button", name="Copy hash")).to_have_count(1)
    drawer.get_by_role("tab", name="Raw JSON").click()
    raw = drawer.get_by_label("Event JSON")
    expect(raw).to_contain_text(f'"id": "{event_id}"')
    with console.session() as session:
        event = session.get(AuditLog, event_id)
        assert event is not None
    expect(raw).to_contain_text(f'"hash": "{event.hash}"')

    # "Same actor" keeps the 7-day window; "Any time" drops it in one click
    drawer.get_by_role("navigation", name="Related events").get_by_role("link", name=re.compile("Same actor")).click()
    page.wait_for_url(re.compile(r"actor_id="))
    assert query(page) == {"actor_id": event.actor_id, "range": "7d"}
    page.get_by_role("button", name="Any time").click()
    page.wait_for_url(lambda url: "range=" not in url)
    assert query(page) == {"actor_id": event.actor_id}
    expect_total(page, total(console, "super", AuditFilters(actor_id=event.actor_id)))

    # events around one: its tenant, a few minutes either side, the event among them
    drawer, event_id = open_first(page)
    drawer.get_by_role("link", name="Events around this one").click()
    page.wait_for_url(re.compile(r"start_time="))
    with console.session() as session:
        event = session.get(AuditLog, event_id)
        assert event is not None
    around = query(page)
    assert set(around) == {"tenant_id", "start_time", "end_time"}
    assert around["tenant_id"] == event.tenant_id
    start, end = (datetime.fromisoformat(around[k]).replace(tzinfo=UTC) for k in ("start_time", "end_time"))
    stamp = event.timestamp.replace(tzinfo=UTC)
    assert start <= stamp - timedelta(minutes=4)
    assert stamp + timedelta(minutes=4) <= end <= stamp + timedelta(minutes=7)
    expect(table(page).locator(f'[data-event-id="{event_id}"]')).to_have_count(1)
    expect_total(page, total(console, "super", AuditFilters(tenant_id=event.tenant_id, start_time=start, end_time=end)))
    tenants = table(page).locator("tbody tr td.col-tenant").all_inner_texts()
    assert tenants
    assert {text.strip() for text in tenants} == {event.tenant_id}


def test_columns_are_remembered_and_time_sorts_both_ways(page: Page, console: Console) -> None:
    sign_in(page, "tenant")
    ip_header = table(page).get_by_role("columnheader", name="IP address")
    expect(ip_header).to_be_visible()
    page.get_by_role("button", name="Columns").click()
    page.get_by_role("checkbox", name="IP address").click()
    expect(ip_header).to_be_hidden()
    page.keyboard.press("Escape")
    page.reload()
    expect(result_count(page)).to_be_visible()
    expect(table(page).get_by_role("columnheader", name="Tenant")).to_be_visible()
    expect(ip_header).to_be_hidden()

    time_header = table(page).get_by_role("columnheader").first
    expect(time_header).to_have_attribute("aria-sort", "descending")
    time_header.get_by_role("button").click()
    page.wait_for_url(re.compile(r"sort=asc"))
    expect(time_header).to_have_attribute("aria-sort", "ascending")
    with console.session() as session:
        oldest = session.execute(
            select(col(AuditLog.id))
            .where(col(AuditLog.tenant_id) == "acme")
            .order_by(col(AuditLog.timestamp), col(AuditLog.id))
            .limit(1)
        ).scalar_one()
    expect(table(page).get_by_role("row").nth(1)).to_have_attribute("data-event-id", oldest)
    times = [t.strip() for t in table(page).locator("tbody time").all_inner_texts()]
    assert times == sorted(times)
    assert len(times) > 1


def test_live_tail_pushes_new_matching_events_on_top_and_pauses_while_one_is_open(page: Page, console: Console) -> None:
    sign_in(page, "tenant")
    with console.session() as session:
        other_tenant = session.execute(
            select(col(AuditLog.tenant_id)).where(col(AuditLog.tenant_id) != "acme").limit(1)
        ).scalar_one()
        seen = session.execute(
            select(AuditLog).where(col(AuditLog.tenant_id) == "acme", col(AuditLog.action) == "user.login").limit(1)
        ).scalar_one()
    actor = seen.actor_id
    page.goto(f"/events?actor_id={actor}&action=user.login")
    expect(result_count(page)).to_be_visible()
    page.get_by_role("switch", name="Live tail").click()
    expect(page.get_by_role("switch", name="Live tail")).to_be_checked()

    def ingest(*events: AuditEventIn) -> list[str]:
        with console.session() as session:
            ids = ingest_events(session, list(events))
            session.commit()
        return ids

    def login(tenant: str, actor_id: str, action: str = "user.login") -> AuditEventIn:
        return AuditEventIn(tenant_id=tenant, actor_id=actor_id, action=action, timestamp=datetime.now(UTC))

    stranger, other_action, match = ingest(
        login(other_tenant, actor), login("acme", actor, "user.logout"), login("acme", actor)
    )
    first = table(page).get_by_role("row").nth(1)
    expect(first).to_have_attribute("data-event-id", match)
    for absent in (stranger, other_action):
        expect(table(page).locator(f'[data-event-id="{absent}"]')).to_have_count(0)

    # an open event pauses the tail: the new one waits, counted, until the drawer closes
    first.get_by_role("cell").first.click()
    drawer = page.get_by_role("dialog", name="Audit event")
    expect(drawer).to_be_visible()
    (later,) = ingest(login("acme", actor))
    # (behind the open drawer, so out of the accessibility tree until it closes)
    expect(page.get_by_role("button", name=re.compile(r"^1 new event"), include_hidden=True)).to_be_attached()
    expect(table(page).locator(f'[data-event-id="{later}"]')).to_have_count(0)
    drawer.get_by_role("button", name="Close").click()
    expect(table(page).get_by_role("row").nth(1)).to_have_attribute("data-event-id", later)
    expect(table(page).get_by_role("row").nth(2)).to_have_attribute("data-event-id", match)

    # another view stops the tail; scrolled away from the newest rows, new events wait, counted
    page.goto("/events?action=user.login")
    expect(result_count(page)).to_be_visible()
    tail = page.get_by_role("switch", name="Live tail")
    expect(tail).not_to_be_checked()
    tail.click()
    expect(tail).to_be_checked()
    page.locator("#events-scroll").evaluate("box => box.scrollTo({top: 600})")
    (scrolled,) = ingest(login("acme", actor))
    waiting = page.get_by_role("button", name=re.compile(r"^1 new event"))
    expect(waiting).to_be_in_viewport()
    expect(table(page).locator(f'[data-event-id="{scrolled}"]')).to_have_count(0)
    waiting.click()
    expect(table(page).get_by_role("row").nth(1)).to_have_attribute("data-event-id", scrolled)
    tail.click()
    expect(tail).not_to_be_checked()


def test_at_390_px_a_card_opens_the_drawer_with_focus_inside(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, "tenant")
    card = table(page).get_by_role("row").nth(1)
    card.get_by_role("cell").first.click()
    drawer = page.get_by_role("dialog", name="Audit event")
    expect(drawer).to_be_visible()
    # on-screen once it has slid in, and focus is inside it
    page.wait_for_function(
        "(() => { const r = document.querySelector('[role=dialog]').getBoundingClientRect();"
        " return r.left >= 0 && r.right <= 390; })()"
    )
    page.wait_for_function("document.querySelector('[role=dialog]')?.contains(document.activeElement)")
