"""The Views menu: open a saved view, save the current one, and rename, update or delete one's own."""

# State attributes are Vars when a page is built, but mypy sees their Python types.
# mypy: disable-error-code="index,operator,attr-defined,arg-type"

from __future__ import annotations

import reflex as rx

from audit_app.audit.views import MAX_NAME
from audit_app.ui.components.fields import labelled
from audit_app.ui.state.views import ViewsState


def view_item(view: rx.Var[dict[str, str]]) -> rx.Component:
    """One saved view in the menu (its note: shared, or saved on the other page)."""
    return rx.menu.item(
        rx.text(view["name"]),
        rx.cond(view["note"] != "", rx.text(view["note"], size="1", color_scheme="gray")),
        on_click=ViewsState.open_view(view["id"]),
        class_name="view-item",
    )


def save_dialog() -> rx.Component:
    """Name the current view and say whether everyone with the same scope sees it."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Save view"),
            rx.dialog.description("Saves the filters, search and time range shown now.", size="2", color_scheme="gray"),
            rx.form(
                rx.vstack(
                    labelled(
                        "Name",
                        "view-name",
                        rx.input(id="view-name", name="name", max_length=MAX_NAME, required=True, auto_focus=True),
                    ),
                    rx.el.label(
                        rx.el.input(type="checkbox", id="view-shared", name="shared", class_name="toggle-box"),
                        "Share with everyone who has my scope",
                        html_for="view-shared",
                        class_name="toggle",
                    ),
                    rx.cond(ViewsState.error != "", rx.text(ViewsState.error, size="2", color="var(--red-11)")),
                    rx.hstack(
                        rx.dialog.close(rx.button("Cancel", type="button", variant="soft", color_scheme="gray")),
                        rx.button("Save", type="submit"),
                        justify="end",
                        width="100%",
                    ),
                    spacing="3",
                ),
                on_submit=ViewsState.save,
                reset_on_submit=False,
            ),
            max_width="440px",
        ),
        open=ViewsState.save_open,
        on_open_change=ViewsState.set_save_open,
    )


def owned_row(view: rx.Var[dict[str, str]]) -> rx.Component:
    """One of the caller's views: rename in place, update with the current view, delete."""
    return rx.el.li(
        rx.cond(
            ViewsState.renaming == view["id"],
            rx.form(
                rx.hstack(
                    rx.input(
                        name="name",
                        default_value=view["name"],
                        max_length=MAX_NAME,
                        required=True,
                        auto_focus=True,
                        aria_label="New name for " + view["name"],
                    ),
                    rx.button("Save name", type="submit", size="2"),
                    align="center",
                ),
                on_submit=ViewsState.rename,
                reset_on_submit=False,
            ),
            rx.text(
                view["name"],
                rx.cond(view["note"] != "", rx.text.span(" (", view["note"], ")", color_scheme="gray")),
                size="2",
            ),
        ),
        rx.hstack(
            rx.button(
                "Rename",
                size="1",
                variant="soft",
                aria_label="Rename " + view["name"],
                on_click=ViewsState.start_rename(view["id"]),
            ),
            rx.button(
                "Update",
                size="1",
                variant="soft",
                aria_label="Update " + view["name"] + " with the current view",
                on_click=ViewsState.overwrite(view["id"]),
            ),
            rx.button(
                "Delete",
                size="1",
                variant="soft",
                color_scheme="red",
                aria_label="Delete " + view["name"],
                on_click=ViewsState.delete(view["id"]),
            ),
            spacing="2",
        ),
        class_name="widen-item",
    )


def manage_dialog() -> rx.Component:
    """The caller's own views, each with rename, update and delete."""
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Manage views"),
            rx.dialog.description(
                "Update replaces a view with the filters, search and time range shown now.",
                size="2",
                color_scheme="gray",
            ),
            rx.cond(
                ViewsState.owned.length() > 0,
                rx.el.ul(rx.foreach(ViewsState.owned, owned_row), class_name="widen", aria_label="Your views"),
                rx.text("You have no saved views.", size="2"),
            ),
            rx.cond(ViewsState.error != "", rx.text(ViewsState.error, size="2", color="var(--red-11)")),
            rx.hstack(
                rx.dialog.close(rx.button("Close", variant="soft", color_scheme="gray")),
                justify="end",
                padding_top="12px",
            ),
            max_width="560px",
        ),
        open=ViewsState.manage_open,
        on_open_change=ViewsState.set_manage_open,
    )


def views_menu() -> rx.Component:
    """The Views menu and its dialogs."""
    return rx.fragment(
        rx.menu.root(
            rx.menu.trigger(
                rx.button(
                    rx.icon("bookmark", size=14), "Views", rx.icon("chevron-down", size=14), variant="outline", size="2"
                ),
            ),
            rx.menu.content(
                rx.cond(
                    ViewsState.views.length() > 0,
                    rx.foreach(ViewsState.views, view_item),
                    rx.menu.item("No saved views yet", disabled=True),
                ),
                rx.menu.separator(),
                rx.menu.item(
                    rx.icon("bookmark-plus", size=14), "Save current view…", on_click=ViewsState.set_save_open(True)
                ),
                rx.menu.item(
                    rx.icon("settings-2", size=14), "Manage views…", on_click=ViewsState.set_manage_open(True)
                ),
            ),
        ),
        save_dialog(),
        manage_dialog(),
    )
