"""The Views menu of the events and statistics pages: saved views over `audit.views` (no rules of its own)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import reflex as rx
from reflex.event import EventSpec
from sqlalchemy.exc import SQLAlchemyError

from audit_app.audit.views import (
    VIEW_PAGES,
    ViewChange,
    ViewConflictError,
    ViewNotFoundError,
    ViewQueryError,
    create_view,
    delete_view,
    list_views,
    update_view,
)
from audit_app.auth import ForbiddenError, Principal
from audit_app.models import SavedView
from audit_app.ui.session import in_thread, signed_in
from audit_app.ui.state.events import COLUMNS, EventsState
from audit_app.ui.url_filters import ViewQuery, saved_query, saved_view_href, stats_params, url_params

logger = logging.getLogger(__name__)
REFUSED = (ViewConflictError, ViewNotFoundError, ViewQueryError, ForbiddenError)
"""What the domain refuses with a reason the person can act on (shown as it says)."""
FAILED = "The saved views could not be reached (the database did not answer). Try again in a moment."
COLUMN_FIELDS: dict[str, str] = {
    "tenant": "tenant_id",
    "actor": "actor_id",
    "action": "action",
    "resource": "resource_id",
    "result": "result",
    "ip": "ip_address",
}
"""The event field each hideable column of the events table shows (a saved view names columns by field)."""


def shown_fields(hidden: Sequence[str]) -> list[str]:
    """A saved view's columns: the time, then the events table's columns not hidden, as event fields."""
    return ["timestamp", *(COLUMN_FIELDS[key] for key, _ in COLUMNS if key not in hidden)]


def hidden_keys(fields: Sequence[str]) -> str | None:
    """The events table's columns to hide for a view's `fields` (None: it keeps the browser's choice)."""
    if not fields:
        return None
    return ",".join(key for key, _ in COLUMNS if COLUMN_FIELDS[key] not in fields)


def _rows(views: Sequence[SavedView], principal: Principal, page: str) -> list[dict[str, str]]:
    """The views as the menu lists them: own and shared, each with the link that opens it."""
    rows = []
    for view in views:
        notes = [note for note, shown in (("shared", view.shared), (view.page, view.page != page)) if shown]
        rows.append(
            {
                "id": view.id,
                "name": view.name,
                "note": ", ".join(notes),
                "owned": "1" if view.owner == principal.sub else "",
                "href": saved_view_href(view.page, view.query),
                "hide": hidden if (hidden := hidden_keys(view.columns)) is not None else "*",
            }
        )
    return rows


class ViewsState(rx.State):
    """The caller's saved views, the Save dialog and the Manage dialog."""

    views: list[dict[str, str]] = []
    save_open: bool = False
    manage_open: bool = False
    renaming: str = ""  # the id of the view whose name is being edited
    error: str = ""  # why the last change was refused

    @rx.var
    def owned(self) -> list[dict[str, str]]:
        """The views the caller may rename, update and delete."""
        return [view for view in self.views if view["owned"]]

    def _page(self) -> str:
        page = self.router.url.path.strip("/").split("/")[0]
        return page if page in VIEW_PAGES else "events"

    def _current(self) -> dict[str, str]:
        """The page's current view, as a saved view keeps it (filters, time range, page size)."""
        params = url_params(self.router.url.query)
        if self._page() == "statistics":
            params = stats_params(params)
        return saved_query(ViewQuery.from_params(params))

    async def _change(self, principal: Principal, work: Any, done: str) -> AsyncIterator[Any]:
        """Run one change of the caller's views, then list them again; a refusal is shown as the domain says."""
        self.error = ""
        try:
            await in_thread(work, writes=True)
        except REFUSED as exc:
            self.error = str(exc).removeprefix("Value error, ")
            yield rx.toast.error(self.error, close_button=True)
            return
        except SQLAlchemyError:
            logger.exception("Changing a saved view failed")
            self.error = FAILED
            yield rx.toast.error(FAILED, close_button=True)
            return
        self.save_open = False
        self.renaming = ""
        await self._list(principal)
        yield rx.toast.success(done, close_button=True)

    async def _list(self, principal: Principal) -> None:
        page = self._page()
        self.views = await in_thread(lambda s: _rows(list_views(s, principal), principal, page))

    @rx.event
    @signed_in
    async def refresh(self, principal: Principal) -> AsyncIterator[Any]:
        """on_load: the views the caller sees (its own, and those shared in its scope)."""
        try:
            await self._list(principal)
        except SQLAlchemyError:
            logger.exception("Listing saved views failed")
        yield

    @rx.event
    def set_save_open(self, open_: bool) -> None:
        """Show or hide the Save dialog."""
        self.save_open, self.error = bool(open_), ""

    @rx.event
    def set_manage_open(self, open_: bool) -> None:
        """Show or hide the Manage dialog."""
        self.manage_open, self.renaming, self.error = bool(open_), "", ""

    @rx.event
    def start_rename(self, view_id: str) -> None:
        """Edit one view's name in place."""
        self.renaming, self.error = view_id, ""

    async def _columns(self) -> list[str]:
        """The columns of the view shown: those of the events table (none on the statistics page)."""
        if self._page() != "events":
            return []
        return shown_fields((await self.get_state(EventsState)).hidden)

    @rx.event
    async def open_view(self, view_id: str) -> EventSpec | None:
        """Go to a saved view (its page, filters, time range and the columns it was saved with)."""
        view = next((view for view in self.views if view["id"] == view_id), None)
        if view is None:
            return None
        if view["hide"] != "*":
            # Set in the state, which stores it in the browser as the Columns chooser does: a
            # script writing localStorage raced the navigation, whose page could keep the old
            # choice (seen on a loaded machine: the view's hidden column stayed shown).
            (await self.get_state(EventsState)).hidden_columns = view["hide"]
        return rx.redirect(view["href"])

    @rx.event
    @signed_in
    async def save(self, principal: Principal, form_data: dict[str, Any]) -> AsyncIterator[Any]:
        """Save the current view under a name, private or shared with everyone of the same scope."""
        name = str(form_data.get("name") or "").strip()
        change = ViewChange(name=name, page=self._page(), shared=bool(form_data.get("shared")), query=self._current())
        async for update in self._change(principal, lambda s: create_view(s, principal, change), f"Saved {name!r}."):
            yield update

    @rx.event
    @signed_in
    async def rename(self, principal: Principal, form_data: dict[str, Any]) -> AsyncIterator[Any]:
        """Give one of the caller's views a new name."""
        view_id, name = self.renaming, str(form_data.get("name") or "").strip()
        change = ViewChange(name=name)
        async for update in self._change(
            principal, lambda s: update_view(s, principal, view_id, change), f"Renamed to {name!r}."
        ):
            yield update

    @rx.event
    @signed_in
    async def overwrite(self, principal: Principal, view_id: str) -> AsyncIterator[Any]:
        """Replace one of the caller's views with the current view (page, filters, time range, columns)."""
        change = ViewChange(page=self._page(), query=self._current(), columns=await self._columns())
        async for update in self._change(
            principal, lambda s: update_view(s, principal, view_id, change), "Updated with the current view."
        ):
            yield update

    @rx.event
    @signed_in
    async def delete(self, principal: Principal, view_id: str) -> AsyncIterator[Any]:
        """Delete one of the caller's views."""
        async for update in self._change(principal, lambda s: delete_view(s, principal, view_id), "View deleted."):
            yield update
