"""The events page: filters from the URL, one page of results, the detail drawer, the exports."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from audit_app.audit.access import Client, EventNotFoundError, view_event
from audit_app.audit.filters import AuditFilters
from audit_app.audit.query import count_events, list_actions, list_events, list_resource_types, list_results
from audit_app.audit.scope import Scope
from audit_app.audit.signing import export_keys
from audit_app.auth import SCOPE_EXPORT, ForbiddenError, Principal, issue_download_token
from audit_app.models import AuditLog
from audit_app.settings import ConfigError, get_settings
from audit_app.ui.state.auth import current_principal
from audit_app.ui.state.export_progress import ExportProgressState
from audit_app.ui.state.present import change_rows, event_fields, event_row, pretty_details, related_links
from audit_app.ui.state.session import in_thread
from audit_app.ui.state.url_filters import (
    FORM_FIELDS,
    PAGE_SIZES,
    PRESETS,
    FilterError,
    ViewQuery,
    filters_params,
    input_time,
)

logger = logging.getLogger(__name__)
LOAD_FAILED = "The events could not be loaded (the database did not answer). Try again in a moment."
# The export route takes every filter of the events page (request_id included), so the CSV
# holds exactly the filtered view.
DOWNLOAD_SCRIPT = (
    "(() => { const a = document.createElement('a'); a.href = %s; a.download = '';"
    " document.body.appendChild(a); a.click(); a.remove(); })()"
)
EXPORT_ROUTE = "/api/v1/admin/audit/export"
EXPORT_KINDS: dict[str, tuple[dict[str, str], str]] = {
    "csv": ({"format": "csv"}, "in CSV"),
    "excel": ({"format": "csv", "excel": "1"}, "in CSV for Excel"),
    "bundle": ({"format": "bundle"}, "in an evidence bundle"),
}
"""The Export menu's choices: the export route's parameters and how the toast names the file."""
FILTERABLE = ("actor_id", "action", "resource_type", "resource_id", "ip_address", "tenant_id", "result")


def _pickers(session: Session, principal: Principal) -> dict[str, list[str]]:
    """The values each picker offers: only what the caller may see."""
    return {
        "tenant_id": Scope.of(principal).tenant_ids(session),
        "partner_id": Scope.of(principal).partner_ids(session),
        "action": list_actions(session, principal),
        "resource_type": list_resource_types(session, principal),
        "result": list_results(session, principal),
    }


class EventsState(rx.State):
    """Filters, the visible page of events, the drawer and the export of the events page."""

    form: dict[str, str] = dict.fromkeys(FORM_FIELDS, "")
    form_version: int = 0
    preset: str = ""
    page: int = 1
    per_page: int = 50
    total: int = 0
    total_exact: bool = True
    pages: int = 0
    rows: list[dict[str, str]] = []
    loading: bool = True
    error: str = ""
    options: dict[str, list[str]] = {}
    query_string: str = ""
    drawer_open: bool = False
    event_loading: bool = False
    event: dict[str, str] = {}
    fields: list[dict[str, str]] = []
    details_json: str = ""
    changes: list[dict[str, str]] = []
    related: list[dict[str, str]] = []
    exporting: bool = False
    _options_for: str = ""

    @rx.var
    def total_text(self) -> str:
        """The total count with thousands separators."""
        return f"{self.total:,}" if self.total_exact else f"{self.total:,}+"

    @rx.var
    def pages_text(self) -> str:
        """How many pages, marked "+" when the count stopped at its cap."""
        return f"{max(self.pages, 1):,}" + ("" if self.total_exact else "+")

    @rx.var
    def first_row(self) -> int:
        """The position of the first visible row in the whole result."""
        return 0 if not self.total else (self.page - 1) * self.per_page + 1

    @rx.var
    def last_row(self) -> int:
        """The position of the last visible row in the whole result."""
        return min(self.page * self.per_page, self.total)

    @rx.var
    def active_count(self) -> int:
        """How many filters are set (time preset included)."""
        return sum(1 for name, value in self.form.items() if value and name not in ("start_time", "end_time")) + (
            1 if self.preset else 0
        )

    async def _principal(self) -> Principal | EventSpec:
        return await current_principal(self)

    def _view(self, page: int | None = None) -> ViewQuery:
        values = {name: self.form.get(name, "").strip() for name in FORM_FIELDS}
        preset = self.preset if self.preset in PRESETS or self.preset == "custom" else ""
        return ViewQuery(values=values, preset=preset, page=page or self.page, per_page=self.per_page)

    def _navigate(self, view: ViewQuery) -> EventSpec:
        self.loading = True  # until on_load has fetched the new view: no stale count meanwhile
        query = view.query_string()
        return rx.redirect("/events" + (f"?{query}" if query else ""))

    @rx.event
    async def load(self) -> AsyncIterator[Any]:
        """on_load: read the filters from the URL, fill the pickers, fetch the page."""
        principal = await self._principal()
        if not isinstance(principal, Principal):
            yield principal
            return
        view = ViewQuery.from_params(self.router.url.query_parameters)
        self.form = {name: view.values[name] for name in FORM_FIELDS}
        self.form["start_time"] = input_time(self.form["start_time"]) if view.preset == "custom" else ""
        self.form["end_time"] = input_time(self.form["end_time"]) if view.preset == "custom" else ""
        self.preset, self.page, self.per_page = view.preset, view.page, view.per_page
        self.form_version += 1
        self.query_string = view.query_string()
        self.drawer_open = False
        self.loading = True
        self.error = ""
        yield
        scope_key = f"{principal.role}:{principal.tenant_id}:{principal.partner_id}"
        try:
            filters = view.filters(datetime.now(UTC))
            if self._options_for != scope_key:
                self.options = await in_thread(lambda s: _pickers(s, principal))
                self._options_for = scope_key
            result = await in_thread(
                lambda s: list_events(s, principal, filters, page=view.page, per_page=view.per_page)
            )
        except (FilterError, ForbiddenError) as exc:
            self.rows, self.total, self.pages = [], 0, 0
            self.error = str(exc)
        except SQLAlchemyError:
            logger.exception("Loading events failed")
            self.rows, self.total, self.pages = [], 0, 0
            self.error = LOAD_FAILED
        else:
            self.rows = [event_row(event) for event in result.items]
            self.total, self.pages, self.total_exact = result.total, result.pages, result.total_exact
        finally:
            self.loading = False

    def _set_preset_value(self, preset: str) -> None:
        """Keep a known preset and clear the custom window unless it is "custom"."""
        self.preset = preset if preset in PRESETS or preset == "custom" else ""
        if self.preset != "custom":
            self.form["start_time"] = self.form["end_time"] = ""

    @rx.event
    def apply(self, form_data: dict[str, Any] | None = None) -> EventSpec:
        """Put the form into the URL (page 1); loading follows from the navigation."""
        data = form_data or {}
        for name in FORM_FIELDS:
            if name in data:
                self.form[name] = str(data[name] or "")[:320]
        chosen = str(data.get("range", self.preset) or "")
        if chosen in PRESETS:
            self._set_preset_value(chosen)
        else:
            # Typing a date makes the range custom even if the picker has not caught up yet.
            custom = self.form.get("start_time") or self.form.get("end_time")
            self._set_preset_value("custom" if custom else "")
        return self._navigate(self._view(page=1))

    @rx.event
    def reset_filters(self) -> EventSpec:
        """Clear every filter."""
        self.loading = True
        return rx.redirect("/events" + (f"?per_page={self.per_page}" if self.per_page != 50 else ""))

    @rx.event
    def filter_on(self, name: str, value: str) -> EventSpec | None:
        """Add one value from the table to the current filters."""
        if name not in FILTERABLE or not value:
            return None
        view = ViewQuery.from_params(self.router.url.query_parameters)
        view.values[name] = value
        view.page = 1
        return self._navigate(view)

    @rx.event
    def go_to_page(self, page: int) -> EventSpec:
        """Show another page of the same filtered view."""
        view = ViewQuery.from_params(self.router.url.query_parameters)
        view.page = max(1, min(page, max(self.pages, 1)))
        return self._navigate(view)

    @rx.event
    def set_page_size(self, size: str) -> EventSpec:
        """Change how many rows a page holds (back to page 1)."""
        view = ViewQuery.from_params(self.router.url.query_parameters)
        view.per_page = int(size) if size.isdigit() and int(size) in PAGE_SIZES else view.per_page
        view.page = 1
        return self._navigate(view)

    @rx.event
    def set_drawer_open(self, is_open: bool) -> None:
        """Open or close the detail drawer."""
        self.drawer_open = is_open

    @rx.event
    async def open_event(self, event_id: str) -> AsyncIterator[Any]:
        """Show one event in the drawer and record that the caller viewed it (audit.view)."""
        principal = await self._principal()
        if not isinstance(principal, Principal):
            yield principal
            return
        self.drawer_open = True
        self.event_loading = True
        self.event = {"id": event_id}
        self.fields, self.changes, self.related, self.details_json = [], [], [], ""
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
        self.event = event_row(event)
        self.fields = event_fields(event)
        self.details_json = pretty_details(event.details)
        self.changes = change_rows(event.details)
        self.related = related_links(event)

    @rx.event
    async def export_file(self, kind: str) -> AsyncIterator[Any]:
        """Start a download of exactly the filtered view (`kind`: csv, excel or bundle) through the export route."""
        principal = await self._principal()
        if not isinstance(principal, Principal):
            yield principal
            return
        params, described = EXPORT_KINDS.get(kind, EXPORT_KINDS["csv"])
        try:
            principal.require_scope(SCOPE_EXPORT)
            view = ViewQuery.from_params(self.router.url.query_parameters)
            filters: AuditFilters = view.filters(datetime.now(UTC))
            if kind == "bundle":
                export_keys(get_settings()).signer()
        except (ForbiddenError, FilterError, ConfigError) as exc:
            yield rx.toast.error(str(exc), close_button=True)
            return
        self.exporting = True
        yield
        try:
            total = await in_thread(lambda s: count_events(s, principal, filters))
        except ForbiddenError as exc:
            self.exporting = False
            yield rx.toast.error(str(exc), close_button=True)
            return
        download_id = str(uuid.uuid4())  # the token's jti: the server records the export's progress under it
        token = issue_download_token(get_settings(), principal, token_id=download_id)
        url = f"{EXPORT_ROUTE}?" + urlencode({**params, "download_token": token, **filters_params(filters)})
        self.exporting = False
        progress = await self.get_state(ExportProgressState)
        progress.follow(download_id, principal.sub, total, described)
        yield rx.toast.success(
            f"Export started: {total:,} row{'s' if total != 1 else ''} {described}.",
            description="Your browser is downloading the file.",
            close_button=True,
        )
        # An <a download> click fetches the file without unloading the page (and its websocket).
        yield rx.call_script(DOWNLOAD_SCRIPT % json.dumps(url))
        yield ExportProgressState.watch
