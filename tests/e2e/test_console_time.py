"""Times in a real browser: 24-hour, UTC or the browser's zone (remembered), the preset's window, how long ago."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import ENV_ASSET, Console, _pin_backend_port, result_count, sign_in

pytestmark = pytest.mark.e2e

ZONE = "Asia/Tokyo"  # UTC+09:00 all year: no daylight saving to depend on the date
OFFSET = timedelta(hours=9)
TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture
def tokyo(browser: Browser, console: Console) -> Iterator[Page]:
    """A fresh browser profile whose local time zone is Asia/Tokyo."""
    context = browser.new_context(base_url=console.base_url, viewport={"width": 1440, "height": 1000}, timezone_id=ZONE)
    context.set_default_timeout(15_000)
    context.route(ENV_ASSET, lambda route: _pin_backend_port(route, console.base_url))
    yield context.new_page()
    context.close()


def first_time(page: Page) -> str:
    """The time cell of the first row."""
    cell = page.get_by_role("table", name="Audit events").get_by_role("row").nth(1).get_by_role("cell").first
    return cell.inner_text().strip()


def test_utc_or_local_time_everywhere_and_remembered(tokyo: Page) -> None:
    page = tokyo
    sign_in(page, "tenant")
    page.goto("/events?result=failure")
    expect(result_count(page)).to_be_visible()
    table = page.get_by_role("table", name="Audit events")
    expect(table.get_by_role("columnheader").first).to_have_text("Time (UTC)")
    switch = page.get_by_role("group", name="Show times in")
    expect(switch.get_by_role("button", name="UTC")).to_have_attribute("aria-pressed", "true")
    utc = first_time(page)
    assert TIME.match(utc), utc  # 24-hour, no AM/PM
    title = table.get_by_role("row").nth(1).locator("time").get_attribute("title") or ""
    assert re.match(r"^(just now|\d+ (min|hours?|days?|months?|years?) ago) \(", title), title

    switch.get_by_role("button", name="Local time").click()
    expect(table.get_by_role("columnheader").first).to_have_text(f"Time ({ZONE})")
    expect(switch.get_by_role("button", name="Local time")).to_have_attribute("aria-pressed", "true")
    local = (datetime.fromisoformat(utc) + OFFSET).strftime("%Y-%m-%d %H:%M:%S")
    expect(table.get_by_role("row").nth(1).get_by_role("cell").first).to_have_text(local)
    page.reload()
    expect(table.get_by_role("columnheader").first).to_have_text(f"Time ({ZONE})")

    # the drawer shows both; From/To are typed in the zone and the URL keeps the offset
    table.get_by_role("row").nth(1).get_by_role("cell").first.click()
    drawer = page.get_by_role("dialog", name="Audit event")
    expect(drawer.locator("dt", has_text=f"Time ({ZONE})").locator("xpath=following-sibling::dd")).to_have_text(local)
    expect(drawer.locator("dt", has_text="Time (UTC)").locator("xpath=following-sibling::dd")).to_have_text(utc)
    drawer.get_by_role("button", name="Close").click()
    expect(drawer).to_be_hidden()
    expect(page.locator("#filter-start_time").locator("xpath=..").locator("..")).to_contain_text(ZONE)
    page.get_by_label("From", exact=True).fill("2026-05-01 09:00")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"start_time="))
    assert dict(parse_qsl(urlsplit(page.url).query))["start_time"] == "2026-05-01T09:00+09:00"
    expect(page.get_by_label("From", exact=True)).to_have_value("2026-05-01 09:00")

    # a preset says which two times it means, in the zone shown
    page.get_by_label("Time range", exact=True).select_option("7d")
    expect(page.locator("#filter-range-window")).to_have_text(
        re.compile(rf"^\d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}} to now \({ZONE}\)$")
    )
