"""The time charts in a zone other than UTC: a bucket's bounds, its partial ends and its labels."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from audit_app.audit.filters import AuditFilters
from audit_app.ui import charts

NEW_YORK = ZoneInfo("America/New_York")
KATHMANDU = ZoneInfo("Asia/Kathmandu")


def stats_of(bucket: str, *dates: str) -> dict[str, object]:
    return {"bucket": bucket, "by_day": [{"date": d, "count": 1, "by_result": {"success": 1}} for d in dates]}


def test_a_local_day_is_clicked_as_its_two_local_midnights() -> None:
    # the spring change: 2026-03-08 lasts 23 hours in New York
    assert charts.day_window("2026-03-08", "day", NEW_YORK) == {
        "start_time": "2026-03-08T00:00:00-05:00",
        "end_time": "2026-03-09T00:00:00-04:00",
    }
    assert charts.day_window("2026-03-02", "week", KATHMANDU) == {
        "start_time": "2026-03-02T00:00:00+05:45",
        "end_time": "2026-03-09T00:00:00+05:45",
    }
    assert charts.day_window("2026-10-01", "month", NEW_YORK)["end_time"] == "2026-11-01T00:00:00-04:00"
    assert charts.day_window("2026-03-08", "day", UTC)["start_time"] == "2026-03-08T00:00:00+00:00"


def test_a_local_hour_is_clicked_with_its_offset() -> None:
    # 01:00 happens twice on 2026-11-01 in New York: the bucket's name says which
    assert charts.day_window("2026-11-01T01:00:00-05:00", "hour", NEW_YORK) == {
        "start_time": "2026-11-01T01:00:00-05:00",
        "end_time": "2026-11-01T02:00:00-05:00",
    }
    assert charts.day_window("2026-11-01T01:00:00-04:00", "hour", NEW_YORK) == {
        "start_time": "2026-11-01T01:00:00-04:00",
        "end_time": "2026-11-01T01:00:00-05:00",
    }
    assert charts.day_window("2026-03-02 00:00", "hour", KATHMANDU) == {
        "start_time": "2026-03-02T00:00:00+05:45",
        "end_time": "2026-03-02T01:00:00+05:45",
    }


def test_partial_ends_follow_the_zone() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    # whole New York days: nothing partial there, both ends partial in UTC terms
    window = AuditFilters(
        start_time=datetime.fromisoformat("2026-03-07T00:00:00-05:00"),
        end_time=datetime.fromisoformat("2026-03-09T00:00:00-04:00"),
    )
    assert charts.partial_ends(stats_of("day", "2026-03-07", "2026-03-08"), window, now, NEW_YORK) == (False, False)
    assert charts.partial_ends(stats_of("day", "2026-03-07", "2026-03-08", "2026-03-09"), window, now) == (True, True)
    cut = AuditFilters(start_time=datetime.fromisoformat("2026-03-07T00:30:00-05:00"), end_time=window.end_time)
    assert charts.partial_ends(stats_of("day", "2026-03-07", "2026-03-08"), cut, now, NEW_YORK) == (True, False)
    hours = AuditFilters(
        start_time=datetime.fromisoformat("2026-03-01T22:45:00+05:45"),
        end_time=datetime.fromisoformat("2026-03-01T23:45:00+05:45"),
    )
    stats = stats_of("hour", "2026-03-01T22:00:00+05:45", "2026-03-01T23:00:00+05:45")
    assert charts.partial_ends(stats, hours, now, KATHMANDU) == (True, True)


def test_hours_are_labelled_in_the_zones_wall_clock_time() -> None:
    stats = stats_of("hour", "2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00")
    assert charts.bucket_labels(stats) == ["2026-11-01 00:00", "2026-11-01 01:00", "2026-11-01 01:00"]
    assert charts.bucket_labels(stats_of("day", "2026-03-08")) == ["2026-03-08"]
