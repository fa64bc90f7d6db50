"""The Streams page: the log streams in the caller's scope with their health, the create and
edit forms, and the actions (test, pause, resume, replay, delete).

Every handler verifies the session and the `audit:admin` scope first, then calls the same
domain functions the API's stream routes call (audit/streams.py, audit/stream_delivery.py), on
the primary database off the event loop. A replay's progress is followed by a background event,
so the page stays responsive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import reflex as rx
from pydantic import ValidationError
from reflex.event import EventSpec
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from audit_app.audit.feed import FeedCursorError
from audit_app.audit.scope import Scope
from audit_app.audit.stream_delivery import send_test_event
from audit_app.audit.stream_targets import TargetPolicy
from audit_app.audit.streams import (
    SPEC,
    STREAM_TYPES,
    CredentialsUnreadableError,
    ReplayProgress,
    StreamConfigError,
    StreamKeyMissingError,
    StreamNotFoundError,
    change_stream,
    create_stream,
    credential_names,
    delete_stream,
    get_stream,
    list_streams,
    replay_progress,
    replay_stream,
    set_status,
    stream_lag,
)
from audit_app.auth import SCOPE_ADMIN, ForbiddenError, Principal
from audit_app.settings import get_settings
from audit_app.ui.session import in_thread
from audit_app.ui.state.auth import current_principal
from audit_app.ui.state.zone import zone_of
from audit_app.ui.stream_form import BASE_FIELDS, change_input, errors_by_field, form_values, spec_input, stream_row
from audit_app.ui.url_filters import FilterError, parse_time, typed_time

logger = logging.getLogger(__name__)
T = TypeVar("T")
NEEDS_ADMIN = (
    f"Log streams are managed with the {SCOPE_ADMIN} scope, which your sign-in does not have. "
    "Ask an administrator of your tenant or partner for it."
)
LOAD_FAILED = "The streams could not be loaded (the database did not answer). Try again in a moment."
REPLAY_POLL_SECONDS = 1.0
REPLAY_FOLLOW_SECONDS = 3600.0  # a replay still running after this long is left to the list's health
EMPTY_FORM = dict.fromkeys(BASE_FIELDS, "") | {"format": "json"}


async def _write(work: Callable[[Session], T]) -> T:
    """Domain work on the primary database (what the page shows next must include it)."""
    return await in_thread(work, writes=True)


class StreamsState(rx.State):
    """The list, the form (create or edit), the last test answer and the replay in progress."""

    allowed: bool = False
    denied: str = ""
    loading: bool = True
    error: str = ""
    notice: str = ""
    streams: list[dict[str, str]] = []
    owners: list[dict[str, str]] = []  # the owners a new stream may have: value and label
    form_open: bool = False
    editing: str = ""  # the id of the stream being edited ("" creates one)
    form_type: str = "syslog"
    form: dict[str, str] = dict(EMPTY_FORM)
    form_version: int = 0
    field_errors: dict[str, str] = {}
    form_error: str = ""
    saving: bool = False
    test_answer: dict[str, str] = {}
    confirm_delete: dict[str, str] = {}
    replay_for: dict[str, str] = {}
    replay_error: str = ""
    replay: dict[str, str] = {}  # the replay followed: stream, name, status, delivered, total
    _replay_total: int = 0

    @rx.var
    def replay_percent(self) -> int:
        """Events delivered as a percentage of the replay's total."""
        total = int(self.replay.get("total", "0") or 0)
        done = int(self.replay.get("delivered", "0") or 0)
        return min(100, done * 100 // total) if total else (100 if self.replay.get("status") == "done" else 0)

    @rx.var
    def replay_text(self) -> str:
        """What the replay panel says."""
        name, total = self.replay.get("name", ""), int(self.replay.get("total", "0") or 0)
        done = f"{int(self.replay.get('delivered', '0') or 0):,} of {total:,} events delivered"
        return {
            "running": f"Replaying {name!r}: {done}",
            "paused": f"Replay of {name!r} waits: the stream is paused ({done})",
            "failing": f"Replay of {name!r} stopped: the stream is failing ({done})",
            "done": f"Replay of {name!r} finished: {done}.",
            "gone": f"The stream {name!r} was deleted during its replay.",
            "unfollowed": f"Replay of {name!r} still running after an hour ({done}); the list shows its lag.",
        }.get(self.replay.get("status", ""), "")

    async def _admin(self) -> Principal | EventSpec | None:
        """The caller when it may manage streams; else the redirect to sign-in, or None (told why)."""
        principal = await current_principal(self)
        if not isinstance(principal, Principal):
            return principal
        if SCOPE_ADMIN not in principal.scopes:
            self.allowed, self.denied, self.streams = False, NEEDS_ADMIN, []
            return None
        self.allowed, self.denied = True, ""
        return principal

    async def _refresh(self, principal: Principal) -> None:
        zone = await zone_of(self)

        def rows(session: Session) -> list[dict[str, str]]:
            return [stream_row(s, stream_lag(session, s), zone) for s in list_streams(session, principal)]

        try:
            self.streams = await _write(rows)
            self.error = ""
        except SQLAlchemyError:
            logger.exception("Loading the log streams failed")
            self.error = LOAD_FAILED

    @rx.event
    async def load(self) -> EventSpec | None:
        """on_load: the streams in the caller's scope with their health, and the owners it may pick."""
        self.loading = True
        principal = await self._admin()
        if not isinstance(principal, Principal):
            self.loading = False
            return principal
        scope = Scope.of(principal)

        def owners(session: Session) -> list[dict[str, str]]:
            if scope.tenant_id:
                return [{"value": "", "label": f"tenant {scope.tenant_id}"}]
            mine = "platform (every tenant)" if scope.everything else f"partner {scope.partner_id} (all its tenants)"
            found = [{"value": "", "label": mine}]
            if scope.everything:
                found += [{"value": f"partner:{p}", "label": f"partner {p}"} for p in scope.partner_ids(session)]
            return found + [{"value": f"tenant:{t}", "label": f"tenant {t}"} for t in scope.tenant_ids(session)]

        try:
            self.owners = await _write(owners)
        except SQLAlchemyError:
            logger.exception("Loading the stream owners failed")
        await self._refresh(principal)
        self.loading = False
        return None

    @rx.event
    async def reload(self) -> EventSpec | None:
        """Show the current health again."""
        principal = await self._admin()
        if isinstance(principal, Principal):
            await self._refresh(principal)
            return None
        return principal

    @rx.event
    def open_create(self) -> None:
        """An empty form for a new stream."""
        self.editing, self.form_type = "", "syslog"
        self.form = dict(EMPTY_FORM)
        self._reset_form()

    def _reset_form(self) -> None:
        self.field_errors, self.form_error, self.notice = {}, "", ""
        self.form_open = True
        self.form_version += 1

    @rx.event
    def set_form_type(self, kind: str) -> None:
        """Pick the type of a new stream (its own settings are shown)."""
        if kind in STREAM_TYPES and not self.editing:
            self.form_type = kind
            self.field_errors, self.form_error = {}, ""

    @rx.event
    def close_form(self) -> None:
        """Leave the form without saving."""
        self.form_open, self.editing = False, ""
        self.field_errors, self.form_error = {}, ""

    @rx.event
    async def open_edit(self, stream_id: str) -> EventSpec | None:
        """The edit form of a stream, filled with its settings (credentials never shown)."""
        principal = await self._admin()
        if not isinstance(principal, Principal):
            return principal
        secret_key = get_settings().secret_key

        def read(session: Session) -> tuple[str, dict[str, str]]:
            stream = get_stream(session, principal, stream_id)
            return stream.type, form_values(stream, credential_names(secret_key, stream))

        try:
            self.form_type, self.form = await _write(read)
        except StreamNotFoundError as exc:
            self.error = str(exc)
            return None
        self.editing = stream_id
        self._reset_form()
        return None

    @rx.event
    async def save(self, form: dict[str, Any]) -> AsyncIterator[EventSpec | None]:
        """Create the stream, or apply the edit; the domain's refusals are shown by field."""
        principal = await self._admin()
        if not isinstance(principal, Principal):
            yield principal
            return
        settings = get_settings()
        secret_key, targets = settings.secret_key, TargetPolicy.of(settings)
        kind, editing = self.form_type, self.editing
        # what was typed stays shown; a credential never goes back to the browser
        kept = {key: str(v) for key, v in form.items() if key in BASE_FIELDS or key.startswith("options.")}
        if self.editing:  # the owner is shown, not submitted
            kept["owner"] = self.form.get("owner", "")
        self.form = kept | {key: value for key, value in self.form.items() if key.endswith(":set")}
        self.field_errors, self.form_error, self.saving = {}, "", True
        yield None  # the button shows it is saving
        try:
            if editing:
                change = change_input(form, kind)
                stream = await _write(lambda s: change_stream(s, principal, editing, change, secret_key, targets))
                done = f"Saved stream {stream.name!r}."
            else:
                spec = SPEC.validate_python(spec_input(form, kind))
                stream = await _write(lambda s: create_stream(s, principal, spec, secret_key, targets))
                done = f"Created stream {stream.name!r}: it delivers every new event of its scope."
        except (ValidationError, StreamConfigError) as exc:
            self.field_errors, self.form_error = errors_by_field(exc)
            if not self.field_errors and not self.form_error:
                self.form_error = "The settings were refused."
        except (ForbiddenError, StreamNotFoundError, StreamKeyMissingError, CredentialsUnreadableError) as exc:
            self.form_error = str(exc)
        else:
            self.form_open, self.editing, self.notice = False, "", done
            await self._refresh(principal)
        self.saving = False

    async def _act(self, stream_id: str, work: Callable[[Session, Principal], str]) -> EventSpec | None:
        principal = await self._admin()
        if not isinstance(principal, Principal):
            return principal
        try:
            self.notice = await _write(lambda s: work(s, principal))
            self.error = ""
        except (StreamNotFoundError, ForbiddenError) as exc:
            self.error = str(exc)
        await self._refresh(principal)
        return None

    @rx.event
    async def pause(self, stream_id: str) -> EventSpec | None:
        """Stop delivering (the position is kept)."""
        return await self._act(
            stream_id, lambda s, p: f"Paused {set_status(s, p, stream_id, 'paused').name!r}: its position is kept."
        )

    @rx.event
    async def resume(self, stream_id: str) -> EventSpec | None:
        """Deliver again from the position (a paused or failing stream)."""
        return await self._act(
            stream_id,
            lambda s, p: f"Resumed {set_status(s, p, stream_id, 'active').name!r}: it delivers from where it stopped.",
        )

    @rx.event
    async def send_test(self, stream_id: str) -> AsyncIterator[EventSpec | None]:
        """Send one `audit.stream.test` event now and show the receiver's answer."""
        principal = await self._admin()
        if not isinstance(principal, Principal):
            yield principal
            return
        settings = get_settings()
        name = next((row["name"] for row in self.streams if row["id"] == stream_id), "")
        self.test_answer = {"stream": stream_id, "name": name, "ok": "", "answer": "Sending a test event…"}
        yield None  # shown while the receiver answers
        try:
            answer = await _write(
                lambda s: send_test_event(
                    s,
                    principal,
                    stream_id,
                    settings.secret_key,
                    settings.stream_timeout_seconds,
                    TargetPolicy.of(settings),
                )
            )
        except StreamNotFoundError as exc:
            self.test_answer = {"stream": stream_id, "name": name, "ok": "no", "answer": str(exc)}
            return
        status = f" (HTTP {answer.status})" if answer.status else ""
        self.test_answer = {
            "stream": stream_id,
            "name": name,
            "ok": "yes" if answer.ok else "no",
            "answer": (answer.answer or "accepted") + status,
            "event_id": answer.event_id,
        }

    @rx.event
    def ask_delete(self, stream_id: str) -> None:
        """Ask before deleting a stream."""
        name = next((row["name"] for row in self.streams if row["id"] == stream_id), "")
        self.confirm_delete = {"id": stream_id, "name": name} if name else {}

    @rx.event
    def cancel_delete(self) -> None:
        """Keep the stream."""
        self.confirm_delete = {}

    @rx.event
    async def delete(self) -> EventSpec | None:
        """Delete the stream the user confirmed (recorded as `audit.stream.delete`)."""
        stream_id, name = self.confirm_delete.get("id", ""), self.confirm_delete.get("name", "")
        self.confirm_delete = {}
        if not stream_id:
            return None

        def work(session: Session, principal: Principal) -> str:
            delete_stream(session, principal, stream_id)
            return f"Deleted stream {name!r}."

        return await self._act(stream_id, work)

    @rx.event
    def ask_replay(self, stream_id: str) -> None:
        """Ask from when to redeliver."""
        name = next((row["name"] for row in self.streams if row["id"] == stream_id), "")
        self.replay_for = {"id": stream_id, "name": name} if name else {}
        self.replay_error = ""

    @rx.event
    def cancel_replay(self) -> None:
        """Close the replay form."""
        self.replay_for, self.replay_error = {}, ""

    @rx.event
    async def start_replay(self, form: dict[str, Any]) -> Any:
        """Move the stream back to redeliver from a time, then follow the delivery."""
        principal = await self._admin()
        if not isinstance(principal, Principal):
            return principal
        stream_id, name = self.replay_for.get("id", ""), self.replay_for.get("name", "")
        try:
            since = parse_time(typed_time(str(form.get("since", "")), await zone_of(self)), "From", "since")
        except FilterError as exc:
            self.replay_error = str(exc)
            return None
        if since is None:
            self.replay_error = "Give the time to redeliver from."
            return None
        try:
            _stream, total = await _write(lambda s: replay_stream(s, principal, stream_id, since=since))
        except (StreamNotFoundError, StreamConfigError, FeedCursorError) as exc:
            self.replay_error = str(exc).removeprefix("Value error, ")
            return None
        self.replay_for, self.replay_error = {}, ""
        self._replay_total = total
        self.replay = {"stream": stream_id, "name": name, "status": "running", "delivered": "0", "total": str(total)}
        await self._refresh(principal)
        return StreamsState.follow_replay

    @rx.event(background=True)
    async def follow_replay(self) -> None:
        """Poll the replayed stream until its events are delivered (or another replay replaces it)."""
        async with self:
            stream_id, total = self.replay.get("stream", ""), self._replay_total
            principal = await self._admin()
        if not stream_id or not isinstance(principal, Principal):
            return
        give_up = time.monotonic() + REPLAY_FOLLOW_SECONDS
        while time.monotonic() < give_up:
            try:
                progress: ReplayProgress | None = await _write(
                    lambda s: replay_progress(s, principal, stream_id, total)
                )
            except StreamNotFoundError:
                progress = None
            async with self:
                if self.replay.get("stream") != stream_id:
                    return
                if progress is None:
                    self.replay = self.replay | {"status": "gone"}
                    return
                done = progress.delivered >= progress.total
                status = "done" if done else progress.status if progress.status != "active" else "running"
                self.replay = self.replay | {"delivered": str(progress.delivered), "status": status}
                if done:
                    await self._refresh(principal)
                    return
            await asyncio.sleep(REPLAY_POLL_SECONDS)
        async with self:
            if self.replay.get("stream") == stream_id:
                self.replay = self.replay | {"status": "unfollowed"}

    @rx.event
    def dismiss(self) -> None:
        """Hide the notice, the test answer and an ended replay."""
        self.notice = ""
        self.test_answer = {}
        if self.replay.get("status") != "running":
            self.replay = {}
