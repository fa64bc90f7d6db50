"""How the console shows events, changes and charts (pure functions over domain output)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import plotly.graph_objects as go
import plotly.io as pio
import reflex as rx

from audit_app.models import AuditLog
from audit_app.ui import charts
from audit_app.ui.present import (
    around_href,
    change_rows,
    event_fields,
    event_row,
    pretty_details,
    raw_event,
    related_links,
)

STATS = {
    "total": 10,
    "by_action": {"user.login": 6, "role.assign": 4},
    "by_result": {"success": 7, "failure": 2, "denied": 1},
    "by_day": [
        {"date": "2026-04-01", "count": 6, "by_result": {"success": 5, "failure": 1}},
        {"date": "2026-04-02", "count": 0, "by_result": {}},
        {"date": "2026-04-03", "count": 4, "by_result": {"success": 2, "failure": 1, "denied": 1}},
    ],
    "top_actors": [{"actor_id": "usr_1", "actor_email": "a@x.example", "count": 6}],
    "unique_actors": 1,
    "failure_rate": 0.3,
}


def _event(**changes: Any) -> AuditLog:
    values: dict[str, Any] = {
        "id": "e1",
        "timestamp": datetime(2026, 4, 1, 9, 30, 5, tzinfo=UTC),
        "tenant_id": "acme",
        "actor_id": "usr_1",
        "actor_email": "a@acme.example",
        "action": "role.assign",
        "resource_type": "role",
        "resource_id": "role_9",
        "result": "failure",
        "ip_address": "203.0.113.7",
        "request_id": "req_1",
        "details": {"changes": {"role": {"from": "viewer", "to": "admin"}}},
    }
    values.update(changes)
    return AuditLog(**values)


def test_event_row_shows_email_and_resource_path() -> None:
    row = event_row(_event())
    assert row["time"] == "2026-04-01 09:30:05"
    assert row["actor"] == "a@acme.example"
    assert row["resource"] == "role/role_9"
    assert event_row(_event(actor_email=None, resource_id=None))["actor"] == "usr_1"


def test_changes_become_before_after_rows() -> None:
    details = {
        "changes": {
            "role": {"from": "viewer", "to": None},
            "mfa_required": {"old": False, "new": True},
            "origins": {"from": ["a"], "to": ["a", "b"]},
            "note": "plain",
        }
    }
    assert change_rows(details) == [
        {"field": "role", "before": "viewer", "after": "(none)"},
        {"field": "mfa_required", "before": "false", "after": "true"},
        {"field": "origins", "before": '["a"]', "after": '["a", "b"]'},
        {"field": "note", "before": "(none)", "after": "plain"},
    ]
    assert change_rows({"method": "sso"}) == []
    assert change_rows({"changes": "not a mapping"}) == []


def test_details_are_pretty_printed() -> None:
    assert pretty_details({"b": 1, "a": {"c": 2}}) == '{\n  "a": {\n    "c": 2\n  },\n  "b": 1\n}'


def test_related_links_filter_on_the_shared_value() -> None:
    links = {link["label"]: dict(parse_qsl(urlsplit(link["href"]).query)) for link in related_links(_event())}
    assert links == {
        "Same actor": {"actor_id": "usr_1"},
        "Same resource": {"resource_type": "role", "resource_id": "role_9"},
        "Same request": {"request_id": "req_1"},
        "Same IP address": {"ip_address": "203.0.113.7"},
    }
    bare = related_links(_event(request_id=None, ip_address=None, resource_id=None))
    assert [link["label"] for link in bare] == ["Same actor"]
    kept = related_links(_event(), {"range": "7d"})
    assert all(dict(parse_qsl(urlsplit(link["href"]).query))["range"] == "7d" for link in kept)


def test_events_around_one_are_its_tenant_five_minutes_either_side() -> None:
    query = dict(parse_qsl(urlsplit(around_href(_event())).query))
    assert query == {"tenant_id": "acme", "start_time": "2026-04-01T09:25", "end_time": "2026-04-01T09:36"}


def test_raw_json_and_copy_buttons() -> None:
    assert '"id": "e1"' in raw_event(_event())
    copies = {field["label"]: field["copy"] for field in event_fields(_event())}
    assert copies["Event ID"] == "event id"
    assert copies["IP address"] == "IP address"
    assert copies["Session ID"] == ""  # nothing to copy
    assert copies["Tenant"] == ""


def test_daily_chart_stacks_results_in_a_stable_order() -> None:
    fig = charts.daily_figure(STATS)
    assert [trace["name"] for trace in fig["data"]] == ["success", "failure", "denied"]
    assert fig["data"][0]["y"] == [5, 0, 2]
    assert fig["layout"]["barmode"] == "stack"


def test_a_chart_is_plotly_json_that_plotly_leaves_unchanged() -> None:
    """Each figure is written as Plotly's JSON directly: validated through go.Figure, nothing changes."""
    for build in (
        charts.daily_figure,
        charts.failure_figure,
        charts.actions_figure,
        charts.results_figure,
        charts.actors_figure,
    ):
        sent = build(STATS)
        validated = json.loads(pio.to_json(go.Figure(sent)))
        del validated["layout"]["template"]  # go.Figure adds plotly's default; the page supplies it (below)
        assert validated == sent
        assert "template" not in sent["layout"]
        assert json.loads(json.dumps(sent)) == sent  # plain JSON: nothing for the state to validate or pickle
    partial = charts.daily_figure(STATS, (True, True))
    validated = json.loads(pio.to_json(go.Figure(partial)))
    del validated["layout"]["template"]
    assert validated == partial
    assert partial["data"][0]["marker"]["opacity"] == [0.4, 1.0, 0.4]


def _merged(under: Any, over: Any) -> Any:
    """`over` deep-merged onto `under` as the page's mergician merges (objects by key, anything else replaced)."""
    if isinstance(under, dict) and isinstance(over, dict):
        return under | {key: _merged(under[key], value) if key in under else value for key, value in over.items()}
    return over


def test_the_charts_template_is_the_one_the_page_supplies() -> None:
    """The charts are drawn in Reflex's colour-mode template, whatever template a figure carries.

    rx.plotly merges `plotly` (light) or `plotly_dark` over the figure's layout.template; each sets
    every key of `plotly_white`, which the figures sent until they sent none: the merge came out the
    same either way, so the 7 KB of template per figure only travelled.
    """
    component = rx.plotly.basic(data=rx.Var.create({}).to(go.Figure))
    assert component.template is not None  # Reflex still supplies the template (else the charts lose theirs)

    def template(name: str) -> dict[str, Any]:
        return json.loads(pio.to_json(go.Figure(layout={"template": name})))["layout"]["template"]

    white = template("plotly_white")
    for supplied in (template("plotly"), template("plotly_dark")):
        assert _merged(white, supplied) == supplied
        assert _merged({}, supplied) == supplied


def test_failure_rate_per_day_skips_empty_days() -> None:
    assert charts.failure_rates(STATS) == [16.67, None, 50.0]


def test_ranked_charts_put_the_largest_on_top() -> None:
    fig = charts.actions_figure(STATS)
    assert fig["data"][0]["y"] == ["role.assign", "user.login"]
    assert charts.results_figure(STATS)["data"][0]["labels"] == ["success", "failure", "denied"]
    assert charts.day_window("2026-04-30") == {
        "start_time": "2026-04-30T00:00:00+00:00",
        "end_time": "2026-05-01T00:00:00+00:00",
    }


def test_a_chart_click_opens_the_whole_bucket() -> None:
    assert charts.day_window("2026-04-27", "week") == {
        "start_time": "2026-04-27T00:00:00+00:00",
        "end_time": "2026-05-04T00:00:00+00:00",
    }
    assert charts.day_window("2026-12-01", "month")["end_time"] == "2027-01-01T00:00:00+00:00"
    assert charts.day_window("2026-01-01", "year")["end_time"] == "2027-01-01T00:00:00+00:00"
    hour = {"start_time": "2026-04-30T13:00:00+00:00", "end_time": "2026-04-30T14:00:00+00:00"}
    assert charts.day_window("2026-04-30T13:00:00+00:00", "hour") == hour  # the bucket's start, as /stats names it
    assert charts.day_window("2026-04-30 13:00", "hour") == hour  # a clicked bar, as Plotly reports its time


def test_times_in_a_zone_and_how_long_ago() -> None:
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from audit_app.ui.present import ago, show_time

    when = datetime(2026, 5, 1, 22, 30, 5, tzinfo=UTC)
    assert show_time(when) == "2026-05-01 22:30:05"
    assert show_time(when, ZoneInfo("Asia/Tokyo")) == "2026-05-02 07:30:05"
    assert ago(when, when + timedelta(seconds=20)) == "just now"
    assert ago(when, when + timedelta(minutes=5, seconds=9)) == "5 min ago"
    assert ago(when, when + timedelta(hours=1)) == "1 hour ago"
    assert ago(when, when + timedelta(days=3, hours=2)) == "3 days ago"
    assert ago(when, when - timedelta(minutes=1)) == "in the future"
