"""The Reflex app: the compliance console's pages, with the REST API mounted alongside."""

import reflex as rx

from audit_app.api import create_api


def index() -> rx.Component:
    """Placeholder landing page until the console lands."""
    return rx.center(rx.heading("audit_app"), height="100vh")


app = rx.App(api_transformer=create_api(), theme=rx.theme(accent_color="indigo"))
app.add_page(index, route="/", title="Audit console")
