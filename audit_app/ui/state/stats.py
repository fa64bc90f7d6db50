"""The statistics page: compute_stats over the URL's filters, as Plotly figures that filter on click."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import plotly.graph_objects as go
import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from audit_app.audit.scope import Scope
from audit_app.audit.stats import compute_stats
from audit_app.auth import ForbiddenError, Principal
from audit_app.ui.state import charts
from audit_app.ui.state.auth import current_principal
from audit_app.ui.state.session import in_thread
from audit_app.ui.state.url_filters import FORM_FIELDS, PRESETS, TEXT_FILTERS, FilterError, ViewQuery, input_time

logger = logging.getLogger(__name__)
STATS_FORM = ("tenant_id", "partner_id", "start_time", "end_time")


class StatsState(rx.State):
    """Filters (tenant, partner, time window, plus any carried in the URL) and the figures."""

    form: dict[str, str] = dict.fromkeys(STATS_FORM, "")
    form_version: int = 0
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
    daily: go.Figure = go.Figure()
    failures: go.Figure = go.Figure()
    actions: go.Figure = go.Figure()
    results: go.Figure = go.Figure()
    actors: go.Figure = go.Figure()
    _view: ViewQuery | None = None
    _labels: dict[str, list[str]] = {}

    async def _principal(self) -> Principal | EventSpec:
        return await current_principal(self)

    @rx.event
    async def load(self) -> AsyncIterator[Any]:
        """on_load: read the filters from the URL and compute the statistics off the event loop."""
        principal = await self._principal()
        if not isinstance(principal, Principal):
            yield principal
            return
        params = dict(self.router.url.query_parameters)
        if not any(key in params for key in ("range", "start_time", "end_time")):
            params["range"] = "30d"
        view = ViewQuery.from_params(params)
        self._view = view
        self.preset = view.preset
        self.form_version += 1
        self.form = {name: view.values[name] for name in STATS_FORM}
        for name in ("start_time", "end_time"):
            self.form[name] = input_time(view.values[name]) if view.preset == "custom" else ""
        self.carried = [
            {"name": name, "value": view.values[name]}
            for name in TEXT_FILTERS
            if name not in STATS_FORM and view.values[name]
        ]
        self.loading, self.error = True, ""
        yield

        def work(session: Session) -> tuple[list[str], list[str], dict[str, Any]]:
            filters = view.filters(datetime.now(UTC))
            tenants = Scope.of(principal).tenant_ids(session)
            return tenants, Scope.of(principal).partner_ids(session), compute_stats(session, principal, filters)

        try:
            self.tenants, self.partners, stats = await in_thread(work)
        except (FilterError, ForbiddenError) as exc:
            self.error = str(exc)
            self.total = 0
            self.loading = False
            return
        except SQLAlchemyError:
            logger.exception("Computing statistics failed")
            self.error = "The statistics could not be computed (the database did not answer). Try again in a moment."
            self.loading = False
            return
        self._show(stats)
        self.loading = False

    def _show(self, stats: dict[str, Any]) -> None:
        self.total = stats["total"]
        self.total_text = f"{stats['total']:,}"
        self.unique_actors = f"{stats['unique_actors']:,}"
        self.failure_rate = f"{100 * stats['failure_rate']:.1f}%"
        ranked = charts.top_actions(stats)
        self.top_action = ranked[0][0] if ranked else "—"
        self.bucket = stats["bucket"]
        self.daily = charts.daily_figure(stats)
        self.failures = charts.failure_figure(stats)
        self.actions = charts.actions_figure(stats)
        self.results = charts.results_figure(stats)
        self.actors = charts.actors_figure(stats)
        self._labels = {
            "daily": charts.result_order(stats),
            "results": charts.result_order(stats),
            "actions": [a for a, _ in ranked][::-1],
            "actors": [a["actor_id"] for a in stats["top_actors"]][::-1],
            "days": [d["date"] for d in stats["by_day"]],
        }

    def _current(self) -> ViewQuery:
        view = self._view or ViewQuery()
        values = dict(view.values)
        values.update({name: self.form.get(name, "").strip() for name in STATS_FORM})
        return ViewQuery(values=values, preset=self.preset, page=1, per_page=view.per_page)

    @rx.event
    def apply(self, form_data: dict[str, Any] | None = None) -> EventSpec:
        """Put the filters into the URL; the statistics follow from the navigation."""
        data = form_data or {}
        for name in STATS_FORM:
            if name in data:
                self.form[name] = str(data[name] or "")[:320]
        chosen = str(data.get("range", self.preset) or "")
        custom = self.form.get("start_time") or self.form.get("end_time")
        self.preset = chosen if chosen in PRESETS else ("custom" if custom else "")
        view = self._current()
        params = view.to_params()
        if not self.preset:
            params["range"] = "all"
        return rx.redirect("/statistics?" + urlencode(params))

    @rx.event
    def drop_carried(self, name: str) -> EventSpec:
        """Remove a filter that came along in the URL (e.g. from the events page)."""
        view = self._current()
        if name in FORM_FIELDS:
            view.values[name] = ""
        return rx.redirect("/statistics?" + view.query_string())

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
            day = str(point.get("x") or "")
            if not day:
                return None
            view.values.update(charts.day_window(day, self.bucket))
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
