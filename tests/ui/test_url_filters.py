"""The events view's URL query: parsing, round trips, presets and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest

from audit_app.audit.filters import AuditFilters
from audit_app.ui.url_filters import (
    DEFAULT_PAGE_SIZE,
    FilterError,
    ViewQuery,
    events_href,
    filters_params,
    input_time,
    parse_time,
    preset_window,
    submitted_view,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_query_round_trip_keeps_every_filter() -> None:
    params = {
        "tenant_id": "acme",
        "partner_id": "northwind",
        "actor_id": "usr_1",
        "actor_email": "a@acme.example",
        "action": "role.assign",
        "resource_type": "role",
        "resource_id": "role_9",
        "result": "failure",
        "ip_address": "203.0.113.7",
        "request_id": "req_1",
        "start_time": "2026-04-01T00:00:00+00:00",
        "end_time": "2026-04-02T00:00:00+00:00",
        "page": "3",
        "per_page": "100",
    }
    view = ViewQuery.from_params(params)
    assert view.preset == "custom"
    assert dict(parse_qsl(view.query_string())) == params
    assert ViewQuery.from_params(dict(parse_qsl(view.query_string()))) == view


def test_filters_use_api_names_and_utc() -> None:
    view = ViewQuery.from_params({"action": "role.assign", "start_time": "2026-04-01T09:30", "result": "failure"})
    filters = view.filters(NOW)
    assert filters == AuditFilters(
        action="role.assign", result="failure", start_time=datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
    )
    assert filters_params(filters) == {
        "action": "role.assign",
        "result": "failure",
        "start_time": "2026-04-01T09:30:00+00:00",
    }


@pytest.mark.parametrize(
    ("preset", "delta"),
    [("1h", timedelta(hours=1)), ("24h", timedelta(days=1)), ("7d", timedelta(days=7)), ("30d", timedelta(days=30))],
)
def test_presets_are_windows_ending_now(preset: str, delta: timedelta) -> None:
    assert preset_window(preset, NOW) == (NOW - delta, None)
    view = ViewQuery.from_params({"range": preset, "start_time": "2020-01-01T00:00"})
    assert view.values["start_time"] == ""
    assert view.filters(NOW).start_time == NOW - delta
    assert view.to_params() == {"range": preset}


def test_unknown_preset_and_no_window_means_any_time() -> None:
    view = ViewQuery.from_params({"range": "forever"})
    assert view.preset == ""
    assert view.filters(NOW) == AuditFilters()
    assert preset_window("custom", NOW) == (None, None)


def test_bad_page_numbers_fall_back() -> None:
    assert ViewQuery.from_params({"page": "-4", "per_page": "7"}).page == 1
    assert ViewQuery.from_params({"page": "x", "per_page": "7"}).per_page == DEFAULT_PAGE_SIZE
    assert ViewQuery.from_params({"per_page": "200"}).per_page == 200
    assert ViewQuery().to_params() == {}


def test_bad_times_are_refused_with_the_field_name() -> None:
    with pytest.raises(FilterError, match="From"):
        ViewQuery.from_params({"start_time": "yesterday"}).filters(NOW)
    with pytest.raises(FilterError, match="later"):
        ViewQuery.from_params({"start_time": "2026-04-02T00:00", "end_time": "2026-04-01T00:00"}).filters(NOW)


def test_times_convert_to_utc_for_inputs() -> None:
    assert parse_time("2026-04-01T10:00:00+02:00", "From") == datetime(2026, 4, 1, 8, 0, tzinfo=UTC)
    assert parse_time("2026-04-01T10:00:00Z", "From") == datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
    assert input_time("2026-04-01T10:00:00+02:00") == "2026-04-01 08:00"
    assert input_time("") == ""
    assert input_time("not-a-date") == ""
    assert input_time("9999-12-31T23:59:00-01:00") == ""


def test_bad_times_name_their_field() -> None:
    with pytest.raises(FilterError, match="From: 'not-a-date' is not a date") as bad:
        ViewQuery.from_params({"start_time": "not-a-date"}).filters(NOW)
    assert bad.value.field == "start_time"
    with pytest.raises(FilterError, match="outside the supported dates") as far:
        ViewQuery.from_params({"end_time": "9999-12-31T23:59:00-01:00"}).filters(NOW)
    assert far.value.field == "end_time"
    with pytest.raises(FilterError, match="later") as reversed_window:
        ViewQuery.from_params({"start_time": "2026-04-02 00:00", "end_time": "2026-04-01 00:00"}).filters(NOW)
    assert reversed_window.value.field == "end_time"


def test_a_submitted_form_applies_the_window_its_picker_names() -> None:
    base = ViewQuery.from_params({"tenant_id": "acme", "per_page": "25"})
    typed = {"action": "user.login", "range": "7d", "start_time": "2026-04-01 00:00", "end_time": ""}
    custom = submitted_view(base, typed, ["action", "start_time", "end_time"], "custom")
    assert custom.to_params() == {
        "tenant_id": "acme",
        "action": "user.login",
        "start_time": "2026-04-01 00:00",
        "per_page": "25",
    }
    preset = submitted_view(base, typed, ["action", "start_time", "end_time"], "7d")
    assert preset.to_params() == {"tenant_id": "acme", "action": "user.login", "range": "7d", "per_page": "25"}
    assert submitted_view(base, {"tenant_id": ""}, ["tenant_id"], "").to_params() == {"per_page": "25"}


def test_overlong_values_are_cut() -> None:
    assert len(ViewQuery.from_params({"actor_id": "x" * 5000}).values["actor_id"]) == 320


def test_events_href_drops_empty_values() -> None:
    assert events_href(actor_id="usr 1", resource_id=None) == "/events?actor_id=usr+1"
    assert events_href() == "/events"


def test_times_typed_in_a_zone_keep_their_offset() -> None:
    from zoneinfo import ZoneInfo

    from audit_app.ui.url_filters import typed_time, window_text

    tokyo = ZoneInfo("Asia/Tokyo")
    assert typed_time("2026-05-01 09:00", tokyo) == "2026-05-01T09:00+09:00"
    assert typed_time("2026-05-01 09:00", UTC) == "2026-05-01 09:00"
    assert typed_time("nonsense", tokyo) == "nonsense"
    assert input_time("2026-05-01T00:00:00+00:00", tokyo) == "2026-05-01 09:00"
    assert window_text("7d", NOW) == "2026-04-24 12:00 to now (UTC)"
    assert window_text("24h", NOW, tokyo) == "2026-04-30 21:00 to now (Asia/Tokyo)"
    assert window_text("", NOW) == ""


def test_a_pasted_api_link_reads_as_the_api_reads_it() -> None:
    from audit_app.ui.url_filters import url_params

    params = url_params("action=user.login&action=user.logout&not_result=success&q=alice+%22db+admin%22&page=2")
    assert params == {
        "action": "user.login,user.logout",
        "not_result": "success",
        "q": 'alice "db admin"',
        "page": "2",
    }
    view = ViewQuery.from_params(params)
    expected = AuditFilters(action="user.login,user.logout", not_result="success", q='alice "db admin"')
    assert view.filters(NOW) == expected
    assert ViewQuery.from_params(dict(parse_qsl(view.query_string()))) == view
    assert url_params("page=1&page=3") == {"page": "3"}  # only filters take several values


def test_the_statistics_window_defaults_to_30_days() -> None:
    from audit_app.ui.url_filters import stats_params

    assert stats_params({"tenant_id": "acme"}) == {"tenant_id": "acme", "range": "30d"}
    assert stats_params({"range": "all"}) == {"range": "all"}
    assert stats_params({"start_time": "2026-04-01T00:00"}) == {"start_time": "2026-04-01T00:00"}


def test_an_empty_result_names_each_filter_and_how_it_matches() -> None:
    from audit_app.ui.url_filters import widenings

    view = ViewQuery.from_params(
        {
            "q": "alice",
            "tenant_id": "acme",
            "actor_email": "Bob@Acme.example",
            "action": "user.login,user.log*",
            "ip_address": "10.0.0.0/8",
            "resource_id": "usr 7",
            "not_result": "success",
            "range": "7d",
        }
    )
    by_name = {item["name"]: item for item in widenings(view)}
    assert list(by_name) == [
        "tenant_id",
        "actor_email",
        "action",
        "resource_id",
        "ip_address",
        "q",
        "not_result",
        "range",
    ]
    assert by_name["q"]["match"] == "text anywhere in the event, any case"
    assert by_name["tenant_id"] == {
        "name": "tenant_id",
        "label": "Tenant",
        "value": "acme",
        "match": "exact, case-sensitive",
        "term": "",  # not a field the text search covers
    }
    assert by_name["actor_email"]["match"] == "exact, any case"
    assert by_name["actor_email"]["term"] == "Bob@Acme.example"
    assert by_name["action"]["match"] == "any of 2: exact or prefix, case-sensitive"
    assert by_name["action"]["term"] == ""  # several values are not one text
    assert by_name["ip_address"]["match"] == "network"
    assert by_name["ip_address"]["term"] == ""
    assert by_name["resource_id"]["term"] == '"usr 7"'
    assert by_name["not_result"]["match"] == "leaves out exact, case-sensitive"
    assert by_name["range"]["value"] == "Last 7 days"
    custom = ViewQuery.from_params({"start_time": "2026-04-01T00:00"})
    assert widenings(custom) == [
        {"name": "range", "label": "Time range", "value": "2026-04-01T00:00 to …", "match": "", "term": ""}
    ]
    assert widenings(ViewQuery()) == []


def test_widening_drops_a_filter_or_moves_it_into_the_search() -> None:
    from audit_app.ui.url_filters import searched_as_text, without_filter

    view = ViewQuery.from_params(
        {"q": "login", "actor_id": "usr_00*", "tenant_id": "acme", "range": "24h", "page": "3", "per_page": "25"}
    )
    assert without_filter(view, "tenant_id").to_params() == {
        "q": "login",
        "actor_id": "usr_00*",
        "range": "24h",
        "per_page": "25",
    }
    assert without_filter(view, "range").to_params() == {
        "q": "login",
        "actor_id": "usr_00*",
        "tenant_id": "acme",
        "per_page": "25",
    }
    assert searched_as_text(view, "actor_id").to_params() == {
        "q": "login usr_00",
        "tenant_id": "acme",
        "range": "24h",
        "per_page": "25",
    }
    assert searched_as_text(view, "tenant_id") == view  # tenants are not searched as text


def test_a_saved_view_keeps_filters_and_window_and_opens_on_its_page() -> None:
    from audit_app.ui.url_filters import saved_query, saved_view_href

    view = ViewQuery.from_params({"q": "x", "not_action": "audit.view", "range": "7d", "page": "4", "per_page": "100"})
    assert saved_query(view) == {"q": "x", "not_action": "audit.view", "range": "7d", "per_page": "100"}
    assert saved_view_href("events", {"q": "a b"}) == "/events?q=a+b"
    assert saved_view_href("events", {}) == "/events"
    assert saved_view_href("statistics", {"tenant_id": "acme"}) == "/statistics?tenant_id=acme&range=all"
    assert saved_view_href("statistics", {"range": "7d"}) == "/statistics?range=7d"


def test_sort_and_window_travel_in_the_url() -> None:
    view = ViewQuery.from_params({"action": "user.login", "range": "7d", "sort": "asc", "page": "2"})
    assert view.sort == "asc"
    assert view.to_params() == {"action": "user.login", "range": "7d", "page": "2", "sort": "asc"}
    assert view.window_params() == {"range": "7d"}
    assert ViewQuery.from_params({"sort": "sideways"}).to_params() == {}
    custom = ViewQuery.from_params({"start_time": "2026-05-01T09:00", "actor_id": "u"})
    assert custom.window_params() == {"start_time": "2026-05-01T09:00"}
