"""The console frame: header with navigation and the signed-in principal, and the page body."""

# State attributes are Vars when a page is built, but mypy sees their Python types.
# mypy: disable-error-code="index,operator,attr-defined,arg-type"

from __future__ import annotations

import reflex as rx

from audit_app.ui.state.auth import AuthState
from audit_app.ui.state.zone import ZoneState

RESULT_SCHEMES = (("success", "green"), ("failure", "red"), ("denied", "orange"), ("error", "purple"))


def result_badge(result: rx.Var[str]) -> rx.Component:
    """A result as a coloured badge (the colours the charts use)."""
    return rx.badge(
        result,
        color_scheme=rx.match(result, *RESULT_SCHEMES, "gray"),  # type: ignore[arg-type]
        variant="soft",
        radius="full",
        class_name="result-badge",
    )


def nav_link(label: str, href: str, active: bool) -> rx.Component:
    """A top navigation link; the current page is marked for assistive technology too."""
    return rx.link(
        label,
        href=href,
        class_name="nav-link nav-link-active" if active else "nav-link",
        aria_current="page" if active else None,
    )


def principal_badge() -> rx.Component:
    """Who is signed in, their role and what they may see."""
    return rx.hstack(
        rx.vstack(
            rx.text(AuthState.who, size="2", weight="medium", aria_label="Signed in as"),
            rx.text(AuthState.scope_label, size="1", color_scheme="gray", aria_label="Scope"),
            spacing="0",
            align="end",
        ),
        rx.badge(AuthState.role_label, variant="soft", color_scheme="indigo", aria_label="Role"),
        rx.button(
            rx.icon("log-out", size=14),
            "Sign out",
            variant="soft",
            color_scheme="gray",
            size="2",
            on_click=AuthState.sign_out,
        ),
        spacing="3",
        align="center",
        wrap="wrap",
        class_name="principal",
    )


def zone_switch() -> rx.Component:
    """UTC or the browser's local time for every time shown (remembered by this browser)."""
    return rx.el.div(
        rx.el.button(
            "UTC",
            type="button",
            aria_pressed=rx.cond(ZoneState.is_utc, "true", "false"),
            on_click=ZoneState.use_utc,
            class_name="zone-option",
        ),
        rx.el.button(
            "Local time",
            type="button",
            aria_pressed=rx.cond(ZoneState.is_utc, "false", "true"),
            on_click=ZoneState.use_local,
            class_name="zone-option",
        ),
        role="group",
        aria_label="Show times in",
        class_name="zone-switch",
    )


def header(active: str) -> rx.Component:
    """The top bar shown on every signed-in page."""
    return rx.el.header(
        rx.hstack(
            rx.hstack(
                rx.icon("shield-check", size=22, color="var(--accent-9)"),
                rx.text("Audit console", weight="bold", size="4"),
                align="center",
                spacing="2",
            ),
            rx.el.nav(
                rx.hstack(
                    nav_link("Events", "/events", active == "events"),
                    nav_link("Statistics", "/statistics", active == "statistics"),
                    rx.cond(AuthState.can_admin, nav_link("Streams", "/streams", active == "streams")),
                    spacing="1",
                ),
                aria_label="Main",
            ),
            rx.spacer(),
            zone_switch(),
            principal_badge(),
            align="center",
            spacing="6",
            width="100%",
            wrap="wrap",
            class_name="header-row",
        ),
        class_name="console-header",
    )


def page_shell(active: str, *children: rx.Component) -> rx.Component:
    """A signed-in page: the header, then the content in a comfortable width."""
    return rx.box(
        header(active),
        rx.el.main(*children, class_name="console-main"),
        class_name="console",
    )


def page_title(title: str, subtitle: rx.Component | str, *actions: rx.Component) -> rx.Component:
    """The heading of a page with one line of context under it (and `actions` at its right)."""
    heading = rx.vstack(
        rx.heading(title, size="6", as_="h1"),
        rx.text(subtitle, size="2", color_scheme="gray"),
        spacing="1",
    )
    if not actions:
        return heading
    return rx.hstack(heading, rx.spacer(), *actions, align="end", width="100%", wrap="wrap")


def error_callout(message: rx.Var[str]) -> rx.Component:
    """A visible, announced error message."""
    return rx.callout(message, icon="triangle-alert", color_scheme="red", role="alert", width="100%")
