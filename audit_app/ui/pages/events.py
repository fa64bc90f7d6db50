"""The events page: filters, the results table with paging, the detail drawer, the Export menu."""

# State attributes are Vars when a page is built, but mypy sees their Python types.
# mypy: disable-error-code="index,operator,attr-defined,arg-type"

from __future__ import annotations

import reflex as rx

from audit_app.ui.components.drawer import event_drawer
from audit_app.ui.components.export_progress import export_progress
from audit_app.ui.components.fields import picker, search_field, text_field, time_window
from audit_app.ui.components.layout import error_callout, page_shell, page_title, result_badge
from audit_app.ui.components.views_menu import views_menu
from audit_app.ui.state.drawer import DrawerState
from audit_app.ui.state.events import COLUMNS, EventsState
from audit_app.ui.state.zone import ZoneState
from audit_app.ui.url_filters import PAGE_SIZES


def filter_form() -> rx.Component:
    """Every documented filter, labelled, with pickers filled from the caller's scope."""
    form = EventsState.form
    options = EventsState.options
    version = EventsState.form_version
    return rx.form(
        rx.el.div(
            search_field(form["q"], version),
            picker("Tenant", "tenant_id", form["tenant_id"], options["tenant_id"], version, "Any tenant"),
            picker("Partner", "partner_id", form["partner_id"], options["partner_id"], version, "Any partner"),
            text_field("Actor ID", "actor_id", form["actor_id"], version, "e.g. usr_4f2a"),
            text_field("Actor email", "actor_email", form["actor_email"], version, "name@example.com"),
            picker("Action", "action", form["action"], options["action"], version, "Any action"),
            picker(
                "Resource type",
                "resource_type",
                form["resource_type"],
                options["resource_type"],
                version,
                "Any resource type",
            ),
            text_field("Resource ID", "resource_id", form["resource_id"], version),
            picker("Result", "result", form["result"], options["result"], version, "Any result"),
            *time_window(EventsState, "filter-range"),
            text_field("IP address", "ip_address", form["ip_address"], version, "203.0.113.7"),
            text_field("Request ID", "request_id", form["request_id"], version),
            text_field("Not action", "not_action", form["not_action"], version, "e.g. audit.view"),
            text_field("Not result", "not_result", form["not_result"], version, "e.g. success"),
            text_field("Not actor ID", "not_actor_id", form["not_actor_id"], version, "e.g. svc_*"),
            rx.el.div(
                rx.hstack(
                    rx.button(rx.icon("filter", size=14), "Apply", type="submit", size="2"),
                    rx.button(
                        rx.icon("rotate-ccw", size=14),
                        "Reset",
                        type="button",
                        variant="soft",
                        color_scheme="gray",
                        size="2",
                        on_click=EventsState.reset_filters,
                    ),
                    spacing="2",
                    align="center",
                ),
                rx.cond(
                    EventsState.active_count > 0,
                    rx.text(
                        EventsState.active_count,
                        rx.cond(EventsState.active_count == 1, " filter", " filters"),
                        " active",
                        size="1",
                        color_scheme="gray",
                        class_name="active-count",
                    ),
                ),
                class_name="field end",
            ),
            class_name="filter-grid",
        ),
        on_submit=EventsState.apply,
        aria_label="Filters",
        id="filter-panel",
        custom_attrs={"data-open": rx.cond(EventsState.filters_open, "true", "false")},
        class_name="panel filters",
    )


def filters_button() -> rx.Component:
    """Narrow screens: the filter panel folds away behind this button, which counts the active filters."""
    return rx.el.button(
        rx.icon("sliders-horizontal", size=14),
        "Filters (",
        EventsState.active_count,
        ")",
        type="button",
        aria_expanded=rx.cond(EventsState.filters_open, "true", "false"),
        aria_controls="filter-panel",
        on_click=EventsState.toggle_filters,
        class_name="filters-toggle",
    )


def value_button(kind: str, name: str, label: rx.Var[str], value: rx.Var[str], mono: bool = False) -> rx.Component:
    """A table value that, clicked, filters on itself (and does not open the row)."""
    return rx.el.button(
        label,
        type="button",
        on_click=EventsState.filter_on(name, value).stop_propagation,
        aria_label="Filter by " + kind + " " + label,
        title="Filter on this value",
        class_name="cell-filter mono" if mono else "cell-filter",
    )


def event_row(row: rx.Var[dict[str, str]]) -> rx.Component:
    """One event in the table; clicking the row opens the drawer. Cells are classed `col-<key>` (column chooser)."""
    return rx.table.row(
        rx.table.cell(
            rx.el.time(
                row["time"],
                title=row["ago"] + " (" + row["utc"] + ")",
                custom_attrs={"data-ago": row["ago"]},  # shown under the time (CSS), outside its text
                class_name="mono nowrap event-time",
            )
        ),
        rx.table.cell(value_button("tenant", "tenant_id", row["tenant_id"], row["tenant_id"]), class_name="col-tenant"),
        rx.table.cell(value_button("actor", "actor_id", row["actor"], row["actor_id"]), class_name="col-actor"),
        rx.table.cell(
            value_button("action", "action", row["action"], row["action"], mono=True), class_name="col-action"
        ),
        rx.table.cell(
            rx.cond(
                row["resource_id"] != "",
                value_button("resource", "resource_id", row["resource"], row["resource_id"], mono=True),
                rx.text(row["resource"], size="2", color_scheme="gray"),
            ),
            class_name="col-resource",
        ),
        rx.table.cell(result_badge(row["result"]), class_name="col-result"),
        rx.table.cell(
            value_button("IP address", "ip_address", row["ip_address"], row["ip_address"], mono=True),
            class_name="col-ip",
        ),
        rx.table.cell(
            rx.icon_button(
                rx.icon("panel-right-open", size=16),
                variant="ghost",
                color_scheme="gray",
                size="1",
                aria_label="Open event details, " + row["time"] + " " + row["action"],
                on_click=DrawerState.open_event(row["id"]).stop_propagation,
            ),
            text_align="right",
        ),
        on_click=DrawerState.open_event(row["id"]),
        class_name="event-row",
        data_event_id=row["id"],
    )


def widen_item(item: rx.Var[dict[str, str]]) -> rx.Component:
    """One active filter of an empty result: what it is, how it matches, and the ways to drop it."""
    return rx.el.li(
        rx.text(
            rx.el.strong(item["label"]),
            ": ",
            rx.code(item["value"], variant="ghost"),
            rx.cond(item["match"] != "", rx.text.span(" (", item["match"], ")", color_scheme="gray")),
            size="2",
        ),
        rx.hstack(
            rx.button(
                rx.icon("x", size=12),
                "Remove",
                size="1",
                variant="soft",
                aria_label="Remove filter " + item["label"],
                on_click=EventsState.drop_filter(item["name"]),
            ),
            rx.cond(
                item["term"] != "",
                rx.button(
                    rx.icon("text-search", size=12),
                    "Search as text instead",
                    size="1",
                    variant="soft",
                    color_scheme="gray",
                    aria_label="Search " + item["label"] + " as text instead",
                    on_click=EventsState.search_as_text(item["name"]),
                ),
            ),
            spacing="2",
        ),
        class_name="widen-item",
    )


def empty_state() -> rx.Component:
    """No events: which filters are exact, and a button per filter to drop it or search it as text."""
    return rx.center(
        rx.vstack(
            rx.icon("search-x", size=28, color="var(--gray-9)"),
            rx.text("No events match these filters.", weight="medium"),
            rx.cond(
                EventsState.widen.length() > 0,
                rx.fragment(
                    rx.text(
                        "Filters compare whole values (a trailing * matches a prefix); "
                        "Search finds text anywhere, in any case. Widen the view:",
                        size="2",
                        color_scheme="gray",
                        text_align="center",
                    ),
                    rx.el.ul(
                        rx.foreach(EventsState.widen, widen_item), class_name="widen", aria_label="Active filters"
                    ),
                ),
                rx.text("There are no events in your scope yet.", size="2", color_scheme="gray"),
            ),
            align="center",
            spacing="2",
        ),
        padding="32px",
        role="status",
        class_name="empty-state",
    )


def time_header() -> rx.Component:
    """The Time header: a button sorting by time either way (aria-sort says which)."""
    ascending = EventsState.sort == "asc"
    return rx.table.column_header_cell(
        rx.el.button(
            "Time (",
            ZoneState.zone_label,
            ")",
            rx.cond(ascending, rx.icon("arrow-up", size=13), rx.icon("arrow-down", size=13)),
            type="button",
            title=rx.cond(ascending, "Oldest first: show newest first", "Newest first: show oldest first"),
            on_click=EventsState.toggle_sort,
            class_name="time-sort",
        ),
        aria_sort=rx.cond(ascending, "ascending", "descending"),
    )


def column_chooser() -> rx.Component:
    """Which columns the table shows (remembered by this browser)."""
    return rx.popover.root(
        rx.popover.trigger(
            rx.button(rx.icon("columns-3", size=14), "Columns", variant="outline", size="2"),
        ),
        rx.popover.content(
            rx.el.fieldset(
                rx.el.legend("Show columns", class_name="field-label"),
                *[
                    rx.checkbox(
                        label,
                        checked=~EventsState.hidden.contains(key),
                        on_change=lambda checked, key=key: EventsState.show_column(key, checked),
                        size="2",
                    )
                    for key, label in COLUMNS
                ],
                class_name="column-chooser",
            ),
            size="1",
        ),
    )


def live_tail_switch() -> rx.Component:
    """The "Live tail" switch (first page, newest first only)."""
    return rx.el.label(
        rx.switch(
            checked=EventsState.tail_on,
            on_change=EventsState.toggle_tail,
            disabled=(EventsState.page != 1) | (EventsState.sort != "desc"),
            size="1",
        ),
        rx.text("Live tail", size="2"),
        title="Show new matching events as they arrive (first page, newest first)",
        class_name="toggle",
    )


def new_events_button() -> rx.Component:
    """While the tail is paused (scrolled down, an event open): how many new events wait, and a way to show them."""
    return rx.cond(
        EventsState.tail_on & (EventsState.tail_pending > 0),
        rx.button(
            rx.icon("arrow-up", size=14),
            EventsState.tail_pending,
            rx.cond(EventsState.tail_pending == 1, " new event", " new events"),
            " · show",
            variant="soft",
            size="2",
            on_click=EventsState.show_new,
            class_name="tail-new",
        ),
    )


def window_chip() -> rx.Component:
    """The loaded time window, with one click to drop it (any time)."""
    return rx.cond(
        EventsState.window_label != "",
        rx.hstack(
            rx.text("Time: ", EventsState.window_label, size="2", color_scheme="gray"),
            rx.button(
                rx.icon("x", size=12),
                "Any time",
                variant="soft",
                color_scheme="gray",
                size="1",
                title="Drop the time window: the same filters at any time",
                on_click=EventsState.drop_filter("range"),
            ),
            align="center",
            spacing="2",
        ),
    )


def results_table() -> rx.Component:
    """The page of events, or why there is none."""
    headers = [*COLUMNS, ("", "")]
    return rx.box(
        rx.cond(EventsState.loading, rx.box(class_name="loading-bar", role="progressbar", aria_label="Loading")),
        rx.table.root(
            rx.el.caption("Audit events", class_name="sr-only"),
            rx.table.header(
                rx.table.row(
                    time_header(),
                    *[rx.table.column_header_cell(label, class_name=f"col-{key}") for key, label in headers],
                )
            ),
            rx.table.body(rx.foreach(EventsState.rows, event_row)),
            variant="surface",
            size="1",
            aria_busy=EventsState.loading,
            class_name=rx.cond(EventsState.loading, "events-table is-loading", "events-table"),
        ),
        rx.cond(
            ~EventsState.loading & (EventsState.total == 0) & ~EventsState.failed,
            empty_state(),
        ),
        position="relative",
        id="events-scroll",
        class_name="table-scroll " + EventsState.hidden_class,
    )


def toolbar() -> rx.Component:
    """Count of the whole result, export and a link to the same view's statistics."""
    return rx.hstack(
        rx.el.div(
            rx.cond(
                EventsState.loading,
                rx.hstack(rx.spinner(size="2"), rx.text("Loading events…", size="2"), align="center"),
                rx.cond(
                    EventsState.failed,
                    rx.text("No events shown: the filters could not be applied.", size="2"),
                    rx.text(
                        rx.el.strong(EventsState.total_text),
                        rx.cond(EventsState.total == 1, " event", " events"),
                        rx.cond(
                            EventsState.total > 0,
                            rx.text.span(
                                " · showing ",
                                EventsState.first_row,
                                "\u2013",
                                EventsState.last_row,
                                color_scheme="gray",
                            ),
                        ),
                        size="2",
                    ),
                ),
            ),
            role="status",
            aria_live="polite",
            id="result-count",
        ),
        window_chip(),
        rx.spacer(),
        live_tail_switch(),
        column_chooser(),
        rx.link(
            rx.hstack(rx.icon("chart-column", size=14), rx.text("Chart this view", size="2"), align="center"),
            href="/statistics?" + EventsState.query_string,
            underline="none",
        ),
        rx.menu.root(
            rx.menu.trigger(
                rx.button(
                    rx.icon("download", size=14),
                    "Export",
                    rx.icon("chevron-down", size=14),
                    loading=EventsState.exporting,
                    disabled=EventsState.total == 0,
                    variant="outline",
                    size="2",
                ),
            ),
            rx.menu.content(
                rx.menu.item("CSV", on_click=EventsState.export_file("csv")),
                rx.menu.item("CSV for Excel", on_click=EventsState.export_file("excel")),
                rx.menu.separator(),
                rx.menu.item("Evidence bundle (.zip)", on_click=EventsState.export_file("bundle")),
            ),
        ),
        align="center",
        width="100%",
        spacing="4",
        wrap="wrap",
    )


def pagination() -> rx.Component:
    """Previous/next, the page position, and the page size."""
    return rx.hstack(
        rx.hstack(
            rx.el.label("Rows per page", html_for="page-size", class_name="field-label inline"),
            rx.el.select(
                *[rx.el.option(str(size), value=str(size)) for size in PAGE_SIZES],
                id="page-size",
                value=EventsState.per_page.to_string(),
                on_change=EventsState.set_page_size,
                class_name="native-select compact",
            ),
            align="center",
            spacing="2",
        ),
        rx.spacer(),
        rx.cond(
            ~EventsState.failed,
            rx.text(
                "Page ",
                EventsState.page,
                " of ",
                EventsState.pages_text,
                size="2",
                color_scheme="gray",
                id="page-position",
            ),
        ),
        rx.button(
            rx.icon("chevron-left", size=14),
            "Previous",
            variant="soft",
            size="2",
            aria_label="Previous page",
            disabled=EventsState.page <= 1,
            on_click=EventsState.go_to_page(EventsState.page - 1),
        ),
        rx.button(
            "Next",
            rx.icon("chevron-right", size=14),
            variant="soft",
            size="2",
            aria_label="Next page",
            disabled=EventsState.page >= EventsState.pages,
            on_click=EventsState.go_to_page(EventsState.page + 1),
        ),
        align="center",
        spacing="3",
        width="100%",
        wrap="wrap",
    )


def events_page() -> rx.Component:
    """The /events route."""
    return page_shell(
        "events",
        rx.vstack(
            page_title(
                "Events",
                "Find, read and export audit events in your scope. Click an event to read it in full.",
                views_menu(),
            ),
            filters_button(),
            filter_form(),
            rx.cond(EventsState.error != "", error_callout(EventsState.error)),
            rx.cond(
                EventsState.page_note != "",
                rx.callout(EventsState.page_note, icon="info", color_scheme="blue", role="status", width="100%"),
            ),
            rx.box(
                toolbar(),
                export_progress(),
                new_events_button(),  # outside the table's scroll box: in view while it is scrolled
                results_table(),
                pagination(),
                class_name="panel stack",
            ),
            spacing="4",
            width="100%",
            align="stretch",
            on_unmount=EventsState.stop_tail,
        ),
        event_drawer(),
    )
