"""The statistics' time window and bucket size (audit.stats)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from audit_app.audit.filters import AuditFilters
from audit_app.audit.stats import _window_range, bucketed


def test_window_range_end_is_exclusive_and_open_sides_follow_the_data() -> None:
    window = AuditFilters(start_time=datetime(2026, 3, 1), end_time=datetime(2026, 3, 3))
    assert _window_range(None, None, window) == (date(2026, 3, 1), date(2026, 3, 2))
    late = AuditFilters(start_time=datetime(2026, 3, 1), end_time=datetime(2026, 3, 3, 0, 0, 1))
    assert _window_range(None, None, late) == (date(2026, 3, 1), date(2026, 3, 3))
    open_end = AuditFilters(start_time=datetime(2026, 3, 1))
    assert _window_range(date(2026, 2, 1), date(2026, 3, 4), open_end) == (date(2026, 3, 1), date(2026, 3, 4))
    assert _window_range(None, None, AuditFilters()) is None
    assert _window_range(date(2026, 3, 5), date(2026, 3, 5), AuditFilters()) == (date(2026, 3, 5), date(2026, 3, 5))
    assert _window_range(None, None, AuditFilters(end_time=datetime(1, 1, 1))) is None


def test_a_huge_empty_window_has_no_buckets() -> None:
    huge = AuditFilters(start_time=datetime(1, 1, 2), end_time=datetime(9999, 1, 1))
    assert bucketed({}, huge) == ("year", [])
    size, rows = bucketed({date(2026, 3, 1): {"success": 1}}, huge)
    assert (size, [row["date"] for row in rows]) == ("year", ["2026-01-01"])


@pytest.mark.parametrize(
    ("first", "last", "size", "buckets"),
    [
        (date(2026, 3, 1), date(2026, 3, 1), "day", 1),
        (date(2025, 3, 1), date(2026, 3, 1), "day", 366),
        (date(2024, 1, 1), date(2026, 3, 1), "week", 113),
        (date(2000, 1, 1), date(2026, 3, 1), "month", 315),
        (date(1950, 1, 1), date(2026, 3, 1), "year", 77),
        (date(1, 1, 1), date(9999, 12, 31), "year", 2),  # only the years holding events
    ],
)
def test_the_bucket_size_keeps_the_answer_small(first: date, last: date, size: str, buckets: int) -> None:
    daily = {first: {"success": 2}}
    daily.setdefault(last, {})["failure"] = 1
    chosen, rows = bucketed(daily, AuditFilters())
    assert (chosen, len(rows)) == (size, buckets)
    assert sum(row["count"] for row in rows) == 3
    assert rows[0]["by_result"].get("success") == 2
    assert date.fromisoformat(rows[-1]["date"]) <= last


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    daily = {date(2024, 1, 3): {"success": 1}, date(2026, 3, 4): {"success": 1}}  # a Wednesday each
    size, rows = bucketed(daily, AuditFilters())
    assert size == "week"
    assert rows[0]["date"] == "2024-01-01"
    assert {date.fromisoformat(row["date"]).weekday() for row in rows} == {0}
    size, rows = bucketed({date(2001, 5, 9): {"success": 1}, date(2026, 3, 4): {"error": 1}}, AuditFilters())
    assert size == "month"
    assert (rows[0]["date"], rows[-1]["date"]) == ("2001-05-01", "2026-03-01")
