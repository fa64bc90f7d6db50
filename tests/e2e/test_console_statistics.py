"""The statistics page in a real browser: access records, partial buckets, the previous period."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from audit_app.audit.filters import AuditFilters
from audit_app.audit.stats import ACCESS_ACTIONS, compute_stats
from tests.e2e.conftest import Console, sign_in

pytestmark = pytest.mark.e2e


def charts_shown(page: Page) -> None:
    """Wait for the five charts."""
    expect(page.locator(".js-plotly-plot")).to_have_count(5)


def test_access_records_are_left_out_unless_the_toggle_includes_them(page: Page, console: Console) -> None:
    sign_in(page, "super")
    # looking at an event writes an audit.view record (the tenant's event count grows by looking)
    page.get_by_role("table", name="Audit events").get_by_role("row").nth(1).get_by_role("cell").first.click()
    expect(page.get_by_role("dialog", name="Audit event").locator("dd").first).not_to_have_text("")
    page.goto("/statistics?range=all")
    charts_shown(page)
    with console.session() as session:
        without = compute_stats(session, console.principal("super"), AuditFilters(), exclude_actions=ACCESS_ACTIONS)
        everything = compute_stats(session, console.principal("super"), AuditFilters())
    assert everything["total"] > without["total"]
    expect(page.get_by_label("Events", exact=True)).to_have_text(f"{without['total']:,}")
    toggle = page.get_by_label(re.compile(r"^Include console access records"))
    expect(toggle).not_to_be_checked()
    toggle.click()
    page.wait_for_url(re.compile(r"access=include"))
    expect(page.get_by_label(re.compile(r"^Include console access records"))).to_be_checked()
    with console.session() as session:
        everything = compute_stats(session, console.principal("super"), AuditFilters())
    expect(page.get_by_label("Events", exact=True)).to_have_text(f"{everything['total']:,}")


def test_partial_buckets_are_marked(page: Page) -> None:
    sign_in(page, "partner")
    page.goto("/statistics?range=7d")
    charts_shown(page)
    region = page.get_by_role("region", name="Events per day")
    expect(region).to_contain_text("The first and the last day are partial")
    opacity = region.locator(".js-plotly-plot").evaluate("plot => plot.data[0].marker.opacity")
    assert opacity[0] < 1
    assert opacity[-1] < 1
    assert set(opacity[1:-1]) == {1}
    # whole UTC days: nothing is partial
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    page.goto(
        "/statistics?" + urlencode({"start_time": (end - timedelta(days=5)).isoformat(), "end_time": end.isoformat()})
    )
    charts_shown(page)
    expect(region.locator(".js-plotly-plot")).to_be_visible()
    expect(region).not_to_contain_text("partial")


def test_compare_with_the_previous_period(page: Page, console: Console) -> None:
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=10)
    sign_in(page, "tenant")
    page.goto("/statistics?" + urlencode({"start_time": start.isoformat(), "end_time": end.isoformat()}))
    charts_shown(page)
    expect(page.get_by_label("Events, previous period")).to_have_count(0)
    page.get_by_label("Compare with previous period").click()
    page.wait_for_url(re.compile(r"compare=1"))
    with console.session() as session:
        previous = compute_stats(
            session,
            console.principal("tenant"),
            AuditFilters(start_time=start - timedelta(days=10), end_time=start),
            exclude_actions=ACCESS_ACTIONS,
        )
    expect(page.get_by_label("Events, previous period")).to_contain_text(f"Previous period: {previous['total']:,} (")
    expect(page.get_by_label("Distinct actors, previous period")).to_contain_text(
        f"Previous period: {previous['unique_actors']:,}"
    )
