"""The compliance console in a real browser: sign-in, filters, paging, drawer, export, charts, scope."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select, update
from sqlmodel import col

from audit_app.__main__ import main
from audit_app.audit.export import iter_events
from audit_app.audit.filters import AuditFilters
from audit_app.audit.query import list_events
from audit_app.audit.stats import ACCESS_ACTIONS, compute_stats
from audit_app.console_sessions import SESSION_COOKIE
from audit_app.demo import DEMO_PERSONAS
from audit_app.models import AuditLog, ConsoleSession, utcnow
from audit_app.seed import TENANT_PARTNER
from audit_app.ui.charts import top_actions
from tests.e2e.conftest import DOCS, Console, result_count, sign_in

pytestmark = pytest.mark.e2e

ROLE_LABELS = {"super": "Super admin", "partner": "Partner admin", "tenant": "Tenant admin"}
SCOPES = {"super": "all tenants", "partner": "tenants of partner northwind", "tenant": "tenant acme"}


def total(console: Console, key: str, filters: AuditFilters | None = None) -> int:
    """What the domain says the count is, for a persona and filters."""
    with console.session() as session:
        return list_events(session, console.principal(key), filters or AuditFilters(), per_page=1).total


def query(page: Page) -> dict[str, str]:
    """The current URL's query parameters."""
    return dict(parse_qsl(urlsplit(page.url).query))


def expect_total(page: Page, count: int) -> None:
    """Wait until the status line shows `count` matching events."""
    expect(result_count(page)).to_contain_text(re.compile(rf"^{count:,} events?\b"))


def column(page: Page, index: int) -> list[str]:
    """The texts of one column of the results table (0 = time)."""
    rows = page.get_by_role("table", name="Audit events").get_by_role("row")
    return [row.get_by_role("cell").nth(index).inner_text().strip() for row in rows.all()[1:]]


def apply(page: Page) -> None:
    """Press Apply and wait for the new view to load."""
    before = page.url
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(lambda url: url != before)
    expect(result_count(page)).to_be_visible()


@pytest.mark.parametrize("key", [p.key for p in DEMO_PERSONAS])
def test_sign_in_as_each_demo_persona(page: Page, console: Console, key: str) -> None:
    sign_in(page, key)
    persona = next(p for p in DEMO_PERSONAS if p.key == key)
    header = page.get_by_role("banner")
    expect(header.get_by_label("Signed in as")).to_have_text(persona.email)
    expect(header.get_by_label("Role")).to_have_text(ROLE_LABELS[key])
    expect(header.get_by_label("Scope")).to_have_text(SCOPES[key])
    expect_total(page, total(console, key))
    tenants = set(column(page, 1))
    if key == "tenant":
        assert tenants == {"acme"}
    if key == "partner":
        assert {TENANT_PARTNER[t] for t in tenants} == {"northwind"}
    if key == "super":
        page.screenshot(path=str(DOCS / "events.png"))


def test_each_filter_kind_narrows_to_the_domain_result(page: Page, console: Console) -> None:
    with console.session() as session:
        # the newest role.assign event that has every value the form filters on (chosen by property)
        sample = (
            session.execute(
                select(AuditLog)
                .where(
                    col(AuditLog.action) == "role.assign",
                    col(AuditLog.actor_email).is_not(None),
                    col(AuditLog.ip_address).is_not(None),
                    col(AuditLog.resource_id).is_not(None),
                )
                .order_by(col(AuditLog.timestamp).desc(), col(AuditLog.id))
            )
            .scalars()
            .first()
        )
    assert sample is not None
    assert sample.actor_email
    assert sample.ip_address
    assert sample.resource_id
    day = sample.timestamp.replace(hour=0, minute=0, second=0, microsecond=0)
    selects = {
        "Tenant": ("tenant_id", sample.tenant_id),
        "Partner": ("partner_id", TENANT_PARTNER[sample.tenant_id]),
        "Action": ("action", "role.assign"),
        "Resource type": ("resource_type", "role"),
        "Result": ("result", "failure"),
    }
    texts = {
        "Actor ID": ("actor_id", sample.actor_id),
        "Actor email": ("actor_email", sample.actor_email),
        "Resource ID": ("resource_id", sample.resource_id),
        "IP address": ("ip_address", sample.ip_address),
    }
    sign_in(page, "super")
    everything = total(console, "super")
    for label, (name, value) in [*selects.items(), *texts.items()]:
        page.goto("/events")
        expect_total(page, everything)  # loaded: the form now shows this view
        control = page.get_by_label(label, exact=True)
        if label in selects:
            control.select_option(value)
        else:
            control.fill(value)
        apply(page)
        assert query(page) == {name: value}, label
        expect_total(page, total(console, "super", AuditFilters(**{name: value})))
    # the time window: From and To (UTC) together
    page.goto("/events")
    expect_total(page, everything)
    page.get_by_label("From", exact=True).fill(day.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("To", exact=True).fill((day + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
    apply(page)
    assert set(query(page)) == {"start_time", "end_time"}
    expect_total(page, total(console, "super", AuditFilters(start_time=day, end_time=day + timedelta(days=1))))
    assert all(value.startswith(day.strftime("%Y-%m-%d")) for value in column(page, 0))
    # a preset: the last 7 days
    page.get_by_label("Time range", exact=True).select_option(label="Last 7 days")
    apply(page)
    assert query(page) == {"range": "7d"}
    week_ago = datetime.now(UTC) - timedelta(days=7)
    assert all(
        datetime.fromisoformat(v).replace(tzinfo=UTC) >= week_ago - timedelta(minutes=5) for v in column(page, 0)
    )


def test_clicking_a_value_filters_on_it(page: Page, console: Console) -> None:
    sign_in(page, "super")
    first_action = column(page, 3)[0]
    page.get_by_role("button", name=f"Filter by action {first_action}").first.click()
    page.wait_for_url(re.compile(r"action="))
    expect_total(page, total(console, "super", AuditFilters(action=first_action)))
    assert set(column(page, 3)) == {first_action}


def test_paging_and_page_size(page: Page, console: Console) -> None:
    sign_in(page, "partner")
    count = total(console, "partner")
    first_page = column(page, 0)
    assert len(first_page) == 50
    page.get_by_role("button", name="Next page").click()
    page.wait_for_url(re.compile(r"page=2"))
    expect(page.get_by_text(f"Page 2 of {(count + 49) // 50}")).to_be_visible()
    second_page = column(page, 0)
    assert len(second_page) == 50
    assert second_page != first_page
    assert second_page[0] <= first_page[-1]
    page.get_by_label("Rows per page").select_option("25")
    page.wait_for_url(re.compile(r"per_page=25"))
    expect(page.get_by_text(f"Page 1 of {(count + 24) // 25}")).to_be_visible()
    assert len(column(page, 0)) == 25
    assert query(page) == {"per_page": "25"}


def test_drawer_shows_the_event_and_records_the_view(page: Page, console: Console) -> None:
    sign_in(page, "super")
    page.goto("/events?action=role.assign")
    expect_total(page, total(console, "super", AuditFilters(action="role.assign")))
    first = page.get_by_role("table", name="Audit events").get_by_role("row").nth(1)
    first.get_by_role("cell").first.click()
    drawer = page.get_by_role("dialog", name="Audit event")
    expect(drawer).to_be_visible()
    expect(drawer.get_by_role("table", name="Changes before and after")).to_be_visible()
    event_id = drawer.locator("dt", has_text="Event ID").locator("xpath=following-sibling::dd").inner_text()
    with console.session() as session:
        event = session.get(AuditLog, event_id)
        assert event is not None
        expect(drawer.get_by_label("Details JSON")).to_contain_text('"changes"')
        change = event.details["changes"]["role"]
        expect(drawer.get_by_role("row").filter(has_text="role").last).to_contain_text(str(change["from"]))
        for value in (event.actor_id, event.tenant_id, event.request_id or "", event.hash):
            expect(drawer).to_contain_text(value)
    page.wait_for_timeout(300)
    page.screenshot(path=str(DOCS / "drawer.png"))
    with console.session() as session:
        views = (
            session.execute(
                select(AuditLog).where(AuditLog.action == "audit.view", AuditLog.resource_id == event_id)  # type: ignore[arg-type]
            )
            .scalars()
            .all()
        )
    assert [(v.actor_id, v.tenant_id) for v in views] == [("demo-super", event.tenant_id)]
    page.get_by_role("button", name="Close").click()
    expect(drawer).to_be_hidden()


def test_related_events_link_opens_the_filtered_view(page: Page, console: Console) -> None:
    sign_in(page, "partner")
    page.get_by_role("table", name="Audit events").get_by_role("row").nth(2).get_by_role("cell").first.click()
    drawer = page.get_by_role("dialog", name="Audit event")
    actor_id = drawer.locator("dt", has_text="Actor ID").locator("xpath=following-sibling::dd").inner_text()
    drawer.get_by_role("navigation", name="Related events").get_by_role("link", name=re.compile("Same actor")).click()
    page.wait_for_url(re.compile(r"actor_id="))
    assert query(page) == {"actor_id": actor_id}
    expect(drawer).to_be_hidden()
    expect(page.get_by_label("Actor ID", exact=True)).to_have_value(actor_id)
    expect_total(page, total(console, "partner", AuditFilters(actor_id=actor_id)))


def _download(page: Page, choice: str) -> tuple[Path, str]:
    """Pick `choice` in the Export menu; the downloaded file and the toast's text."""
    with page.expect_download() as download:
        page.get_by_role("button", name="Export", exact=True).click()
        page.get_by_role("menuitem", name=choice, exact=True).click()
    toast = page.get_by_text(re.compile(r"Export started: [\d,]+ rows?")).last
    expect(toast).to_be_visible()
    return Path(download.value.path()), toast.inner_text()


def test_export_csv_holds_exactly_the_filtered_view(page: Page, console: Console) -> None:
    sign_in(page, "partner")
    page.goto("/events?result=failure&per_page=25")
    filters = AuditFilters(result="failure")
    expected_total = total(console, "partner", filters)
    expect_total(page, expected_total)
    path, toast = _download(page, "CSV")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    with console.session() as session:
        expected = [e.id for e in iter_events(session, console.principal("partner"), filters)]
    assert [row["id"] for row in rows] == expected
    assert len(expected) == expected_total > 25
    assert f"{expected_total:,} rows in CSV" in toast
    assert {row["result"] for row in rows} == {"failure"}
    assert {TENANT_PARTNER[row["tenant_id"]] for row in rows} == {"northwind"}


def test_export_keeps_the_time_order_on_show(page: Page, console: Console) -> None:
    sign_in(page, "partner")
    page.goto("/events?result=failure&sort=asc")
    filters = AuditFilters(result="failure")
    expect_total(page, total(console, "partner", filters))
    path, _toast = _download(page, "CSV")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    with console.session() as session:
        oldest_first = [e.id for e in iter_events(session, console.principal("partner"), filters, order="asc")]
    assert [row["id"] for row in rows] == oldest_first
    assert len(oldest_first) > 1


def test_export_menu_downloads_csv_for_excel_and_a_bundle_that_verifies(
    page: Page, console: Console, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sign_in(page, "tenant")
    page.goto("/events?result=denied")
    filters = AuditFilters(result="denied")
    expected_total = total(console, "tenant", filters)
    expect_total(page, expected_total)
    with console.session() as session:
        expected = [e.id for e in iter_events(session, console.principal("tenant"), filters)]

    excel, toast = _download(page, "CSV for Excel")
    assert "in CSV for Excel" in toast
    data = excel.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert [row["id"] for row in csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))] == expected

    bundle, toast = _download(page, "Evidence bundle (.zip)")
    assert f"{expected_total:,} row" in toast
    with zipfile.ZipFile(bundle) as archive:
        assert archive.namelist() == ["events.csv", "manifest.json", "manifest.sig"]
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["exported_by"]["sub"] == "demo-tenant"
    assert manifest["events"]["rows"] == len(expected)
    capsys.readouterr()
    keys_url = f"{console.base_url}/api/v1/admin/audit/export-keys"
    assert main(["verify-export", str(bundle), "--keys-url", keys_url]) == 0, capsys.readouterr().out
    assert "VERIFIED: the bundle is intact." in capsys.readouterr().out


def test_charts_render_and_a_click_filters_the_events(page: Page, console: Console) -> None:
    sign_in(page, "super")
    page.get_by_role("link", name="Statistics").click()
    page.wait_for_url(re.compile(r"/statistics"))
    expect(page.locator(".js-plotly-plot")).to_have_count(5)
    with console.session() as session:
        stats = compute_stats(
            session,
            console.principal("super"),
            AuditFilters(start_time=datetime.now(UTC) - timedelta(days=30)),
            exclude_actions=ACCESS_ACTIONS,  # the console leaves its own access records out by default
        )
    expect(page.get_by_label("Events", exact=True)).to_have_text(f"{stats['total']:,}")
    top_action = top_actions(stats)[0][0]  # the most frequent; ties go to the first name, as in the chart
    expect(page.get_by_label("Top action", exact=True)).to_have_text(top_action)
    page.wait_for_timeout(500)
    page.screenshot(path=str(DOCS / "statistics.png"), full_page=True)
    bars = page.get_by_role("region", name="Top actions").locator(".trace.bars .point path")
    expect(bars.first).to_be_visible()
    box = bars.last.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url(re.compile(r"/events\?.*action="))
    assert query(page) == {"action": top_action, "range": "30d"}
    expect(page.get_by_label("Action", exact=True)).to_have_value(top_action)  # the new view, not the last one
    expect(result_count(page)).to_be_visible()
    assert set(column(page, 3)) == {top_action}
    # a slice of the results donut: its left side is "success" (slices run clockwise from 12 o'clock)
    page.go_back()
    donut = page.get_by_role("region", name="Results").locator(".js-plotly-plot .slice").first
    expect(donut).to_be_visible()
    page.get_by_role("region", name="Results").scroll_into_view_if_needed()
    box = page.get_by_role("region", name="Results").locator(".js-plotly-plot .pielayer").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    page.wait_for_url(re.compile(r"/events\?.*result="))
    assert query(page) == {"result": "success", "range": "30d"}
    expect(page.get_by_label("Result", exact=True)).to_have_value("success")
    expect(result_count(page)).to_be_visible()
    assert {value.lower() for value in column(page, 5)} == {"success"}


def test_statistics_agree_with_the_stats_endpoint(page: Page, console: Console) -> None:
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window: dict[str, str | float | bool] = {
        "start_time": (end - timedelta(days=14)).isoformat(),
        "end_time": end.isoformat(),
    }
    token = console.token(role="partner_admin", partner_id="northwind")
    response = page.request.get(
        "/api/v1/admin/audit/stats", params=window, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.ok, response.text()
    api = response.json()
    sign_in(page, "partner")
    page.goto("/statistics?" + urlencode({**window, "access": "include"}))
    expect(page.locator(".js-plotly-plot")).to_have_count(5)
    expect(page.get_by_label("Events", exact=True)).to_have_text(f"{api['total']:,}")
    expect(page.get_by_label("Distinct actors", exact=True)).to_have_text(f"{api['unique_actors']:,}")
    expect(page.get_by_label("Not successful", exact=True)).to_have_text(f"{100 * api['failure_rate']:.1f}%")
    daily = page.get_by_role("region", name="Events per day").locator(".js-plotly-plot")
    traces = daily.evaluate("plot => plot.data.map(t => ({name: t.name, x: t.x, y: t.y}))")
    shown: dict[str, int] = {}
    for trace in traces:
        for day, count in zip(trace["x"], trace["y"], strict=True):
            shown[day] = shown.get(day, 0) + count
    assert shown == {d["date"]: d["count"] for d in api["by_day"]}
    actors = page.get_by_role("region", name="Top actors").locator(".ytick text").all_text_contents()
    assert sorted(actors) == sorted(a["actor_email"] or a["actor_id"] for a in api["top_actors"])


def _time_chart_counts(page: Page, bucket: str) -> dict[str, int]:
    """What the stacked time chart shows: count per bucket start."""
    chart = page.get_by_role("region", name=f"Events per {bucket}").locator(".js-plotly-plot")
    traces = chart.evaluate("plot => plot.data.map(t => ({x: t.x, y: t.y}))")
    shown: dict[str, int] = {}
    for trace in traces:
        for start, count in zip(trace["x"], trace["y"], strict=True):
            shown[start] = shown.get(start, 0) + count
    return shown


def test_statistics_show_the_buckets_the_endpoint_chose(page: Page, console: Console) -> None:
    token = console.token(role="super_admin")
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sign_in(page, "super")
    windows: list[dict[str, str | float | bool]] = [{}, {"start_time": (end - timedelta(days=3 * 365)).isoformat()}]
    for window in windows:
        response = page.request.get(
            "/api/v1/admin/audit/stats", params=window, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.ok, response.text()
        api = response.json()
        assert len(api["by_day"]) <= 400
        # the endpoint counts the access records other tests write: so does the console when asked
        page.goto("/statistics?" + urlencode({**(window or {"range": "all"}), "access": "include"}))
        expect(page.locator(".js-plotly-plot")).to_have_count(5)
        expect(page.get_by_label("Events", exact=True)).to_have_text(f"{api['total']:,}")
        expect(page.get_by_role("region", name=f"Events per {api['bucket']}")).to_be_visible()
        assert _time_chart_counts(page, api["bucket"]) == {d["date"]: d["count"] for d in api["by_day"]}
    assert api["bucket"] == "week"  # three years of window: weeks, not 1,095 days


def test_a_tenant_admin_never_sees_another_tenant(page: Page, console: Console) -> None:
    sign_in(page, "tenant")
    assert set(column(page, 1)) == {"acme"}
    assert page.get_by_label("Tenant", exact=True).locator("option").all_inner_texts() == ["Any tenant", "acme"]
    assert page.get_by_label("Partner", exact=True).locator("option").all_inner_texts() == [
        "Any partner",
        "northwind",
    ]
    # a hand-edited URL naming another tenant is refused, and shows nothing of it
    page.goto("/events?tenant_id=globex")
    expect(page.get_by_role("alert")).to_contain_text("outside your scope")
    expect(page.get_by_role("table", name="Audit events").get_by_role("row")).to_have_count(1)
    # the export holds only acme
    page.goto("/events?result=failure")
    expect_total(page, total(console, "tenant", AuditFilters(result="failure")))
    path, _ = _download(page, "CSV")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows
    assert {row["tenant_id"] for row in rows} == {"acme"}
    # the statistics: pickers and numbers of acme only
    page.goto("/statistics?range=all")
    expect(page.locator(".js-plotly-plot")).to_have_count(5)
    assert page.get_by_label("Tenant", exact=True).locator("option").all_inner_texts() == ["Any tenant", "acme"]
    with console.session() as session:
        stats = compute_stats(session, console.principal("tenant"), AuditFilters(), exclude_actions=ACCESS_ACTIONS)
    expect(page.get_by_label("Events", exact=True)).to_have_text(f"{stats['total']:,}")
    actors = page.get_by_role("region", name="Top actors").locator(".ytick text").all_text_contents()
    assert sorted(actors) == sorted(a["actor_email"] or a["actor_id"] for a in stats["top_actors"])
    assert all(a.endswith("@acme.example") for a in actors if "@" in a and not a.startswith("sam.super"))


def test_url_query_round_trip(page: Page, console: Console) -> None:
    sign_in(page, "super")
    page.goto("/events?action=user.login&result=failure&range=30d&per_page=25")
    expect(page.get_by_label("Action", exact=True)).to_have_value("user.login")
    expect(page.get_by_label("Result", exact=True)).to_have_value("failure")
    expect(page.get_by_label("Time range", exact=True)).to_have_value("30d")
    expect(page.get_by_label("Rows per page")).to_have_value("25")
    filters = AuditFilters(action="user.login", result="failure", start_time=datetime.now(UTC) - timedelta(days=30))
    expect_total(page, total(console, "super", filters))
    page.reload()
    expect(page.get_by_label("Action", exact=True)).to_have_value("user.login")
    expect_total(page, total(console, "super", filters))
    page.get_by_role("button", name="Reset").click()
    page.wait_for_url(re.compile(r"/events\?per_page=25$"))
    expect(page.get_by_label("Action", exact=True)).to_have_value("")


def test_sign_out_clears_the_session(page: Page) -> None:
    sign_in(page, "tenant")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/\?signed_out=1$"))
    expect(page.get_by_role("alert")).to_contain_text("signed out")
    assert SESSION_COOKIE not in {cookie["name"] for cookie in page.context.cookies()}
    page.goto("/events")
    page.wait_for_url(re.compile(r"/\?next=%2Fevents$"))
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()


def test_bad_and_expired_tokens_are_refused_with_a_message(page: Page, console: Console) -> None:
    page.goto("/")
    page.get_by_label("Bearer token").fill("not-a-token")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    page.get_by_label("Bearer token").fill(console.token(ttl=-120))
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("expired")
    # a pasted valid token works; once it expires in storage, the next page goes back to sign-in
    page.get_by_label("Bearer token").fill(console.token(role="tenant_admin", tenant_id="acme"))
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(r"/events"))
    expect(page.get_by_role("banner").get_by_label("Scope")).to_have_text("tenant acme")
    with console.session() as session:  # the session ends with the token (here: now)
        ended = update(ConsoleSession).where(col(ConsoleSession.sub) == "tenant_admin-local")
        session.execute(ended.values(token_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    page.goto("/events")
    page.wait_for_url(re.compile(r"/\?next=%2Fevents$"))
    expect(page.get_by_role("alert")).to_contain_text("Your session has expired")
