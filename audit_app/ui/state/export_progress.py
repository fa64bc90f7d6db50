"""The progress of the console's export: rows the server has streamed so far, and Cancel.

The events page starts a download and hands its download id (the token's `jti`) here; `watch`,
a background event, reads the server's record of that export (audit/export_progress.py) every
POLL_SECONDS without holding the state, so the page stays responsive. The counts are the
server's, written by whichever worker streams the file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import reflex as rx
from sqlmodel import Session

from audit_app.audit.export_progress import ENDED, ProgressView, read_progress, request_cancel
from audit_app.auth import Principal
from audit_app.db import session_scope
from audit_app.settings import get_settings
from audit_app.ui.state.auth import current_principal

T = TypeVar("T")
POLL_SECONDS = 0.5
START_MARGIN = 30.0  # beyond the download token's lifetime: how long the browser may take to start the download
WAITING, RUNNING, CANCELLING, NOT_STARTED = "waiting", "running", "cancelling", "not_started"
ACTIVE = (WAITING, RUNNING, CANCELLING)


async def on_primary(work: Callable[[Session], T]) -> T:
    """`work(session)` on the primary database, off the event loop (the record is written there: no replica lag)."""

    def run() -> T:
        with session_scope() as session:
            return work(session)

    return await asyncio.to_thread(run)


class ExportProgressState(rx.State):
    """The console's last export: its status, rows sent of the total, and the Cancel button."""

    status: str = ""  # "" (none), waiting, running, cancelling, complete, cancelled, interrupted, not_started
    rows_sent: int = 0
    total: int = 0
    described: str = ""
    _download_id: str = ""
    _actor_id: str = ""

    @rx.var
    def active(self) -> bool:
        """Whether the export is still running (Cancel is offered)."""
        return self.status in ACTIVE

    @rx.var
    def percent(self) -> int:
        """Rows sent as a percentage of the rows the export holds."""
        return min(100, self.rows_sent * 100 // self.total) if self.total else 0

    @rx.var
    def message(self) -> str:
        """What the progress panel says."""
        sent = f"{self.rows_sent:,} of {self.total:,} rows sent"
        stopped = f"after {self.rows_sent:,} of {self.total:,} rows; the file is incomplete."
        return {
            WAITING: "Export starting: waiting for the download to begin…",
            RUNNING: f"Export {self.described}: {sent}",
            CANCELLING: f"Cancelling the export: {sent}",
            "complete": f"Export finished: {sent}.",
            "cancelled": f"Export cancelled {stopped}",
            "interrupted": f"Export interrupted {stopped}",
            NOT_STARTED: "The download did not start; export again.",
        }.get(self.status, "")

    def follow(self, download_id: str, actor_id: str, total: int, described: str) -> None:
        """Show the export started with this download id (called by the events page)."""
        self._download_id, self._actor_id = download_id, actor_id
        self.total, self.described, self.rows_sent, self.status = total, described, 0, WAITING

    @rx.event(background=True)
    async def watch(self) -> None:
        """Poll the server's record of the export until it ends (or another export replaces it)."""
        async with self:
            download_id, actor_id = self._download_id, self._actor_id
        if not download_id:
            return
        give_up = time.monotonic() + get_settings().download_token_ttl + START_MARGIN
        while True:
            view: ProgressView | None = await on_primary(lambda s: read_progress(s, download_id, actor_id))
            async with self:
                if self._download_id != download_id:
                    return
                if view is None:
                    if time.monotonic() > give_up:
                        self.status = NOT_STARTED
                        return
                else:
                    self.rows_sent = view.rows
                    if view.state in ENDED:
                        self.status = view.state
                        return
                    self.status = CANCELLING if view.cancel_requested else RUNNING
            await asyncio.sleep(POLL_SECONDS)

    @rx.event
    async def cancel(self) -> Any:
        """Ask the server to stop streaming the export; `watch` shows when it has stopped."""
        principal = await current_principal(self)
        if not isinstance(principal, Principal):
            return principal
        download_id = self._download_id
        if not download_id or principal.sub != self._actor_id or self.status not in ACTIVE:
            return None
        if await on_primary(lambda s: request_cancel(s, download_id, principal.sub)):
            self.status = CANCELLING
            return None
        return rx.toast.info("The download has not begun yet; cancel once rows are being sent.", close_button=True)

    @rx.event
    def dismiss(self) -> None:
        """Hide the panel of an export that has ended."""
        if self.status not in ACTIVE:
            self.status = ""
            self._download_id = ""
