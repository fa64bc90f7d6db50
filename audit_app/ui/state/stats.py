"""The statistics page: compute_stats over the URL's filters, as Plotly figures that filter on click."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urlencode

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.exc import SQLAlchemyError

from audit_app.audit.filters import AuditFilters
from audit_app.audit.scope import Scope
from audit_app.audit.stats import ACCESS_ACTIONS, compute_stats
from audit_app.auth import ForbiddenError, Principal
from audit_app.ui import charts
from audit_app.ui.session import in_thread, signed_in
from audit_app.ui.state.filter_form import FilterFormState
from audit_app.ui.state.zone import zone_named, zone_of
from audit_app.ui.url_filters import FILTER_LABELS, FORM_FIELDS, TEXT_FILTERS, FilterError, ViewQuery, stats_params

logger = logging.getLogger(__name__)
STATS_FORM = ("q", "tenant_id", "partner_id", "start_time", "end_time")


async def _compute(
    principal: Principal, view: ViewQuery, now: datetime, excluded: frozenset[str], zone: tzinfo, *, compare: bool
) -> tuple[AuditFilters, dict[str, Any], dict[str, Any] | None]:
    """The view's filters, its statistics and (`compare`) the previous period's, computed side by side.

    Raises FilterError, ForbiddenError or SQLAlchemyError as the computation does.
    """
    filters = view.filters(now)
    before = charts.previous_window(filters, now) if compare else None

    async def stats_of(window: AuditFilters) -> dict[str, Any]:
        return await in_thread(lambda s: compute_stats(s, principal, window, exclude_actions=excluded, zone=zone))

    if before is None:
        return filters, await stats_of(filters), None
    stats, earlier = await asyncio.gather(stats_of(filters), stats_of(before))
    return filters, stats, earlier


class StatsState(FilterFormState, rx.State):
    """Filters (tenant, partner, time window, plus any carried in the URL) and the figures."""

    form: dict[str, str] = dict.fromkeys(STATS_FORM, "")
    preset: str = "30d"
    carried: list[dict[str, str]] = []
    tenants: list[str] = []
    partners: list[str] = []
    loading: bool = True
    error: str = ""
    total: int = 0
    total_text: str = "0"
    unique_actors: str = "0"
    failure_rate: str = "0%"
    top_action: str = "—"
    bucket: str = "day"  # what one bar of the time charts counts: day, week, month or year
    series_zone: str = "UTC"  # the zone whose calendar days (weeks, ...) the time charts count
    # the charts as Plotly's JSON (charts.Figure), not go.Figure: cheap to build, copy, save and send
    daily: charts.Figure = charts.EMPTY_FIGURE
    failures: charts.Figure = charts.EMPTY_FIGURE
    actions: charts.Figure = charts.EMPTY_FIGURE
    results: charts.Figure = charts.EMPTY_FIGURE
    actors: charts.Figure = charts.EMPTY_FIGURE
    drawn: bool = False  # the figures were computed once: the charts are mounted (and stay, redrawn)
    include_access: bool = False  # ?access=include: the console's own access records count too
    compare: bool = False  # ?compare=1: each figure next to the previous period of the same length
    compare_note: str = ""
    previous: dict[str, str] = {}
    partial_note: str = ""
    tables: dict[str, list[list[str]]] = {}  # each chart's numbers, for "Show as table"
    _view: ViewQuery | None = None
    _labels: dict[str, list[str]] = {}
    _pickers_for: str = ""

    def _form_fields(self) -> tuple[str, ...]:
        return STATS_FORM

    def _base_view(self) -> ViewQuery:
        return self._view or ViewQuery()

    def _go(self, view: ViewQuery, *, include_access: bool | None = None, compare: bool | None = None) -> EventSpec:
        params = view.to_params()
        if not view.preset:
            params["range"] = "all"  # "any time" (no range at all means the default, 30 days)
        if self.include_access if include_access is None else include_access:
            params["access"] = "include"
        if self.compare if compare is None else compare:
            params["compare"] = "1"
        return rx.redirect("/statistics?" + urlencode(params))

    @rx.event
    def set_include_access(self, include: bool) -> EventSpec:
        """Count the console's own access records (audit.view, audit.export, audit.verify) or not."""
        return self._go(self._base_view(), include_access=bool(include))

    @rx.event
    def set_compare(self, compare: bool) -> EventSpec:
        """Show each figure next to the previous period of the same length, or not."""
        return self._go(self._base_view(), compare=bool(compare))

    @rx.event
    @signed_in
    async def load(self, principal: Principal) -> AsyncIterator[Any]:
        """on_load: read the filters from the URL and compute the statistics off the event loop."""
        params = stats_params(self._url_params())
        view = ViewQuery.from_params(params)
        self._view = view
        self.include_access = params.get("access") == "include"
        self.compare = params.get("compare") == "1"
        excluded = frozenset() if self.include_access else ACCESS_ACTIONS
        scope_key = f"{principal.role}:{principal.tenant_id}:{principal.partner_id}"
        self.loading, self.error = True, ""
        zone = await zone_of(self)
        now = datetime.now(UTC)
        computing = asyncio.ensure_future(_compute(principal, view, now, excluded, zone, compare=self.compare))
        try:
            try:
                if self._pickers_for != scope_key:
                    # before the form is filled: a select mounted without its option shows "Any ..."
                    self.tenants, self.partners = await in_thread(
                        lambda s: (Scope.of(principal).tenant_ids(s), Scope.of(principal).partner_ids(s))
                    )
                    self._pickers_for = scope_key
            except SQLAlchemyError:
                logger.exception("Loading the picker values failed")
            self._show_view(view, zone)
            self.carried = [
                {"name": name, "label": FILTER_LABELS[name], "value": view.values[name]}
                for name in TEXT_FILTERS
                if name not in STATS_FORM and view.values[name]
            ]
            yield  # the filled form: the browser renders it while the statistics are computed
            filters, stats, earlier = await computing
        except FilterError as exc:
            if exc.field:
                self.field_errors = {exc.field: str(exc)}
            else:
                self.error = str(exc)
            self.total = 0
            self.loading = False
            return
        except ForbiddenError as exc:
            self.error = str(exc)
            self.total = 0
            self.loading = False
            return
        except SQLAlchemyError:
            logger.exception("Computing statistics failed")
            self.error = "The statistics could not be computed (the database did not answer). Try again in a moment."
            self.loading = False
            return
        finally:
            computing.cancel()  # a superseded load (a newer navigation): nothing waits for its figures
        partial = charts.partial_ends(stats, filters, now, zone)
        self._show(stats, partial)
        self.partial_note = charts.partial_note(partial, stats["bucket"])
        self.previous = charts.compared(stats, earlier) if earlier is not None else {}
        self.compare_note = (
            ""
            if not self.compare or earlier is not None
            else "Comparing needs a window with a start: pick a time range or a From date."
        )
        self.loading = False

    def _show(self, stats: dict[str, Any], partial: tuple[bool, bool] = (False, False)) -> None:
        self.total = stats["total"]
        self.total_text = f"{stats['total']:,}"
        self.unique_actors = f"{stats['unique_actors']:,}"
        self.failure_rate = f"{100 * stats['failure_rate']:.1f}%"
        ranked = charts.top_actions(stats)
        self.top_action = ranked[0][0] if ranked else "—"
        self.bucket = stats["bucket"]
        self.series_zone = stats["tz"]
        self.daily = charts.daily_figure(stats, partial)
        self.failures = charts.failure_figure(stats)
        self.actions = charts.actions_figure(stats)
        self.results = charts.results_figure(stats)
        self.actors = charts.actors_figure(stats)
        self.tables = charts.chart_tables(stats)
        self.drawn = True
        self._labels = {
            "daily": charts.result_order(stats),
            "results": charts.result_order(stats),
            "actions": [a for a, _ in ranked][::-1],
            "actors": [a["actor_id"] for a in stats["top_actors"]][::-1],
            "days": [d["date"] for d in stats["by_day"]],
        }

    @rx.event
    def drop_carried(self, name: str) -> EventSpec:
        """Remove a filter that came along in the URL (e.g. from the events page)."""
        view = self._base_view()
        view = ViewQuery(values=dict(view.values), preset=view.preset)
        if name in FORM_FIELDS:
            view.values[name] = ""
        return self._go(view)

    @rx.event
    def open_events(self, chart: str, points: list[dict[str, Any]]) -> EventSpec | None:
        """A click on a bar or slice: the events page filtered on what was clicked."""
        if not points or self._view is None:
            return None
        point = points[0]
        view = ViewQuery(values=dict(self._view.values), preset=self._view.preset)
        index = point.get("pointNumber")
        index = index if isinstance(index, int) else point.get("pointIndex")
        labels = self._labels.get(chart, [])
        if chart in ("daily", "failures"):
            days = self._labels.get("days", [])
            # the bucket by its position (an hour's wall-clock time can repeat when the clocks go back)
            day = days[index] if isinstance(index, int) and 0 <= index < len(days) else str(point.get("x") or "")
            if not day:
                return None
            view.values.update(charts.day_window(day, self.bucket, zone_named(self.series_zone)))
            view.preset = "custom"
            curve = point.get("curveNumber")
            if chart == "daily" and isinstance(curve, int) and curve < len(labels):
                view.values["result"] = labels[curve]
        elif isinstance(index, int) and 0 <= index < len(labels):
            name = {"actions": "action", "actors": "actor_id", "results": "result"}[chart]
            view.values[name] = labels[index]
        else:
            return None
        return rx.redirect("/events?" + view.query_string())
