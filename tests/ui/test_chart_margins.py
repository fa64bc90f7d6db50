"""The charts' margins hold their labels and legends, so Plotly's automargin never draws a chart twice.

What sticks out of the plot area was measured in Chromium (Liberation Sans, Helvetica's widths, the font
FONT falls back to there): what Plotly's automargin pushed each side to, less its pad.
"""

from __future__ import annotations

from typing import Any

import pytest

from audit_app.ui import charts
from tests.ui.test_present import STATS


def holds(margin: dict[str, int], side: str, sticking_out: float) -> bool:
    """Whether `margin` holds what sticks out on `side` plus the pad Plotly adds (12, or the smallest margin)."""
    return margin[side] >= sticking_out + min(12, *margin.values())


def test_text_is_as_wide_as_helvetica_with_room_to_spare() -> None:
    assert charts.text_width("150") == pytest.approx(20.016 * charts.TEXT_SAFETY)
    assert charts.text_width("user.password_reset") == pytest.approx(111.372 * charts.TEXT_SAFETY)
    assert charts.text_width("é") == pytest.approx(12 * charts.TEXT_SAFETY)  # beyond ASCII: 1 em


def test_widest_ticks() -> None:
    assert charts.count_tick(150) == "000"
    assert charts.count_tick(95) == "000"  # the range reaches past 100
    assert charts.count_tick(0) == "0"
    assert charts.percent_tick(60) == "00%"
    assert charts.percent_tick(1) == "0.0%"  # 0.2% ... 1%
    assert charts.percent_tick(0.05) == "0.000%"
    assert charts.date_tick(1) == "May 30, 2026"  # hours over the day
    assert charts.date_tick(30) == "May 30"
    assert charts.date_tick(365) == "May 2026"


# (label, side, px sticking out that Chromium measured)
MEASURED = [
    ("150", "l", 21.0),  # value ticks of the daily chart
    ("60%", "l", 25.0),
    ("0.8%", "l", 28.4),
]


@pytest.mark.parametrize(("tick", "side", "measured"), MEASURED)
def test_time_charts_hold_their_value_ticks(tick: str, side: str, measured: float) -> None:
    assert holds(charts.time_margins(tick, 30), side, measured)


def test_time_charts_hold_their_date_ticks() -> None:
    days = charts.time_margins("0", 90)
    assert holds(days, "b", 31.6)  # "Sep 6" over "2026"
    hours = charts.time_margins("0", 1)
    assert holds(hours, "l", 35.7)  # "12:00" over "Nov 29, 2026" at the left end
    assert holds(hours, "r", 35.7)
    assert charts.time_margins("0", 30)["t"] == charts.EDGE  # bars: Plotly pads their range
    assert holds(charts.time_margins("0", 1, padded=False), "t", 6.8)  # "1%" at the top of a line's range


@pytest.mark.parametrize(
    ("label", "measured"), [("user.password_reset", 111.7), ("victor.adams5@umbrella.example", 181.9)]
)
def test_ranked_bars_hold_their_labels(label: str, measured: float) -> None:
    margin = charts.ranked_margins([label, "x"], [400, 1])
    assert holds(margin, "l", measured)
    assert margin["l"] <= 1.25 * (measured + 12)  # generous, not wasteful
    assert holds(margin, "b", 16.0)  # one line of count ticks


def test_ranked_bars_leave_labels_too_long_for_a_phone_to_automargin() -> None:
    margin = charts.ranked_margins(["oluwaseun.adebayo-williams@northwind-logistics.example"], [3])
    assert margin["l"] == charts.WIDEST_LABELS


def _legend_below_needs(legend_height: float, margin: dict[str, int]) -> float:
    """The bottom margin Plotly pushes to for a legend LEGEND_BELOW under the plot area."""
    pad = min(12, *margin.values())
    below = -charts.LEGEND_BELOW
    return (legend_height + pad + below * (charts.HEIGHT - margin["t"])) / (1 + below)


def test_the_daily_legend_fits_under_the_chart_wrapped_as_on_a_phone() -> None:
    figure = charts.daily_figure(STATS | {"by_result": {"success": 1, "failure": 1, "denied": 1, "error": 1}})
    margin = figure["layout"]["margin"]
    assert margin["b"] >= _legend_below_needs(29, margin)  # one row at 1440 px
    assert margin["b"] >= _legend_below_needs(48, margin)  # two rows at 390 px
    one = charts.daily_figure(STATS | {"by_result": {"success": 1}})["layout"]["margin"]
    assert one["b"] < margin["b"]


@pytest.mark.parametrize("width", [332, 647, charts.WIDEST_CHART])
def test_the_donut_legend_fits_at_its_right(width: int) -> None:
    margin = charts.results_figure(STATS | {"by_result": {"success": 1, "failure": 1, "denied": 1, "error": 1}})[
        "layout"
    ]["margin"]
    pad = min(12, *margin.values())
    legend = 89  # its width in Chromium
    shift = charts.LEGEND_RIGHT - 1
    assert margin["r"] >= (legend + pad + shift * (width - margin["l"])) / charts.LEGEND_RIGHT
    assert margin["l"] == margin["t"] == margin["b"] == charts.EDGE


def test_each_figure_carries_the_margins_of_its_labels() -> None:
    busy: dict[str, Any] = STATS | {
        "by_day": [{"date": "2026-04-01", "count": 123_456, "by_result": {"success": 123_456}}] * 40,
        "top_actors": [{"actor_id": "usr_1", "actor_email": "victor.adams5@umbrella.example", "count": 6}],
    }
    daily = charts.daily_figure(busy)["layout"]["margin"]
    assert daily["l"] == charts.time_margins("000000", 40)["l"]  # 123,456: ticks up to 135,801 at most
    failure = charts.failure_figure(STATS)["layout"]["margin"]
    assert failure["t"] > charts.EDGE  # its line's range ends at the highest rate
    actors = charts.actors_figure(busy)["layout"]["margin"]
    assert actors == charts.ranked_margins(["victor.adams5@umbrella.example"], [6])
    assert charts.actions_figure(STATS)["layout"]["margin"] == charts.ranked_margins(
        ["user.login", "role.assign"], [6, 4]
    )


def test_an_empty_window_has_margins_too() -> None:
    empty: dict[str, Any] = {"by_day": [], "by_result": {}, "by_action": {}, "top_actors": [], "bucket": "day"}
    for figure in (charts.daily_figure(empty), charts.failure_figure(empty), charts.results_figure(empty)):
        assert all(isinstance(side, int) and side >= charts.EDGE for side in figure["layout"]["margin"].values())
    assert charts.actors_figure(empty)["layout"]["margin"]["l"] == charts.EDGE
