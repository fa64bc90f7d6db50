"""The events page: filters from the URL, one page of results, the exports (the drawer: drawer.py)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from audit_app.audit.feed import CursorExpiredError, FeedCursor, FeedEvent, feed_end, read_feed
from audit_app.audit.filters import AuditFilters
from audit_app.audit.query import (
    EventPage,
    count_events,
    list_actions,
    list_events,
    list_resource_types,
    list_results,
)
from audit_app.audit.scope import Scope
from audit_app.audit.signing import export_keys
from audit_app.auth import SCOPE_EXPORT, ForbiddenError, Principal, issue_download_token
from audit_app.settings import ConfigError, get_settings
from audit_app.ui.present import event_row
from audit_app.ui.session import in_thread, signed_in
from audit_app.ui.state.auth import current_principal
from audit_app.ui.state.export_progress import ExportProgressState
from audit_app.ui.state.filter_form import FilterFormState
from audit_app.ui.state.zone import zone_of
from audit_app.ui.url_filters import (
    FORM_FIELDS,
    PAGE_SIZES,
    PRESET_LABELS,
    FilterError,
    ViewQuery,
    filters_params,
    searched_as_text,
    widenings,
    without_filter,
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
COLUMNS: tuple[tuple[str, str], ...] = (
    ("tenant", "Tenant"),
    ("actor", "Actor"),
    ("action", "Action"),
    ("resource", "Resource"),
    ("result", "Result"),
    ("ip", "IP address"),
)
"""The table's columns a person may hide (key, header); Time always shows."""
HIDDEN_COLUMNS_KEY = "audit_hidden_columns"
"""The browser's local storage entry of the hidden columns (a saved view being opened writes it too)."""
TAIL_EVERY = 0.5  # seconds between two polls of the feed (a new event shows within about this)
TAIL_CAP = 500  # rows the live tail keeps on screen (and waiting while paused)
TAIL_RECHECK = 20  # polls between two checks of the session (every 10 s)
TAIL_ORPHAN = 20.0  # seconds without an answer from the browser before the tail stops (tab closed)
AT_TOP_SCRIPT = (
    "(() => { if (document.querySelector('.drawer-content')) return 1000000;"
    " const box = document.getElementById('events-scroll'); const body = box && box.querySelector('tbody');"
    " if (!body) return 0;"
    " return Math.round(Math.max(box.getBoundingClientRect().top, 0) - body.getBoundingClientRect().top); })()"
)
"""How far the person has scrolled past the newest rows, in pixels (a large number while an event is open)."""
AT_TOP = 24


def _tail_page(session: Session, *, principal: Principal, filters: AuditFilters, cursor: FeedCursor) -> Any:
    """The next batch of the lossless feed for the live tail."""
    return read_feed(session, principal, filters, cursor, TAIL_CAP)


def _in_window(event: FeedEvent, filters: AuditFilters) -> bool:
    """Whether a fed event falls in the view's time window (the feed itself is never windowed)."""
    stamp = event.timestamp if event.timestamp.tzinfo else event.timestamp.replace(tzinfo=UTC)
    return (filters.start_time is None or stamp >= filters.start_time) and (
        filters.end_time is None or stamp < filters.end_time
    )


def _pickers(session: Session, principal: Principal) -> dict[str, list[str]]:
    """The values each picker offers: only what the caller may see."""
    return {
        "tenant_id": Scope.of(principal).tenant_ids(session),
        "partner_id": Scope.of(principal).partner_ids(session),
        "action": list_actions(session, principal),
        "resource_type": list_resource_types(session, principal),
        "result": list_results(session, principal),
    }


async def _read_page(principal: Principal, view: ViewQuery) -> tuple[EventPage, int]:
    """The page of `view` and its number: the last page instead when `view.page` is beyond it.

    Raises FilterError, ForbiddenError or SQLAlchemyError as the read does.
    """
    filters = view.filters(datetime.now(UTC))
    result = await in_thread(
        lambda s: list_events(s, principal, filters, page=view.page, per_page=view.per_page, order=view.sort)
    )
    if not result.items and view.page > 1 and result.pages:
        last = result.pages
        result = await in_thread(
            lambda s: list_events(s, principal, filters, page=last, per_page=view.per_page, order=view.sort)
        )
        return result, last
    return result, view.page


class EventsState(FilterFormState, rx.State):
    """Filters, the visible page of events and the export of the events page."""

    form: dict[str, str] = dict.fromkeys(FORM_FIELDS, "")
    page: int = 1
    per_page: int = 50
    total: int = 0
    total_exact: bool = True
    pages: int = 0
    page_note: str = ""
    rows: list[dict[str, str]] = []
    loading: bool = True
    error: str = ""
    options: dict[str, list[str]] = {}
    query_string: str = ""
    exporting: bool = False
    widen: list[dict[str, str]] = []  # the active filters, for the empty state's ways to widen
    filters_open: bool = False  # narrow screens: the filter panel behind its "Filters (N)" button
    sort: str = "desc"  # the loaded view's time order
    window_label: str = ""  # the loaded view's time window ("" when any time)
    hidden_columns: str = rx.LocalStorage("", name=HIDDEN_COLUMNS_KEY, sync=True)  # keys, comma-separated
    tail_on: bool = False  # live tail: new matching events are pushed on top
    tail_pending: int = 0  # new events held back while the person scrolls or reads one
    _tail_run: str = ""  # the one tail loop that may run (a random id: a new one, or none, stops the previous)
    _tail_rows: list[dict[str, str]] = []
    _tail_seen: float = 0.0  # when the browser last answered the tail (monotonic)
    _tail_loop: str = ""  # the run a loop follows already (one loop per run)
    _tail_start: str = ""  # the feed cursor the tail follows from (the feed's end when switched on)
    _options_for: str = ""
    _loaded: str | None = None  # the query string of the list on show (None: nothing usable)

    @rx.var
    def failed(self) -> bool:
        """The view could not be loaded: nothing of it is shown."""
        return bool(self.error or self.field_errors)

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
        return 0 if not self.rows else (self.page - 1) * self.per_page + 1

    @rx.var
    def last_row(self) -> int:
        """The position of the last visible row in the whole result."""
        return (self.page - 1) * self.per_page + len(self.rows)

    @rx.var
    def hidden(self) -> list[str]:
        """The keys of the columns hidden in this browser (unknown keys ignored)."""
        known = {key for key, _ in COLUMNS}
        return [key for key in self.hidden_columns.split(",") if key in known]

    @rx.var
    def hidden_class(self) -> str:
        """CSS classes hiding the hidden columns' cells (`hide-<key>`)."""
        return " ".join(f"hide-{key}" for key in self.hidden)

    @rx.var
    def active_count(self) -> int:
        """How many filters are set (time preset included)."""
        return sum(1 for name, value in self.form.items() if value and name not in ("start_time", "end_time")) + (
            1 if self.preset else 0
        )

    def _form_fields(self) -> tuple[str, ...]:
        return FORM_FIELDS

    def _base_view(self) -> ViewQuery:
        return ViewQuery(per_page=self.per_page)

    def _go(self, view: ViewQuery) -> EventSpec:
        return self._navigate(view)

    def _navigate(self, view: ViewQuery) -> EventSpec:
        self.loading = True  # until on_load has fetched the new view: no stale count meanwhile
        query = view.query_string()
        return rx.redirect("/events" + (f"?{query}" if query else ""))

    def _fail(self, message: str = "", field: str = "") -> None:
        self.rows, self.total, self.pages, self.total_exact, self.page_note = [], 0, 0, True, ""
        self._loaded = None
        if field:
            self.field_errors = {field: message}
        else:
            self.error = message

    @rx.event
    @signed_in
    async def load(self, principal: Principal) -> AsyncIterator[Any]:
        """on_load: read the filters from the URL, fill the pickers, fetch the page."""
        async for update in self._load(principal, ViewQuery.from_params(self._url_params())):
            yield update

    async def _follow(self, view: ViewQuery) -> AsyncIterator[Any]:
        """Go to `view` (a new history entry) and load it at once: its navigation's on_load then
        finds it on show, so the rows come without waiting for the browser's round trip.
        Signed out, only the navigation goes (its on_load sends the browser to sign-in)."""
        yield self._navigate(view)
        principal = await current_principal(self)
        if isinstance(principal, Principal):
            async for update in self._load(principal, view):
                yield update

    async def _load(self, principal: Principal, view: ViewQuery) -> AsyncIterator[Any]:
        """Show `view`: the pickers, the form and the page of rows (unless it is on show already).

        The rows are read while the pickers are (and while the browser renders the filled form).
        """
        zone = await zone_of(self)
        query = view.query_string()
        if f"{query} {zone}" == self._loaded and not self.error:
            # only the drawer changed (?event=, DrawerState.sync follows), or Apply spelled the same
            # view anew (a pasted `action=a&action=b` becomes `action=a,b`): the list on show stays
            self.loading = False
            return
        scope_key = f"{principal.role}:{principal.tenant_id}:{principal.partner_id}"
        self._stop_tail()  # another view: the tail (if on) followed the previous one
        self.loading, self.error = True, ""
        reading = asyncio.ensure_future(_read_page(principal, view))
        try:
            try:
                if self._options_for != scope_key:
                    # before the form is filled: a select mounted without its option shows "Any ..."
                    self.options = await in_thread(lambda s: _pickers(s, principal))
                    self._options_for = scope_key
            except SQLAlchemyError:
                logger.exception("Loading the picker values failed")
            self._show_view(view, zone)
            self.widen = widenings(view)
            self.page, self.per_page, self.sort = view.page, view.per_page, view.sort
            self.window_label = PRESET_LABELS.get(view.preset, "") if view.preset else ""
            self.query_string = query
            yield  # the filled form: the browser renders it while the rows are read
            try:
                result, shown_page = await reading
            except FilterError as exc:
                self._fail(str(exc), exc.field)
            except ForbiddenError as exc:
                self._fail(str(exc))
            except SQLAlchemyError:
                logger.exception("Loading events failed")
                self._fail(LOAD_FAILED)
            else:
                now = datetime.now(UTC)
                self.page_note = ""
                if shown_page != view.page:
                    # a page beyond the last (an old link, a shrunk result): the last one, and say so
                    self.page_note = f"There is no page {view.page:,}: showing page {shown_page:,}, the last."
                    self.page = shown_page
                self.rows = [event_row(event, zone, now) for event in result.items]
                self.total, self.pages, self.total_exact = result.total, result.pages, result.total_exact
                self._loaded = f"{query} {zone}"
            finally:
                self.loading = False
        finally:
            reading.cancel()  # a superseded load (a newer navigation): nothing waits for its rows

    @rx.event
    def toggle_sort(self) -> EventSpec:
        """Sort by time the other way (back to page 1)."""
        view = ViewQuery.from_params(self._url_params())
        view.sort = "desc" if view.sort == "asc" else "asc"
        view.page = 1
        return self._navigate(view)

    @rx.event
    def show_column(self, key: str, shown: bool) -> None:
        """Show or hide one column (remembered by this browser)."""
        hidden = [name for name in self.hidden if name != key]
        if not shown and key in {name for name, _ in COLUMNS}:
            hidden.append(key)
        self.hidden_columns = ",".join(hidden)

    def _stop_tail(self) -> None:
        self.tail_on, self.tail_pending, self._tail_rows = False, 0, []
        self._tail_run = ""

    @rx.event
    def stop_tail(self) -> None:
        """The page is left: the tail stops."""
        self._stop_tail()

    @rx.event
    @signed_in
    async def toggle_tail(self, principal: Principal, on: bool) -> AsyncIterator[Any]:
        """Start or stop the live tail (only on the first page, newest first): it follows the feed
        from its end as the switch turns on."""
        self._stop_tail()
        if not on or self.page != 1 or self.sort != "desc" or self.failed:
            return
        try:
            start = await in_thread(lambda s: feed_end(s, principal))
        except SQLAlchemyError:
            logger.exception("The live tail could not find the end of the feed")
            yield rx.toast.error("The live tail could not start (the database did not answer).")
            return
        self.tail_on, self._tail_start, self._tail_run = True, start.encode(), uuid.uuid4().hex
        self._tail_seen = time.monotonic()
        yield EventsState.follow_tail(self._tail_run)  # type: ignore[misc]

    def _show_tail(self) -> None:
        """Put the held-back events on top of the table (at most TAIL_CAP rows in all)."""
        shown = {row["id"] for row in self.rows}
        fresh = [row for row in self._tail_rows if row["id"] not in shown]
        self.rows = (fresh + self.rows)[:TAIL_CAP]
        self.total += len(fresh)
        self._tail_rows, self.tail_pending = [], 0

    @rx.event
    def tail_deliver(self, offset: float = 0.0) -> None:
        """The browser's answer: at the top with no event open, the new events show; else they wait."""
        self._tail_seen = time.monotonic()
        if not self.tail_on:
            return
        if self._tail_rows and offset <= AT_TOP:
            self._show_tail()
        else:
            self.tail_pending = len(self._tail_rows)

    @rx.event
    def show_new(self) -> Any:
        """ "Show N new events": scroll to the newest and show the events held back."""
        self._show_tail()
        return rx.call_script(
            "document.getElementById('events-scroll')?.scrollTo({top: 0});"
            " document.getElementById('events-scroll')?.scrollIntoView({block: 'nearest'})"
        )

    @rx.event(background=True)
    async def follow_tail(self, run: str) -> AsyncIterator[Any]:
        """The live tail: poll the lossless feed every TAIL_EVERY seconds for new events of the view
        and push them (newest on top); ends when stopped, restarted, signed out or left."""
        async with self:
            principal = await current_principal(self)
            if not run or run != self._tail_run or run == self._tail_loop or not isinstance(principal, Principal):
                return  # stopped, restarted, already followed, or signed out
            self._tail_loop = run
            view = ViewQuery.from_params(self._url_params())
            zone = await zone_of(self)
            cursor = FeedCursor.decode(self._tail_start)
        try:
            filters = view.filters(datetime.now(UTC))
        except FilterError:
            return
        polls = 0
        while True:
            polls += 1
            async with self:
                if run != self._tail_run or time.monotonic() - self._tail_seen > TAIL_ORPHAN:
                    if run == self._tail_run:
                        self._stop_tail()  # the tab stopped answering
                    return
                if polls % TAIL_RECHECK == 0 and not isinstance(await current_principal(self), Principal):
                    self._stop_tail()
                    return
            try:
                page = await in_thread(
                    functools.partial(_tail_page, principal=principal, filters=filters, cursor=cursor)
                )
            except CursorExpiredError:  # the last event seen was purged meanwhile: on from the end
                cursor = await in_thread(lambda s: feed_end(s, principal))
                continue
            except (SQLAlchemyError, ForbiddenError):
                logger.exception("The live tail could not read the feed")
                page = None
            if page is not None:
                cursor = page.next
                now = datetime.now(UTC)
                window = view.filters(now)
                fresh = [event_row(item, zone, now) for item in reversed(page.items) if _in_window(item, window)]
                if fresh:
                    async with self:
                        if run != self._tail_run:
                            return
                        self._tail_rows = (fresh + self._tail_rows)[:TAIL_CAP]
            yield rx.call_script(AT_TOP_SCRIPT, callback=EventsState.tail_deliver)
            if page is None or len(page.items) < TAIL_CAP:
                await asyncio.sleep(TAIL_EVERY)

    @rx.event
    def toggle_filters(self) -> None:
        """Show or hide the filter panel (narrow screens)."""
        self.filters_open = not self.filters_open

    @rx.event
    def reset_filters(self) -> EventSpec:
        """Clear every filter."""
        return self._navigate(ViewQuery(per_page=self.per_page))

    @rx.event
    def filter_on(self, name: str, value: str) -> EventSpec | None:
        """Add one value from the table to the current filters."""
        if name not in FILTERABLE or not value:
            return None
        view = ViewQuery.from_params(self._url_params())
        view.values[name] = value
        view.page = 1
        return self._navigate(view)

    @rx.event
    def drop_filter(self, name: str) -> EventSpec:
        """Widen an empty result: the same view without one filter (`range`: any time)."""
        return self._navigate(without_filter(ViewQuery.from_params(self._url_params()), name))

    @rx.event
    def search_as_text(self, name: str) -> EventSpec:
        """Widen an empty result: search one exact filter's value as free text (`q`) instead."""
        return self._navigate(searched_as_text(ViewQuery.from_params(self._url_params()), name))

    @rx.event
    async def go_to_page(self, page: int) -> AsyncIterator[Any]:
        """Show another page of the same filtered view."""
        view = ViewQuery.from_params(self._url_params())
        view.page = max(1, min(page, max(self.pages, 1)))
        async for update in self._follow(view):
            yield update

    @rx.event
    async def apply(self, form_data: dict[str, Any] | None = None) -> AsyncIterator[Any]:
        """Put the form into the URL (page 1) and show that view."""
        async for update in self._follow(self._submitted(form_data)):
            yield update

    @rx.event
    def set_page_size(self, size: str) -> EventSpec:
        """Change how many rows a page holds (back to page 1)."""
        view = ViewQuery.from_params(self._url_params())
        view.per_page = int(size) if size.isdigit() and int(size) in PAGE_SIZES else view.per_page
        view.page = 1
        return self._navigate(view)

    @rx.event
    @signed_in
    async def export_file(self, principal: Principal, kind: str) -> AsyncIterator[Any]:
        """Start a download of exactly the filtered view (`kind`: csv, excel or bundle) through the export route."""
        params, described = EXPORT_KINDS.get(kind, EXPORT_KINDS["csv"])
        try:
            principal.require_scope(SCOPE_EXPORT)
            view = ViewQuery.from_params(self._url_params())
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
        order = {"sort": view.sort} if view.sort != "desc" else {}  # the rows in the order on show
        url = f"{EXPORT_ROUTE}?" + urlencode({**params, "download_token": token, **filters_params(filters), **order})
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
