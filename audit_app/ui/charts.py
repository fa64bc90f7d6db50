"""Plotly figures of the statistics page, built from `compute_stats` output (so they agree with /stats).

Each figure is Plotly's JSON of it (a plain dict: `data`, `layout`), written directly: building it
as `go.Figure` and serialising that took 35-70 ms of the server's CPU per statistics load, all of
it Plotly validating what these functions already write correctly (a test passes every figure
through `go.Figure` and checks nothing changes).

A figure carries no template: the page's plotly component merges Reflex's colour-mode template
(`plotly` or `plotly_dark`) over the figure's own, and each of those sets every key that
`plotly_white`, which the figures carried, sets; the browser drew the very same charts while each
figure sent 7 KB of template that the merge overwrote (five sevenths of the statistics page's figures).

That template turns on `automargin` for the cartesian axes, and a legend outside the plot area
always pushes the margins: when the labels and legends need more room than the figure's margins,
Plotly draws the chart, widens its margins and draws it all again. So each figure's margins are
estimated here from its labels (`text_width`), at least what Plotly would push them to, and each
chart is drawn once; `automargin` stays on for an estimate that falls short (another font).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from audit_app.audit.filters import AuditFilters
from audit_app.audit.stats import local_hour, next_bucket

RESULT_COLORS = {"success": "#2f9e6f", "failure": "#e5484d", "denied": "#f08c00", "error": "#8e4ec6"}
OTHER_COLOR = "#8b8d98"
TOP_N = 10
FONT = "Inter, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif"
FONT_SIZE = 12
HEIGHT = 320
"""The height of a chart (the ranked ones grow with their bars)."""
LEGEND_BELOW = -0.18
"""Where the daily chart's horizontal legend sits: this far under the plot area (a share of its height)."""
LEGEND_RIGHT = 1.02
"""Where the donut's vertical legend sits: this far right of the plot area (a share of its width)."""
Figure = dict[str, Any]
"""A figure as the browser draws it: Plotly's JSON (`data`, a list of traces, and `layout`)."""
EMPTY_FIGURE: Figure = {"data": [], "layout": {}}
"""A chart with nothing to draw yet (the page's plotly component supplies the default template)."""


def result_color(result: str) -> str:
    """The colour of a result, the same in charts and badges."""
    return RESULT_COLORS.get(result, OTHER_COLOR)


# Helvetica's advance widths (Arial's and Liberation Sans' too) of " " to "~", in thousandths of an em.
_ASCII_WIDTHS = (
    (278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278)
    + (556,) * 10
    + (278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833)
    + (722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556)
    + (556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556)
    + (500, 722, 500, 500, 500, 334, 260, 334, 584)
)
TEXT_SAFETY = 1.1
"""How much wider than Helvetica FONT may draw a label (Inter, SF and Segoe UI run up to ~8% wider)."""
EDGE = 8
"""The margin of a side where nothing sticks out of the plot area."""
AUTOMARGIN_PAD = 12
"""The most Plotly adds to what sticks out (12 px; the smallest margin when that is smaller)."""
TICK_GAP = 2
"""Between a y tick label and the plot area (Plotly leaves about 1 px)."""
TICK_LINE = 1.3 * FONT_SIZE
"""The height of a line of tick labels (x tick labels are one line, date ones two)."""
LEGEND_SYMBOL = 40
"""A legend entry's symbol and the gap before its text."""
LEGEND_GAP = 5
"""Between horizontal legend entries."""
LEGEND_ROW = 19
"""The height of a legend entry at FONT_SIZE."""
LEGEND_FRAME = 10
"""A legend's padding above and below its entries, together."""
LEGEND_SIDES = 6
"""A legend's padding left and right of its entries, together."""
NARROW_PLOT = 240
"""The narrowest plot area the daily chart's legend is wrapped for (a 360 px phone)."""
WIDEST_CHART = 1440
"""No chart is wider than the page (its max-width)."""
WIDEST_LABELS = 248
"""The most left margin ranked bars are given: on a 390 px phone their plot keeps the 64 px automargin
keeps. Longer labels are left to automargin, which then draws that chart twice (and on a phone clips them)."""


def text_width(text: str) -> float:
    """How wide `text` is drawn at FONT_SIZE, at most: Helvetica's widths times TEXT_SAFETY, 1 em beyond ASCII."""
    thousandths = sum(_ASCII_WIDTHS[ord(c) - 32] if " " <= c <= "~" else 1000 for c in text)
    return thousandths * FONT_SIZE / 1000 * TEXT_SAFETY


def _margin(left: float = 0, right: float = 0, top: float = 0, bottom: float = 0) -> dict[str, int]:
    """Margins around what sticks out of the plot area on each side (in px), with Plotly's pad."""
    sides = {"l": left, "r": right, "t": top, "b": bottom}
    return {side: math.ceil(out + AUTOMARGIN_PAD) if out else EDGE for side, out in sides.items()}


def count_tick(largest: float) -> str:
    """The widest tick label of an axis of counts from 0 past `largest` (Plotly pads the range by 5%)."""
    return "0" * len(str(int(largest * 1.1)))


def percent_tick(largest: float) -> str:
    """The widest tick label of an axis of percentages from 0 past `largest`, with the decimals of its ticks."""
    decimals = max(0, -math.floor(math.log10(largest / 10))) if largest > 0 else 0
    return count_tick(largest) + ("." + "0" * decimals if decimals else "") + "%"


def date_tick(span_days: float) -> str:
    """The widest line of date tick labels over `span_days` (May is the widest month).

    Plotly puts 5 to 10 ticks on a date axis: hours over up to 5 days ("12:00" over "May 30, 2026"),
    months past 76 days ("May 2026"), days in between ("May 30" over "2026"). The bounds here, 6 and
    70 days, err to the wider label (the range also reaches a little past the first and last bucket).
    """
    if span_days <= 6:
        return "May 30, 2026"
    return "May 2026" if span_days > 70 else "May 30"


def time_margins(value_tick: str, span_days: float, *, padded: bool = True) -> dict[str, int]:
    """Margins of a time chart: the value ticks at the left, the two lines of date ticks under it, the
    first and last date label sticking out at either end.

    Unless the value axis is `padded` (bars: Plotly adds 5% over the tallest), its top tick label
    may sit at the very top, half of it over the plot area.
    """
    date_half = text_width(date_tick(span_days)) / 2
    left = max(text_width(value_tick) + TICK_GAP, date_half)
    return _margin(left, date_half, 0 if padded else TICK_LINE / 2, 2 * TICK_LINE + 1)


def legend_below(names: Sequence[str], height: int = HEIGHT) -> int:
    """The bottom margin that holds the horizontal legend under the plot area, wrapped as on a narrow plot.

    Plotly pushes the bottom until the legend, LEGEND_BELOW of the plot area's height under it, fits.
    """
    entries = [text_width(name) + LEGEND_SYMBOL for name in names]
    if not entries:
        return 0
    rows = 1
    if sum(entries) + LEGEND_GAP * (len(entries) - 1) + LEGEND_SIDES >= NARROW_PLOT:
        per_row = max(1, int((NARROW_PLOT + LEGEND_GAP) // (max(entries) + LEGEND_GAP)))
        rows = math.ceil(len(entries) / per_row)
    legend = rows * LEGEND_ROW + LEGEND_FRAME + AUTOMARGIN_PAD
    return math.ceil((legend - LEGEND_BELOW * (height - EDGE)) / (1 - LEGEND_BELOW))


def legend_right(names: Sequence[str]) -> int:
    """The right margin that holds a vertical legend at LEGEND_RIGHT on a chart up to WIDEST_CHART wide."""
    legend = max(map(text_width, names), default=0) + LEGEND_SYMBOL + LEGEND_SIDES + AUTOMARGIN_PAD
    return math.ceil((legend + (LEGEND_RIGHT - 1) * WIDEST_CHART) / LEGEND_RIGHT)


def ranked_margins(labels: Sequence[str], counts: Sequence[int]) -> dict[str, int]:
    """Margins of horizontal bars: their labels at the left, one line of count ticks under them, the
    last count label sticking out at the right."""
    widest = max(map(text_width, labels), default=0)
    last_count = text_width(count_tick(max(counts, default=0))) / 2
    margin = _margin(widest + TICK_GAP if labels else 0, last_count, bottom=TICK_LINE + 1)
    return margin | {"l": min(margin["l"], WIDEST_LABELS)}


def _figure(
    data: list[dict[str, Any]],
    layout: dict[str, Any],
    margin: dict[str, int],
    *,
    height: int = HEIGHT,
    legend: bool = False,
) -> Figure:
    """`data` and `layout` in the charts' common layout (the template is the page's, see above)."""
    common = {
        "height": height,
        "margin": margin,
        "font": {"family": FONT, "size": FONT_SIZE, "color": "#1c2024"},
        "showlegend": legend,
        "legend": {"orientation": "h", "y": LEGEND_BELOW, "x": 0},
        "hoverlabel": {"font": {"family": FONT}},
        "autosize": True,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
    }
    return {"data": data, "layout": common | layout}


def result_order(stats: dict[str, Any]) -> list[str]:
    """Results in a stable order: the known ones first, then any others by count."""
    known = [r for r in RESULT_COLORS if r in stats["by_result"]]
    return known + [r for r in stats["by_result"] if r not in RESULT_COLORS]


BUCKET_DAYS = {"hour": 1 / 24, "day": 1, "week": 7, "month": 31, "year": 366}
"""How many days a bucket of `/stats` spans, at most."""


def span_days(stats: dict[str, Any]) -> float:
    """How many days the time charts span, at most."""
    return len(stats["by_day"]) * BUCKET_DAYS.get(stats.get("bucket", "day"), 1)


def bucket_labels(stats: dict[str, Any]) -> list[str]:
    """The x values of the time charts: each bucket's first day, or its hour as the zone's wall-clock time.

    (Plotly ignores offsets in times: "2026-11-01 01:00" is given as such, in the zone of `/stats`.)
    """
    if stats.get("bucket") == "hour":
        return [d["date"][:16].replace("T", " ") for d in stats["by_day"]]
    return [d["date"] for d in stats["by_day"]]


def daily_figure(stats: dict[str, Any], partial: tuple[bool, bool] = (False, False)) -> Figure:
    """Events per day, stacked by result (one trace per result, in `result_order`).

    A partial first or last bucket (`partial_ends`) is drawn lighter and says so on hover.
    """
    days = bucket_labels(stats)
    order = result_order(stats)
    marks = [""] * len(days)
    if days and partial[0]:
        marks[0] = " (partial)"
    if days and partial[1]:
        marks[-1] = " (partial)"
    data = [
        {
            "type": "bar",
            "name": result,
            "x": days,
            "y": [d["by_result"].get(result, 0) for d in stats["by_day"]],
            "customdata": marks,
            "marker": {"color": result_color(result), "opacity": [0.4 if mark else 1.0 for mark in marks]},
            "hovertemplate": "%{x}%{customdata}<br>" + result + ": %{y:,}<extra></extra>",
        }
        for result in order
    ]
    margin = time_margins(count_tick(max((d["count"] for d in stats["by_day"]), default=0)), span_days(stats))
    margin["b"] = max(margin["b"], legend_below(order))
    return _figure(data, {"barmode": "stack", "bargap": 0.15, "xaxis": {"type": "date"}}, margin, legend=True)


def failure_rates(stats: dict[str, Any]) -> list[float | None]:
    """Per day, the share of events that did not succeed (None on days without events)."""
    rates: list[float | None] = []
    for day in stats["by_day"]:
        count = day["count"]
        rates.append(round(100 * (count - day["by_result"].get("success", 0)) / count, 2) if count else None)
    return rates


def failure_figure(stats: dict[str, Any]) -> Figure:
    """Failure rate (every result but success) per day, in percent."""
    rates = failure_rates(stats)
    line = {
        "type": "scatter",
        "x": bucket_labels(stats),
        "y": rates,
        "mode": "lines+markers",
        "line": {"color": RESULT_COLORS["failure"], "width": 2},
        "marker": {"size": 5},
        "connectgaps": False,
        "hovertemplate": "%{x}<br>%{y:.2f}% not successful<extra></extra>",
    }
    largest = max((rate for rate in rates if rate is not None), default=0)
    margin = time_margins(percent_tick(largest), span_days(stats), padded=False)
    return _figure([line], {"yaxis": {"ticksuffix": "%", "rangemode": "tozero"}, "xaxis": {"type": "date"}}, margin)


def top_actions(stats: dict[str, Any]) -> list[tuple[str, int]]:
    """The most frequent actions, most frequent first."""
    return sorted(stats["by_action"].items(), key=lambda item: (-item[1], item[0]))[:TOP_N]


def _ranked_bar(labels: list[str], counts: list[int], color: str, what: str) -> Figure:
    bar = {
        "type": "bar",
        "x": counts[::-1],
        "y": labels[::-1],
        "orientation": "h",
        "marker": {"color": color},
        "hovertemplate": "%{y}<br>%{x:,} " + what + "<extra></extra>",
    }
    return _figure(
        [bar], {"yaxis": {"automargin": True}}, ranked_margins(labels, counts), height=max(200, 32 * len(labels) + 40)
    )


def actions_figure(stats: dict[str, Any]) -> Figure:
    """Top actions as horizontal bars."""
    ranked = top_actions(stats)
    return _ranked_bar([a for a, _ in ranked], [n for _, n in ranked], "#3e63dd", "events")


def actors_figure(stats: dict[str, Any]) -> Figure:
    """Top actors (by email when known) as horizontal bars."""
    actors = stats["top_actors"]
    labels = [a["actor_email"] or a["actor_id"] for a in actors]
    return _ranked_bar(labels, [a["count"] for a in actors], "#0d74ce", "events")


def results_figure(stats: dict[str, Any]) -> Figure:
    """The results breakdown as a donut."""
    order = result_order(stats)
    donut = {
        "type": "pie",
        "labels": order,
        "values": [stats["by_result"][r] for r in order],
        "hole": 0.55,
        "sort": False,
        "marker": {"colors": [result_color(r) for r in order]},
        "textinfo": "percent",
        "textposition": "inside",
        "insidetextorientation": "horizontal",
        "hovertemplate": "%{label}: %{value:,} (%{percent})<extra></extra>",
    }
    margin = _margin() | {"r": legend_right(order)}  # (nothing else sticks out: the percentages are inside)
    figure = _figure([donut], {"uniformtext": {"minsize": 10, "mode": "hide"}}, margin, legend=True)
    figure["layout"]["legend"] = {"orientation": "v", "x": LEGEND_RIGHT, "y": 0.5}
    return figure


def day_window(day: str, bucket: str = "day", zone: tzinfo = UTC) -> dict[str, str]:
    """The URL parameters of the bucket (hour, day, week, month or year of `/stats` in `zone`) starting at `day`.

    An hour comes as the bucket's ISO start (with its offset) or as Plotly reports a clicked time
    ("2026-04-30 13:00", wall-clock time of `zone`). The bounds are instants with the zone's offset.
    """
    if bucket == "hour":
        hour = datetime.fromisoformat(day.strip().replace(" ", "T"))
        start = local_hour(hour.replace(tzinfo=zone) if hour.tzinfo is None else hour, zone)
        end = local_hour(start.astimezone(UTC) + timedelta(hours=1), zone)
        return {"start_time": start.isoformat(), "end_time": end.isoformat()}
    first = date.fromisoformat(day[:10])
    following = next_bucket(first, bucket)
    return {
        "start_time": _midnight(first, zone).isoformat(),
        "end_time": _midnight(following, zone).isoformat() if following else "",
    }


def _midnight(day: date, zone: tzinfo = UTC) -> datetime:
    """The first instant of `day` in `zone` (when the clocks skip midnight, the instant they skip it)."""
    return datetime.combine(day, time(), zone)


def partial_ends(stats: dict[str, Any], filters: AuditFilters, now: datetime, zone: tzinfo = UTC) -> tuple[bool, bool]:
    """Whether the first and the last bucket (calendar ones of `zone`) cover only part of their time.

    The first is partial when the window starts after the bucket does; the last when the window
    (or the present, for a window still running) ends before the bucket does.
    """
    buckets = stats["by_day"]
    if not buckets:
        return False, False
    following: datetime | None
    if stats["bucket"] == "hour":
        first = datetime.fromisoformat(day_window(buckets[0]["date"], "hour", zone)["start_time"])
        following = datetime.fromisoformat(day_window(buckets[-1]["date"], "hour", zone)["end_time"])
    else:
        first = _midnight(date.fromisoformat(buckets[0]["date"][:10]), zone)
        after = next_bucket(date.fromisoformat(buckets[-1]["date"][:10]), stats["bucket"])
        following = _midnight(after, zone) if after is not None else None
    end = min(filters.end_time, now) if filters.end_time else now
    try:
        return (
            filters.start_time is not None and filters.start_time > first,
            following is not None and end < following,
        )
    except OverflowError:  # a bucket at the very first or last representable day
        return False, False


def partial_note(partial: tuple[bool, bool], bucket: str) -> str:
    """The sentence under the time charts naming the partial buckets (empty when none is)."""
    which = [side for side, cut in zip(("first", "last"), partial, strict=True) if cut]
    if not which:
        return ""
    if len(which) == 2:
        return f"The first and the last {bucket} are partial (drawn lighter): the window cuts them."
    return f"The {which[0]} {bucket} is partial (drawn lighter): the window cuts it."


def previous_window(filters: AuditFilters, now: datetime) -> AuditFilters | None:
    """The period of the same length just before the window (None for a window without a start)."""
    if filters.start_time is None:
        return None
    end = filters.end_time or now
    return filters.replace(start_time=filters.start_time - (end - filters.start_time), end_time=filters.start_time)


def _change(now: float, before: float) -> str:
    if not before:
        return "new" if now else "no change"
    change = 100 * (now - before) / before
    return "no change" if abs(change) < 0.05 else f"{change:+.1f}%"


def compared(stats: dict[str, Any], earlier: dict[str, Any]) -> dict[str, str]:
    """Each headline figure of the previous period, with the change to it, as KPI captions."""
    rate, rate_before = 100 * stats["failure_rate"], 100 * earlier["failure_rate"]
    return {
        "Events": f"Previous period: {earlier['total']:,} ({_change(stats['total'], earlier['total'])})",
        "Distinct actors": (
            f"Previous period: {earlier['unique_actors']:,}"
            f" ({_change(stats['unique_actors'], earlier['unique_actors'])})"
        ),
        "Not successful": f"Previous period: {rate_before:.1f}% ({rate - rate_before:+.1f} points)",
        "Top action": "Previous period: " + (top_actions(earlier)[0][0] if earlier["by_action"] else "—"),
    }


def chart_tables(stats: dict[str, Any]) -> dict[str, list[list[str]]]:
    """Each chart's numbers as rows of text, for the keyboard and screen-reader "Show as table"."""
    rates = failure_rates(stats)
    return {
        "daily": [[d["date"], f"{d['count']:,}"] for d in stats["by_day"]],
        "actions": [[action, f"{n:,}"] for action, n in top_actions(stats)],
        "results": [[result, f"{stats['by_result'][result]:,}"] for result in result_order(stats)],
        "actors": [[a["actor_email"] or a["actor_id"], f"{a['count']:,}"] for a in stats["top_actors"]],
        "failures": [
            [d["date"], "—" if rate is None else f"{rate:.2f}%"] for d, rate in zip(stats["by_day"], rates, strict=True)
        ],
    }
