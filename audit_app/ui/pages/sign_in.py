"""The sign-in page: sign in with SSO (when configured), paste a bearer token, or (demo mode) pick a
demo persona; and the page of a person whom the identity provider vouches for but who has no role."""

# State attributes are Vars when a page is built, but mypy sees their Python types.
# mypy: disable-error-code="index,operator,attr-defined,arg-type"

from __future__ import annotations

import reflex as rx

from audit_app.ui.state.auth import AuthState


def persona_button(persona: rx.Var[dict[str, str]]) -> rx.Component:
    """One-click sign-in as a demo persona (the token is minted on the server)."""
    return rx.button(
        rx.vstack(
            rx.text(persona["label"], weight="medium", size="2"),
            rx.text(persona["email"], size="1", color_scheme="gray"),
            align="start",
            spacing="0",
        ),
        rx.spacer(),
        rx.icon("arrow-right", size=16),
        on_click=AuthState.sign_in_persona(persona["key"]),
        aria_label="Sign in as " + persona["label"],
        variant="surface",
        color_scheme="gray",
        class_name="persona-button",
        width="100%",
    )


def sign_in_page() -> rx.Component:
    """The / route."""
    return rx.center(
        rx.vstack(
            rx.hstack(
                rx.icon("shield-check", size=28, color="var(--accent-9)"),
                rx.heading("Audit console", size="6", as_="h1"),
                align="center",
                spacing="2",
            ),
            rx.text("Sign in to search, read and export the audit log of your tenants.", color_scheme="gray", size="2"),
            rx.cond(
                AuthState.notice != "",
                rx.callout(AuthState.notice, icon="info", color_scheme="amber", role="alert", width="100%"),
            ),
            rx.cond(
                AuthState.sso,
                rx.vstack(
                    rx.button(
                        rx.icon("key-round", size=16),
                        "Sign in with SSO",
                        on_click=AuthState.sign_in_sso,
                        width="100%",
                        size="3",
                    ),
                    rx.hstack(
                        rx.separator(size="4"),
                        rx.text("or paste a token", size="1", color_scheme="gray", white_space="nowrap"),
                        rx.separator(size="4"),
                        align="center",
                        width="100%",
                    ),
                    spacing="4",
                    width="100%",
                ),
            ),
            rx.form(
                rx.vstack(
                    rx.el.label("Bearer token", html_for="token", class_name="field-label"),
                    rx.text_area(
                        id="token",
                        name="token",
                        value=AuthState.token_input,
                        on_change=AuthState.set_token_input,
                        placeholder="eyJhbGciOi…",
                        rows="4",
                        width="100%",
                        class_name="mono",
                        spell_check=False,
                    ),
                    rx.button(
                        "Sign in",
                        type="submit",
                        # Until the page is hydrated a click would submit the form natively, a GET
                        # that puts the token in the URL (history, proxy and server logs).
                        disabled=~rx.State.is_hydrated,
                        width="100%",
                        size="3",
                        variant=rx.cond(AuthState.sso, "soft", "solid"),
                    ),
                    spacing="2",
                    width="100%",
                ),
                on_submit=AuthState.sign_in,
                aria_label="Sign in with a token",
                width="100%",
            ),
            rx.cond(
                AuthState.demo,
                rx.vstack(
                    rx.hstack(
                        rx.separator(size="4"),
                        rx.text("or try a demo persona", size="1", color_scheme="gray", white_space="nowrap"),
                        rx.separator(size="4"),
                        align="center",
                        width="100%",
                    ),
                    rx.foreach(AuthState.personas, persona_button),
                    spacing="2",
                    width="100%",
                ),
            ),
            spacing="4",
            width="100%",
            max_width="440px",
            class_name="panel sign-in-card",
        ),
        min_height="100vh",
        class_name="sign-in-backdrop",
    )


def no_access_page() -> rx.Component:
    """The /no-access route: the provider signed the person in, but no role of this console is theirs."""
    return rx.center(
        rx.vstack(
            rx.hstack(
                rx.icon("shield-x", size=28, color="var(--red-9)"),
                rx.heading("No access to the audit console", size="6", as_="h1"),
                align="center",
                spacing="2",
            ),
            rx.callout(
                rx.cond(
                    AuthState.notice != "",
                    AuthState.notice,
                    "Your identity provider account maps to no role of the audit console.",
                ),
                icon="info",
                color_scheme="red",
                role="alert",
                width="100%",
            ),
            rx.text(
                "Your identity provider signed you in, but none of your groups or roles is granted access "
                "to audit logs here (AUDIT_ROLE_MAP). Ask the administrator of the audit console to map "
                "one of your groups to a role; this refusal was recorded.",
                size="2",
                color_scheme="gray",
            ),
            rx.link("Back to sign-in", href="/"),
            spacing="4",
            width="100%",
            max_width="520px",
            class_name="panel sign-in-card",
        ),
        min_height="100vh",
        class_name="sign-in-backdrop",
    )
