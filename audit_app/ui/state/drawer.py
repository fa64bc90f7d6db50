"""The event drawer: one event in full, opened from the table and kept in the URL as `?event=<id>`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from audit_app.audit.access import Client, EventNotFoundError, view_event
from audit_app.auth import Principal
from audit_app.models import AuditLog
from audit_app.ui.present import (
    around_href,
    change_rows,
    event_fields,
    event_row,
    pretty_details,
    raw_event,
    related_links,
)
from audit_app.ui.session import signed_in
from audit_app.ui.state.events import EventsState
from audit_app.ui.state.zone import zone_of
from audit_app.ui.url_filters import ViewQuery

MAX_ID = 64


class DrawerState(EventsState):
    """The event open in the drawer (a sub-state of the events page)."""

    drawer_open: bool = False
    event_loading: bool = False
    event: dict[str, str] = {}
    fields: list[dict[str, str]] = []
    details_json: str = ""
    changes: list[dict[str, str]] = []
    related: list[dict[str, str]] = []
    raw_json: str = ""  # the whole event (the "Raw JSON" tab)
    around: str = ""  # the link to the events of the same tenant a few minutes either side

    def _url(self, event_id: str = "") -> str:
        query = "&".join(part for part in (self.query_string, f"event={event_id}" if event_id else "") if part)
        return "/events" + (f"?{query}" if query else "")

    def _clear(self) -> None:
        self.drawer_open = self.event_loading = False
        self.event, self.fields, self.changes, self.related, self.details_json = {}, [], [], [], ""
        self.raw_json = self.around = ""

    @rx.event
    async def open_event(self, event_id: str) -> AsyncIterator[Any]:
        """Open the drawer on an event: a new history entry, so Back closes it. The event loads at
        once (the navigation's `sync` then finds it shown), not after the browser's round trip."""
        event_id = event_id[:MAX_ID]
        self.drawer_open, self.event_loading = True, True
        self.event = {"id": event_id}
        yield rx.redirect(self._url(event_id))
        async for update in self._show(event_id):
            yield update

    @rx.event
    def set_drawer_open(self, is_open: bool) -> EventSpec | None:
        """Closing the drawer (Close, Escape, a click outside) drops `event` from the URL."""
        if is_open:
            return None
        self._clear()
        return rx.redirect(self._url(), replace=True)

    @rx.event
    async def sync(self) -> AsyncIterator[Any]:
        """on_load, after the list: show the URL's `event` in the drawer, or close it."""
        event_id = str(self.router.url.query_parameters.get("event", "") or "")[:MAX_ID]
        if not event_id:
            self._clear()
            return
        if self.event.get("id") == event_id and not self.event_loading and self.drawer_open:
            return  # already shown (and its view already recorded)
        async for update in self._show(event_id):
            yield update

    @signed_in
    async def _show(self, principal: Principal, event_id: str) -> AsyncIterator[Any]:
        """Load one event and record that the caller viewed it (audit.view)."""
        self.drawer_open, self.event_loading = True, True
        self.event = {"id": event_id}
        self.fields, self.changes, self.related, self.details_json = [], [], [], ""
        self.raw_json = self.around = ""
        yield
        client = Client(self.router.session.client_ip, self.router.headers.user_agent)
        try:
            event: AuditLog | None = await asyncio.to_thread(view_event, principal, event_id, client)
        except EventNotFoundError:
            event = None
        self.event_loading = False
        if event is None:
            self.event = {"id": event_id, "missing": "1"}
            return
        zone = await zone_of(self)
        self.event = event_row(event, zone)
        self.fields = event_fields(event, zone)
        self.details_json = pretty_details(event.details)
        self.changes = change_rows(event.details)
        window = ViewQuery.from_params(self._url_params()).window_params()
        self.related = related_links(event, window)
        self.raw_json = raw_event(event)
        self.around = around_href(event)
