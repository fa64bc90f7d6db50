"""Narrow screens, the keyboard and axe-core's accessibility rules, in a real browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import DOCS, ROOT, result_count, sign_in

pytestmark = pytest.mark.e2e

AXE = ROOT / ".tools" / "node_modules" / "axe-core" / "axe.min.js"


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (rule: first target)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.slice(0, 3)"
        ".map(n => n.target.join(' ') + ' ' + n.html.slice(0, 120)).join(' | '))"
    )
    return list(found)


WIDER_THAN_VIEWPORT = (
    "() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1)"
    ".slice(-4).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
)


def fits(page: Page, width: int) -> None:
    """Nothing makes the page wider than the viewport."""
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, page.evaluate(WIDER_THAN_VIEWPORT)


def test_every_page_passes_axe_core(page: Page) -> None:
    assert AXE.exists(), "make setup installs axe-core into .tools"
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    assert serious_violations(page) == []
    sign_in(page, "super")
    assert serious_violations(page) == []
    page.get_by_role("table", name="Audit events").get_by_role("row").nth(1).get_by_role("cell").first.click()
    expect(page.get_by_role("dialog", name="Audit event").locator("dd").first).not_to_have_text("")
    assert serious_violations(page) == []
    page.goto("/statistics")
    expect(page.locator(".js-plotly-plot")).to_have_count(5)
    assert serious_violations(page) == []
    page.goto("/streams")
    expect(page.get_by_role("heading", name="Log streams")).to_be_visible()
    assert serious_violations(page) == []


def test_at_1024_px_every_column_is_in_view(page: Page) -> None:
    page.set_viewport_size({"width": 1024, "height": 800})
    sign_in(page, "super")
    table = page.get_by_role("table", name="Audit events")
    fits(page, 1024)
    header = table.get_by_role("columnheader", name="IP address")
    box = header.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 1024
    opener = table.get_by_role("button", name=re.compile("^Open event details")).first
    opened = opener.bounding_box()
    assert opened is not None
    assert opened["x"] + opened["width"] <= 1024
    fits(page, 1024)


def test_at_390_px_header_filters_cards_and_drawer_fit(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, "tenant")
    header = page.get_by_role("banner")
    for control in (header.get_by_role("button", name="Sign out"), header.get_by_label("Signed in as")):
        box = control.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 390
    fits(page, 390)
    toggle = page.get_by_role("button", name="Filters (0)")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("form", name="Filters")).to_be_hidden()
    toggle.click()
    expect(page.get_by_role("form", name="Filters")).to_be_visible()
    toggle.click()
    expect(page.get_by_role("form", name="Filters")).to_be_hidden()
    row = page.get_by_role("table", name="Audit events").get_by_role("row").nth(1)
    card = row.bounding_box()
    assert card is not None
    assert card["x"] >= 0
    assert card["x"] + card["width"] <= 390
    assert card["height"] > 60  # a card of stacked values, not one cramped line
    page.screenshot(path=str(DOCS / "events-390.png"))


def test_keyboard_time_fields_and_chart_tables(page: Page) -> None:
    sign_in(page, "partner")
    expect(result_count(page)).to_be_visible()
    page.get_by_label("From", exact=True).focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "filter-end_time"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "filter-ip_address"
    page.goto("/statistics")
    expect(page.locator(".js-plotly-plot")).to_have_count(5)
    region = page.get_by_role("region", name="Top actions")
    summary = region.get_by_text("Show as table")
    summary.focus()
    page.keyboard.press("Enter")
    data = region.get_by_role("table", name="Top actions (data)")
    expect(data).to_be_visible()
    labels = region.locator(".ytick text").all_text_contents()
    expect(data.get_by_role("row")).to_have_count(len(labels) + 1)
