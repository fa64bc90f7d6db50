"""The statistics page in a real browser: access records, partial buckets, the previous period, local days,
each chart drawn once with nothing clipped."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import col, select

from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import ingest_events
from audit_app.audit.stats import ACCESS_ACTIONS, compute_stats
from audit_app.models import AuditEventIn, AuditLog
from tests.e2e.conftest import ENV_ASSET, Console, _pin_backend_port, sign_in

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


LOCAL_ZONE = "Asia/Kathmandu"  # UTC+05:45 all year: its days start at a quarter past a UTC hour


@pytest.fixture
def kathmandu(browser: Browser, console: Console) -> Iterator[Page]:
    """A fresh browser profile whose local time zone is LOCAL_ZONE."""
    context = browser.new_context(
        base_url=console.base_url, viewport={"width": 1440, "height": 1000}, timezone_id=LOCAL_ZONE
    )
    context.set_default_timeout(15_000)
    context.route(ENV_ASSET, lambda route: _pin_backend_port(route, console.base_url))
    yield context.new_page()
    context.close()


def chart_table(page: Page, title: str) -> list[list[str]]:
    """The rows of a chart's "Show as table", opened (once it holds rows)."""
    region = page.get_by_role("region", name=title)
    region.get_by_text("Show as table").click()
    table = region.get_by_role("table", name=f"{title} (data)")
    expect(table.get_by_role("row").nth(1)).to_be_visible()
    return [row.get_by_role("cell").all_inner_texts() for row in table.get_by_role("row").all()[1:]]


def test_time_charts_follow_the_local_time_switch(kathmandu: Page, console: Console) -> None:
    page = kathmandu
    zone = ZoneInfo(LOCAL_ZONE)
    today = datetime.now(zone).date()
    start = datetime.combine(today - timedelta(days=7), time(), zone)  # seven whole local days
    end = datetime.combine(today, time(), zone)
    with console.session() as session:
        stamps = session.exec(
            select(AuditLog.timestamp).where(
                AuditLog.tenant_id == "acme",
                AuditLog.timestamp >= start,
                AuditLog.timestamp < end,
                col(AuditLog.action).not_in(sorted(ACCESS_ACTIONS)),
            )
        ).all()
    # the oracle: the events per calendar day of the zone, from zoneinfo
    per_day = Counter(stamp.astimezone(zone).date() for stamp in stamps)
    expected = [
        [(start.date() + timedelta(days=n)).isoformat(), f"{per_day[start.date() + timedelta(days=n)]:,}"]
        for n in range(7)
    ]
    assert len(set(per_day)) > 1

    sign_in(page, "tenant")
    page.goto("/statistics?" + urlencode({"start_time": start.isoformat(), "end_time": end.isoformat()}))
    charts_shown(page)
    expect(page.get_by_role("region", name="Events per day")).to_contain_text("partial")  # UTC days: cut at 18:15
    switch = page.get_by_role("group", name="Show times in")
    switch.get_by_role("button", name="Local time").click()
    expect(switch.get_by_role("button", name="Local time")).to_have_attribute("aria-pressed", "true")
    charts_shown(page)
    region = page.get_by_role("region", name="Events per day")
    assert chart_table(page, "Events per day") == expected
    # (Chromium names the zone by its older spelling, Asia/Katmandu: the console uses the browser's name)
    expect(
        region.get_by_role("columnheader", name=re.compile(r"^Period starting \(Asia.Kath?mandu\)$"))
    ).to_be_visible()
    expect(region).not_to_contain_text("partial")  # whole local days
    failures = chart_table(page, "Failure rate per day")
    assert [row[0] for row in failures] == [row[0] for row in expected]
    shown = region.locator(".js-plotly-plot").evaluate("plot => plot.data[0].x")
    assert shown == [row[0] for row in expected]

    # a bar opens the events of its local day: the two local midnights, with the zone's offset
    region.locator(".js-plotly-plot").scroll_into_view_if_needed()
    bars = region.locator(".trace.bars").first.locator(".point path")
    sizes = [bars.nth(n).bounding_box() for n in range(bars.count())]
    index = max(range(len(sizes)), key=lambda n: (sizes[n] or {"height": 0})["height"])
    box = sizes[index]
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url(re.compile(r"/events\?.*start_time="))
    params = dict(parse_qsl(urlsplit(page.url).query))
    day = date.fromisoformat(params["start_time"][:10])
    assert day.isoformat() in [row[0] for row in expected]
    assert params["start_time"] == f"{day.isoformat()}T00:00:00+05:45"
    assert params["end_time"] == f"{(day + timedelta(days=1)).isoformat()}T00:00:00+05:45"


COUNT_DRAWS = """(() => {
  // Plotly triggers plotly_beforeplot as each full draw of a chart starts (its automargin redraw too)
  // and gives the graph div its own emit (after its on) before the first: listen from there.
  window.chartDraws = {};
  window.chartsDrawn = new Set();
  const chart = (gd) => gd.closest("section").getAttribute("aria-label");
  Object.defineProperty(HTMLElement.prototype, "emit", {
    configurable: true,
    set(emit) {
      const gd = this;
      gd.on("plotly_beforeplot", () => { window.chartDraws[chart(gd)] = (window.chartDraws[chart(gd)] || 0) + 1; });
      gd.on("plotly_afterplot", () => { window.chartsDrawn.add(chart(gd)); });
      Object.defineProperty(gd, "emit", { configurable: true, writable: true, value: emit });
    },
  });
})();"""
"""Counts each chart's draws in `chartDraws` (by its card's title); `chartsDrawn` names the charts drawn.

A chart's automargin redraw runs before its first plotly_afterplot: by then its draws are all counted.
"""

CLIPPED_LABELS = """() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(gd => {
  const chart = gd.closest('section').getAttribute('aria-label');
  const svg = gd.querySelector('svg.main-svg').getBoundingClientRect();
  return [...gd.querySelectorAll('.xtick text, .ytick text, .legend')].filter(label => {
    const box = label.getBoundingClientRect();
    return box.width > 0 && (box.left < svg.left - 0.5 || box.right > svg.right + 0.5
      || box.top < svg.top - 0.5 || box.bottom > svg.bottom + 0.5);
  }).map(label => chart + ': ' + (label.textContent || 'legend'));
})"""
"""Every tick label and legend of the page's charts that does not lie wholly within its chart."""

LONG_LABELS = "northwind-logistics-emea"
"""A tenant whose actors have long emails and whose actions long names (ingested by the test)."""
LONG_EMAILS = [
    "svc-reconciliation@northwind.example",
    "svc-invoice-recon@northwind.example",
    "k.papadopoulos@northwind.example",
    "maria.delacruz@northwind.example",
]
"""Longer than the seeded ones, up to what ranked bars' margins hold (charts.WIDEST_LABELS)."""


def long_label_events(console: Console) -> None:
    """Ingest LONG_LABELS' events (once per console), three weeks ago: off the events page's first rows."""
    with console.session() as session:
        if session.exec(select(AuditLog.id).where(AuditLog.tenant_id == LONG_LABELS).limit(1)).first():
            return
        start = datetime.now(UTC) - timedelta(days=21)
        actions = ["oauth_client.secret_rotate", "tenant.settings_change", "user.password_reset", "user.login"]
        events = [
            AuditEventIn(
                tenant_id=LONG_LABELS,
                actor_id=f"usr_long_{n % len(LONG_EMAILS)}",
                actor_email=LONG_EMAILS[n % len(LONG_EMAILS)],
                action=actions[n % len(actions)],
                result=["success", "success", "failure", "denied", "error"][n % 5],
                timestamp=start + timedelta(hours=5 * n),
            )
            for n in range(60)
        ]
        ingest_events(session, events)
        session.commit()


@pytest.mark.parametrize("width", [1440, 390])
def test_each_chart_is_drawn_once_and_no_label_is_clipped(browser: Browser, console: Console, width: int) -> None:
    """The figures' margins already hold their labels and legends: Plotly's automargin, on in the page's
    template, never widens them and draws a chart again, at desktop width and on a phone."""
    long_label_events(console)
    context = browser.new_context(base_url=console.base_url, viewport={"width": width, "height": 1000})
    context.set_default_timeout(15_000)
    context.route(ENV_ASSET, lambda route: _pin_backend_port(route, console.base_url))
    context.add_init_script(COUNT_DRAWS)
    page = context.new_page()
    try:
        sign_in(page, "super")
        for query in ("range=all", f"range=30d&tenant_id={LONG_LABELS}"):
            page.goto("/statistics?" + query)
            charts_shown(page)
            page.wait_for_function("window.chartsDrawn.size === 5")
            draws = page.evaluate("window.chartDraws")
            assert draws == dict.fromkeys(draws, 1), f"{query} at {width} px: {draws}"
            assert len(draws) == 5
            assert page.evaluate(CLIPPED_LABELS) == [], f"{query} at {width} px"
        expect(page.get_by_role("region", name="Top actors")).to_contain_text(LONG_EMAILS[0])
    finally:
        context.close()
