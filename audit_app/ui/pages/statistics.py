"""The statistics page: activity charts over tenant, partner and time window; clicks open events."""

# State attributes are Vars when a page is built, but mypy sees their Python types.
# mypy: disable-error-code="index,operator,attr-defined,arg-type"

from __future__ import annotations

import plotly.graph_objects as go
import reflex as rx
from reflex_components_core.base.fragment import Fragment

from audit_app.ui.components.fields import picker, search_field, time_window
from audit_app.ui.components.layout import error_callout, page_shell, page_title
from audit_app.ui.components.views_menu import views_menu
from audit_app.ui.state.stats import StatsState


def stats_filters() -> rx.Component:
    """Tenant, partner and time window, plus removable filters carried over from the events page."""
    form = StatsState.form
    version = StatsState.form_version
    return rx.form(
        rx.el.div(
            search_field(form["q"], version),
            picker("Tenant", "tenant_id", form["tenant_id"], StatsState.tenants, version, "Any tenant"),
            picker("Partner", "partner_id", form["partner_id"], StatsState.partners, version, "Any partner"),
            *time_window(StatsState, "stats-range"),
            rx.el.div(rx.button(rx.icon("filter", size=14), "Apply", type="submit", size="2"), class_name="field end"),
            class_name="filter-grid stats",
        ),
        rx.cond(
            StatsState.carried.length() > 0,
            rx.hstack(
                rx.text("Also filtered on", size="1", color_scheme="gray"),
                rx.foreach(
                    StatsState.carried,
                    lambda item: rx.badge(
                        item["label"],
                        ": ",
                        item["value"],
                        rx.el.button(
                            rx.icon("x", size=12),
                            type="button",
                            aria_label="Remove filter " + item["label"],
                            on_click=StatsState.drop_carried(item["name"]),
                            class_name="chip-remove",
                        ),
                        variant="surface",
                        class_name="mono",
                    ),
                ),
                spacing="2",
                align="center",
                padding_top="10px",
                wrap="wrap",
            ),
        ),
        rx.hstack(
            toggle(
                "stats-access",
                "Include console access records (audit.view, audit.export, audit.verify)",
                StatsState.include_access,
                StatsState.set_include_access,
            ),
            toggle("stats-compare", "Compare with previous period", StatsState.compare, StatsState.set_compare),
            spacing="5",
            wrap="wrap",
            padding_top="10px",
        ),
        rx.cond(StatsState.compare_note != "", rx.text(StatsState.compare_note, size="1", color_scheme="gray")),
        on_submit=StatsState.apply,
        aria_label="Statistics filters",
        class_name="panel",
    )


def toggle(control_id: str, label: str, checked: rx.Var[bool], on_change: rx.EventHandler) -> rx.Component:
    """A labelled checkbox that changes the view at once (it is kept in the URL)."""
    return rx.el.label(
        rx.el.input(
            type="checkbox", id=control_id, checked=checked, on_change=on_change(~checked), class_name="toggle-box"
        ),
        label,
        html_for=control_id,
        class_name="toggle",
    )


def kpi(label: str, value: rx.Var | str, icon: str) -> rx.Component:
    """One headline number (and, when comparing, the previous period's)."""
    return rx.box(
        rx.hstack(rx.icon(icon, size=16, color="var(--gray-10)"), rx.text(label, size="2", color_scheme="gray")),
        rx.text(value, size="6", weight="bold", class_name="kpi-value", aria_label=label),
        rx.cond(
            StatsState.previous.contains(label),
            rx.text(StatsState.previous[label], size="1", color_scheme="gray", aria_label=label + ", previous period"),
        ),
        class_name="panel kpi",
    )


PLOTLY_BUNDLE = "plotly.js-basic-dist-min"
"""The Plotly bundle the charts load (rx.plotly.basic's: bar, scatter and pie)."""


class PlotlyPreload(Fragment):
    """Starts loading Plotly once the page is hydrated, while the server computes the figures (the
    charts themselves import it only when mounted, once the figures have come).

    Not earlier: run while React hydrates the page, Plotly's evaluation (a long task) delayed the
    end of hydration, and with it the page's first event, which asks the server for the figures."""

    def add_imports(self) -> dict[str, list[str]]:
        """The hook's import."""
        return {"react": ["useEffect"]}

    def add_hooks(self) -> list[str]:
        """A mount effect importing the bundle (the browser only: effects never run while the build
        prerenders the page); the charts' own import then finds it loaded."""
        return [f"useEffect(() => {{ import('{PLOTLY_BUNDLE}'); }}, []);"]


def chart_card(
    title: str | rx.Var[str], hint: str, chart: str, figure: rx.Var, wide: bool = False, note: rx.Var[str] | None = None
) -> rx.Component:
    """A titled chart that filters the events page on click."""
    return rx.el.section(
        rx.hstack(
            rx.heading(title, size="3", as_="h2"),
            rx.spacer(),
            rx.text(hint, size="1", color_scheme="gray"),
            align="center",
        ),
        # Plotly's basic bundle (bar, scatter, pie: every trace these charts draw) is a quarter of
        # the full one the browser would otherwise download, parse and run before the first chart
        # mounted once there are figures: an empty chart drawn on the first paint was drawn again
        # when the form arrived, then with the figures (three Plotly draws of five charts)
        rx.cond(
            StatsState.drawn,
            rx.plotly.basic(
                data=figure.to(go.Figure),  # the state keeps the figure as Plotly's JSON
                on_click=lambda points: StatsState.open_events(chart, points),
                config={"displayModeBar": False, "responsive": True},
                use_resize_handler=True,
                width="100%",
            ),
            rx.el.div(class_name="chart-placeholder"),
        ),
        rx.cond(note != "", rx.text(note, size="1", color_scheme="gray")) if note is not None else rx.fragment(),
        data_table(title, chart),
        aria_label=title,
        class_name="panel chart-card wide" if wide else "panel chart-card",
    )


COLUMNS = {
    "daily": ("Period starting", "Events"),
    "actions": ("Action", "Events"),
    "results": ("Result", "Events"),
    "actors": ("Actor", "Events"),
    "failures": ("Period starting", "Not successful"),
}


def data_table(title: str | rx.Var[str], chart: str) -> rx.Component:
    """The chart's numbers behind a "Show as table" disclosure (keyboard and screen readers)."""
    first, second = COLUMNS[chart]
    period = first + " (" + StatsState.series_zone + ")" if chart in ("daily", "failures") else first
    return rx.el.details(
        rx.el.summary("Show as table", class_name="show-table"),
        rx.el.table(
            rx.el.caption(title, " (data)"),
            rx.el.thead(rx.el.tr(rx.el.th(period, scope="col"), rx.el.th(second, scope="col"))),
            rx.el.tbody(
                rx.foreach(
                    StatsState.tables[chart],
                    lambda row: rx.el.tr(rx.el.td(row[0]), rx.el.td(row[1], class_name="num")),
                )
            ),
            class_name="data-table",
        ),
    )


def statistics_page() -> rx.Component:
    """The /statistics route."""
    return page_shell(
        "statistics",
        rx.vstack(
            page_title("Statistics", "Activity in your scope. Click a bar or slice to see those events.", views_menu()),
            stats_filters(),
            PlotlyPreload.create(),
            rx.cond(StatsState.error != "", error_callout(StatsState.error)),
            rx.box(
                rx.cond(StatsState.loading, rx.box(class_name="loading-bar", role="progressbar", aria_label="Loading")),
                rx.cond(
                    ~StatsState.loading
                    & (StatsState.total == 0)
                    & (StatsState.error == "")
                    & (StatsState.field_errors.length() == 0),
                    rx.callout(
                        "No events in this window and scope. Widen the time range or pick another tenant.",
                        icon="search-x",
                        color_scheme="gray",
                        role="status",
                        margin_bottom="14px",
                    ),
                ),
                rx.el.div(
                    kpi("Events", StatsState.total_text, "activity"),
                    kpi("Distinct actors", StatsState.unique_actors, "users"),
                    kpi("Not successful", StatsState.failure_rate, "triangle-alert"),
                    kpi("Top action", StatsState.top_action, "zap"),
                    class_name="kpi-grid",
                ),
                rx.el.div(
                    chart_card(
                        "Events per " + StatsState.bucket,
                        "stacked by result",
                        "daily",
                        StatsState.daily,
                        wide=True,
                        note=StatsState.partial_note,
                    ),
                    chart_card("Top actions", "click to filter", "actions", StatsState.actions),
                    chart_card("Results", "click a slice", "results", StatsState.results),
                    chart_card("Top actors", "click to filter", "actors", StatsState.actors),
                    chart_card(
                        "Failure rate per " + StatsState.bucket,
                        "failure, denied and error",
                        "failures",
                        StatsState.failures,
                    ),
                    class_name=rx.cond(StatsState.loading, "chart-grid is-loading", "chart-grid"),
                ),
                position="relative",
                width="100%",
                display=rx.cond(StatsState.error == "", "block", "none"),  # nothing of a failed load
            ),
            spacing="4",
            width="100%",
            align="stretch",
        ),
    )
