"""Links and the filter form in a real browser: deep links, bad dates, paging limits, the drawer's URL."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Page, expect

from audit_app.audit.filters import AuditFilters
from audit_app.audit.query import list_events
from tests.e2e.conftest import Console, result_count, sign_in

pytestmark = pytest.mark.e2e

LINK = "tenant_id=acme&action=user.login&result=failure&range=7d"


def query(page: Page) -> dict[str, str]:
    """The current URL's query parameters."""
    return dict(parse_qsl(urlsplit(page.url).query))


def loaded(page: Page) -> None:
    """Wait until the events page shows a count (the view is loaded)."""
    expect(result_count(page)).to_be_visible()


def new_tab(page: Page, path: str) -> Page:
    """The same signed-in browser, a new tab (a fresh page state) opened on `path`."""
    tab = page.context.new_page()
    tab.goto(path)
    return tab


def test_a_pasted_events_link_fills_the_pickers_and_apply_keeps_them(page: Page) -> None:
    sign_in(page, "super")
    tab = new_tab(page, "/events?" + LINK)
    loaded(tab)
    expect(tab.get_by_label("Tenant", exact=True)).to_have_value("acme")
    expect(tab.get_by_label("Action", exact=True)).to_have_value("user.login")
    expect(tab.get_by_label("Result", exact=True)).to_have_value("failure")
    expect(tab.get_by_label("Time range", exact=True)).to_have_value("7d")
    tab.get_by_label("Time range", exact=True).select_option("30d")
    tab.get_by_role("button", name="Apply").click()
    tab.wait_for_url(re.compile(r"range=30d"))
    assert query(tab) == {"tenant_id": "acme", "action": "user.login", "result": "failure", "range": "30d"}


def test_a_pasted_statistics_link_fills_the_pickers_and_apply_keeps_them(page: Page) -> None:
    sign_in(page, "super")
    tab = new_tab(page, "/statistics?tenant_id=acme&partner_id=northwind&action=user.login&range=7d")
    expect(tab.locator(".js-plotly-plot")).to_have_count(5)
    expect(tab.get_by_label("Tenant", exact=True)).to_have_value("acme")
    expect(tab.get_by_label("Partner", exact=True)).to_have_value("northwind")
    tab.get_by_label("Time range", exact=True).select_option("30d")
    tab.get_by_role("button", name="Apply").click()
    tab.wait_for_url(re.compile(r"range=30d"))
    assert query(tab) == {"tenant_id": "acme", "partner_id": "northwind", "action": "user.login", "range": "30d"}


@pytest.mark.parametrize(
    ("path", "label", "message"),
    [
        ("/events?start_time=not-a-date", "From", "'not-a-date' is not a date and time"),
        ("/events?end_time=9999-12-31T23:59:00-01:00", "To", "outside the supported dates"),
        ("/events?start_time=2026-05-02T00:00&end_time=2026-05-01T00:00", "To", "To must be later than From"),
        ("/statistics?start_time=not-a-date", "From", "'not-a-date' is not a date and time"),
        ("/statistics?end_time=9999-12-31T23:59:00-01:00", "To", "outside the supported dates"),
    ],
)
def test_a_bad_date_in_the_url_is_shown_by_its_field(page: Page, path: str, label: str, message: str) -> None:
    sign_in(page, "tenant")
    page.goto(path)
    field = page.get_by_label(label, exact=True)
    expect(field).to_have_attribute("aria-invalid", "true")
    error = page.locator("#" + str(field.get_attribute("id")) + "-error")
    expect(error).to_contain_text(message)
    if path.startswith("/events"):
        expect(page.get_by_role("status").filter(has_text="No events shown")).to_be_visible()
        expect(page.get_by_role("table", name="Audit events").get_by_role("row")).to_have_count(1)


def test_after_an_error_the_count_says_nothing_is_shown(page: Page) -> None:
    sign_in(page, "tenant")
    page.goto("/events?tenant_id=globex")
    expect(page.get_by_role("alert")).to_contain_text("outside your scope")
    expect(page.get_by_role("status").filter(has_text="No events shown")).to_be_visible()
    expect(page.get_by_text(re.compile(r"0\+|1\+"))).to_have_count(0)
    expect(page.locator("#page-position")).to_have_count(0)


def test_a_page_beyond_the_last_shows_the_last_and_says_so(page: Page, console: Console) -> None:
    with console.session() as session:
        pages = list_events(session, console.principal("tenant"), AuditFilters(), per_page=50).pages
    sign_in(page, "tenant")
    page.goto("/events?page=999")
    expect(page.get_by_role("status").filter(has_text="There is no page 999")).to_contain_text(
        f"showing page {pages:,}, the last"
    )
    expect(page.locator("#page-position")).to_have_text(f"Page {pages:,} of {pages:,}")
    expect(result_count(page)).to_contain_text(re.compile(r"showing [\d,]+\u2013[\d,]+"))
    assert page.get_by_role("table", name="Audit events").get_by_role("row").count() > 1


def test_from_after_to_is_refused_by_the_inputs(page: Page) -> None:
    sign_in(page, "tenant")
    page.goto("/events?result=failure")
    loaded(page)
    page.get_by_label("From", exact=True).fill("2026-05-02 00:00")
    page.get_by_label("To", exact=True).fill("2026-05-01 00:00")
    page.get_by_role("button", name="Apply").click()
    to = page.get_by_label("To", exact=True)
    assert to.evaluate("el => el.validationMessage") == "To must be later than From."
    assert page.get_by_role("form", name="Filters").evaluate("form => form.checkValidity()") is False
    assert query(page) == {"result": "failure"}
    page.get_by_label("To", exact=True).fill("2026-05-03 00:00")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"end_time="))
    assert query(page) == {"result": "failure", "start_time": "2026-05-02 00:00", "end_time": "2026-05-03 00:00"}


def test_the_form_says_whether_a_preset_or_the_typed_window_applies(page: Page) -> None:
    sign_in(page, "tenant")
    page.goto("/events?range=7d")
    loaded(page)
    time_range = page.get_by_label("Time range", exact=True)
    page.get_by_label("From", exact=True).fill("2026-04-01 00:00")
    expect(time_range).to_have_value("custom")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"start_time="))
    assert query(page) == {"start_time": "2026-04-01 00:00"}
    expect(page.get_by_label("From", exact=True)).to_have_value("2026-04-01 00:00")
    time_range.select_option("24h")
    expect(page.get_by_label("From", exact=True)).to_have_value("")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"range=24h"))
    assert query(page) == {"range": "24h"}


def test_enter_in_a_picker_applies(page: Page) -> None:
    sign_in(page, "tenant")
    result = page.get_by_label("Result", exact=True)
    result.select_option("failure")
    result.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"result=failure"))
    assert query(page) == {"result": "failure"}


def test_the_active_filters_label_stays_inside_the_panel(page: Page) -> None:
    sign_in(page, "super")
    page.goto("/events?" + LINK + "&actor_email=someone%40acme.example&ip_address=203.0.113.7")
    label = page.get_by_text("6 filters active")
    expect(label).to_be_visible()
    panel, box = page.get_by_role("form", name="Filters").bounding_box(), label.bounding_box()
    assert panel is not None
    assert box is not None
    assert box["x"] + box["width"] <= panel["x"] + panel["width"] - 8


def test_the_drawer_is_in_the_url_and_back_closes_it(page: Page, console: Console) -> None:
    sign_in(page, "partner")
    page.goto("/events?result=failure")
    loaded(page)
    rows = page.get_by_role("table", name="Audit events").get_by_role("row")
    first_time = rows.nth(1).get_by_role("cell").first.inner_text()
    rows.nth(1).get_by_role("cell").first.click()
    drawer = page.get_by_role("dialog", name="Audit event")
    expect(drawer).to_be_visible()
    page.wait_for_url(re.compile(r"event="))
    event_id = query(page)["event"]
    assert query(page) == {"result": "failure", "event": event_id}
    expect(drawer.locator("dd").first).to_have_text(event_id)
    page.go_back()
    expect(drawer).to_be_hidden()
    assert query(page) == {"result": "failure"}
    expect(rows.nth(1).get_by_role("cell").first).to_have_text(first_time)
    # a pasted link with the event opens the drawer on it; Close takes `event` out of the URL
    tab = new_tab(page, f"/events?result=failure&event={event_id}")
    tab_drawer = tab.get_by_role("dialog", name="Audit event")
    expect(tab_drawer.locator("dd").first).to_have_text(event_id)
    tab_drawer.get_by_role("button", name="Close").click()
    expect(tab_drawer).to_be_hidden()
    tab.wait_for_url(lambda url: "event=" not in url)
    assert query(tab) == {"result": "failure"}
