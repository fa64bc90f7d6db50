"""The Reflex app: the compliance console's pages, with the REST API mounted alongside."""

import reflex as rx

from audit_app.api import create_api
from audit_app.startup import checked_settings
from audit_app.ui.pages.events import events_page
from audit_app.ui.pages.sign_in import no_access_page, sign_in_page
from audit_app.ui.pages.statistics import statistics_page
from audit_app.ui.pages.streams import streams_page
from audit_app.ui.state.auth import AuthState
from audit_app.ui.state.drawer import DrawerState
from audit_app.ui.state.events import EventsState
from audit_app.ui.state.stats import StatsState
from audit_app.ui.state.streams import StreamsState
from audit_app.ui.state.views import ViewsState

checked_settings()  # bad configuration ends start-up here with one sentence

app = rx.App(
    api_transformer=create_api(),
    stylesheets=["/console.css"],
    head_components=[rx.el.meta(name="color-scheme", content="light")],
)
app.add_page(sign_in_page, route="/", title="Sign in · Audit console", on_load=AuthState.load_sign_in)
app.add_page(
    events_page,
    route="/events",
    title="Events · Audit console",
    on_load=[EventsState.load, DrawerState.sync, ViewsState.refresh],
)
app.add_page(
    statistics_page,
    route="/statistics",
    title="Statistics · Audit console",
    on_load=[StatsState.load, ViewsState.refresh],
)
app.add_page(streams_page, route="/streams", title="Log streams · Audit console", on_load=StreamsState.load)
app.add_page(no_access_page, route="/no-access", title="No access · Audit console", on_load=AuthState.load_no_access)
