"""The event drawer: every field of one event, its changes and related events (state: DrawerState)."""

# State attributes are Vars when a page is built, but mypy sees their Python types.
# mypy: disable-error-code="index,operator,attr-defined,arg-type"

from __future__ import annotations

import reflex as rx

from audit_app.ui.components.layout import result_badge
from audit_app.ui.state.drawer import DrawerState


def copy_button(name: rx.Var[str], value: rx.Var[str]) -> rx.Component:
    """A button copying `value` to the clipboard, named "Copy <name>"."""
    return rx.icon_button(
        rx.icon("copy", size=13),
        variant="ghost",
        color_scheme="gray",
        size="1",
        aria_label="Copy " + name,
        title="Copy " + name,
        on_click=[rx.set_clipboard(value), rx.toast.success("Copied " + name, duration=1500)],
        class_name="copy-button",
    )


def field_list() -> rx.Component:
    """Every field of the event as a definition list; ids, the IP address and hashes can be copied."""
    return rx.el.dl(
        rx.foreach(
            DrawerState.fields,
            lambda item: rx.el.div(
                rx.el.dt(item["label"]),
                rx.el.dd(
                    item["value"],
                    rx.cond(item["copy"] != "", copy_button(item["copy"], item["value"])),
                    class_name="mono-soft",
                ),
                class_name="field-row",
            ),
        ),
        class_name="field-list",
    )


def changes_diff() -> rx.Component:
    """details.changes as before/after rows."""
    return rx.cond(
        DrawerState.changes.length() > 0,
        rx.box(
            rx.heading("Changes", size="3", as_="h3", class_name="section-title"),
            rx.table.root(
                rx.el.caption("Changes before and after", class_name="sr-only"),
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell("Field"),
                        rx.table.column_header_cell("Before"),
                        rx.table.column_header_cell("After"),
                    )
                ),
                rx.table.body(
                    rx.foreach(
                        DrawerState.changes,
                        lambda change: rx.table.row(
                            rx.table.cell(rx.text(change["field"], weight="medium", class_name="mono")),
                            rx.table.cell(rx.el.del_(change["before"], class_name="diff-before")),
                            rx.table.cell(rx.el.ins(change["after"], class_name="diff-after")),
                        ),
                    )
                ),
                variant="surface",
                size="1",
                width="100%",
            ),
        ),
    )


def related_events() -> rx.Component:
    """Links to the events that share the actor, resource, request or IP (in the current time window),
    and to the events around this one."""
    return rx.box(
        rx.hstack(
            rx.heading("Related events", size="3", as_="h3", class_name="section-title"),
            rx.spacer(),
            rx.link(
                rx.hstack(rx.icon("clock", size=14), rx.text("Events around this one", size="2"), align="center"),
                href=DrawerState.around,
                title="The same tenant, 5 minutes either side",
                underline="none",
            ),
            align="center",
            width="100%",
        ),
        rx.el.nav(
            rx.foreach(
                DrawerState.related,
                lambda link: rx.link(
                    rx.hstack(
                        rx.vstack(
                            rx.text(link["label"], weight="medium", size="2"),
                            rx.text(link["value"], size="1", color_scheme="gray", class_name="mono truncate"),
                            spacing="0",
                            min_width="0",
                        ),
                        rx.icon("arrow-right", size=14, flex_shrink="0"),
                        align="center",
                        spacing="2",
                        justify="between",
                        width="100%",
                    ),
                    href=link["href"],
                    class_name="related-link",
                    underline="none",
                ),
            ),
            aria_label="Related events",
            class_name="related-list",
        ),
    )


def drawer_body() -> rx.Component:
    """The drawer's content once the event is loaded."""
    return rx.cond(
        DrawerState.event_loading,
        rx.center(rx.spinner(size="3"), padding="48px", role="status", aria_label="Loading event"),
        rx.cond(
            DrawerState.event.contains("missing"),
            rx.callout("This event does not exist or is outside your scope.", icon="info", color_scheme="gray"),
            rx.vstack(
                rx.hstack(
                    rx.code(DrawerState.event["action"], size="3", variant="ghost", weight="bold"),
                    result_badge(DrawerState.event["result"]),
                    align="center",
                    spacing="3",
                ),
                rx.text(
                    rx.el.time(DrawerState.event["time"], title=DrawerState.event["utc"]),
                    " ",
                    DrawerState.zone,
                    " (",
                    DrawerState.event["ago"],
                    ") · ",
                    DrawerState.event["tenant_id"],
                    size="2",
                    color_scheme="gray",
                ),
                changes_diff(),
                related_events(),
                rx.tabs.root(
                    rx.tabs.list(
                        rx.tabs.trigger("Fields", value="fields"),
                        rx.tabs.trigger("Raw JSON", value="raw"),
                    ),
                    rx.tabs.content(
                        field_list(),
                        rx.heading("Details", size="3", as_="h3", class_name="section-title"),
                        rx.el.pre(DrawerState.details_json, class_name="json-block", aria_label="Details JSON"),
                        value="fields",
                        class_name="tab-panel",
                    ),
                    rx.tabs.content(
                        rx.hstack(
                            rx.spacer(),
                            rx.button(
                                rx.icon("copy", size=14),
                                "Copy JSON",
                                variant="soft",
                                size="1",
                                on_click=[
                                    rx.set_clipboard(DrawerState.raw_json),
                                    rx.toast.success("Copied the event as JSON", duration=1500),
                                ],
                            ),
                            width="100%",
                        ),
                        rx.el.pre(DrawerState.raw_json, class_name="json-block", aria_label="Event JSON"),
                        value="raw",
                        class_name="tab-panel",
                    ),
                    default_value="fields",
                    width="100%",
                ),
                spacing="4",
                width="100%",
                align="stretch",
            ),
        ),
    )


def event_drawer() -> rx.Component:
    """The right-hand detail drawer, titled "Audit event"."""
    return rx.drawer.root(
        rx.drawer.portal(
            rx.drawer.overlay(class_name="drawer-overlay"),
            rx.drawer.content(
                rx.hstack(
                    rx.drawer.title("Audit event", class_name="drawer-title"),
                    rx.spacer(),
                    rx.drawer.close(
                        rx.icon_button(rx.icon("x", size=18), variant="ghost", color_scheme="gray", aria_label="Close")
                    ),
                    align="center",
                    class_name="drawer-head",
                ),
                rx.drawer.description("Every recorded field of one audit event.", class_name="sr-only"),
                rx.box(drawer_body(), class_name="drawer-scroll"),
                class_name="drawer-content",
                position="fixed",
                top="0",
                right="0",
                left="auto",
                height="100%",
                width="min(680px, 100vw)",
            ),
        ),
        open=DrawerState.drawer_open,
        on_open_change=DrawerState.set_drawer_open,
        direction="right",
    )
