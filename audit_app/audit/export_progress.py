"""The progress of a console export, counted by the server that streams it, and its cancellation.

The console mints the download token, so it knows the token's `jti` (the `download_id`). The
API worker that streams the export records the rows streamed under that id every
UPDATE_SECONDS and learns at the same moment whether the console asked it to stop; the console
worker (maybe another process) reads the record. Each record is seen and cancelled only by the
actor who started the export.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from audit_app.db import session_scope
from audit_app.models import ExportProgress, utcnow

logger = logging.getLogger(__name__)
UPDATE_SECONDS = 0.5  # between two writes of the row count (and two looks at a cancel request)
KEEP = timedelta(days=1)  # records older than this are removed when a new export starts
RUNNING, COMPLETE, CANCELLED, INTERRUPTED = "running", "complete", "cancelled", "interrupted"
ENDED = frozenset({COMPLETE, CANCELLED, INTERRUPTED})  # interrupted: the client left or a read failed


class ExportCancelledError(Exception):
    """The console asked to stop this export: the stream ends without completing its file."""

    def __init__(self, rows: int) -> None:
        super().__init__(f"The export was cancelled from the console after {rows:,} rows.")
        self.rows = rows


@dataclass(frozen=True)
class ProgressView:
    """What the console shows of one export."""

    rows: int
    state: str
    cancel_requested: bool


class ExportTracker:
    """Records an export's rows as they stream; stops it when cancelled; paces it to `rows_per_second`.

    `tick(rows)` is called after each chunk has been handed on, with the rows those chunks held.
    It writes at most every UPDATE_SECONDS (one UPDATE that also reads `cancel_requested`), and
    raises ExportCancelledError once a cancel request is seen. `rows_per_second` (0: no cap)
    sleeps between chunks so the stream never runs faster (AUDIT_EXPORT_ROWS_PER_SECOND).
    """

    def __init__(
        self,
        download_id: str | None,
        *,
        rows_per_second: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.download_id = download_id
        self.rows_per_second = rows_per_second
        self.clock, self.sleep = clock, sleep
        self.started = self.written = clock()

    def start(self, export_id: str, actor_id: str) -> None:
        """Create the record (0 rows, running), forgetting records older than KEEP."""
        if self.download_id is None:
            return
        now = utcnow()
        with session_scope() as session:
            session.execute(delete(ExportProgress).where(col(ExportProgress.started_at) < now - KEEP))
            session.add(
                ExportProgress(
                    download_id=self.download_id,
                    export_id=export_id,
                    actor_id=actor_id,
                    rows=0,
                    state=RUNNING,
                    started_at=now,
                    updated_at=now,
                )
            )
            session.commit()

    def tick(self, rows: int) -> None:
        """After a chunk: pace, then every UPDATE_SECONDS write `rows` and stop when cancelled."""
        if self.rows_per_second > 0:
            ahead = rows / self.rows_per_second - (self.clock() - self.started)
            if ahead > 0:
                self.sleep(ahead)
        if self.download_id is None or self.clock() - self.written < UPDATE_SECONDS:
            return
        self.written = self.clock()
        if self._write(rows, RUNNING):
            raise ExportCancelledError(rows)

    def finish(self, rows: int, state: str) -> None:
        """The final count and how it ended (complete, cancelled or interrupted)."""
        if self.download_id is not None:
            self._write(rows, state)

    def _write(self, rows: int, state: str) -> bool:
        """Store the count and state; whether a cancel was requested.

        The record only informs the console: when it cannot be written (a busy or failing
        database), the export goes on and the next update tries again.
        """
        try:
            with session_scope() as session:
                stmt = (
                    update(ExportProgress)
                    .where(col(ExportProgress.download_id) == self.download_id)
                    .values(rows=rows, state=state, updated_at=utcnow())
                    .returning(col(ExportProgress.cancel_requested))
                )
                cancel = session.execute(stmt).scalar()
                session.commit()
        except SQLAlchemyError:
            logger.warning("The progress of download %s could not be recorded", self.download_id, exc_info=True)
            return False
        return bool(cancel)


def read_progress(session: Session, download_id: str, actor_id: str) -> ProgressView | None:
    """The export's progress, when `actor_id` started it (None: not started yet, or not theirs)."""
    record = session.exec(
        select(ExportProgress).where(ExportProgress.download_id == download_id, ExportProgress.actor_id == actor_id)
    ).first()
    if record is None:
        return None
    return ProgressView(rows=record.rows, state=record.state, cancel_requested=record.cancel_requested)


def request_cancel(session: Session, download_id: str, actor_id: str) -> bool:
    """Ask the running export to stop (it stops at its next update); False when none of the actor's runs."""
    stmt = (
        update(ExportProgress)
        .where(
            col(ExportProgress.download_id) == download_id,
            col(ExportProgress.actor_id) == actor_id,
            col(ExportProgress.state) == RUNNING,
        )
        .values(cancel_requested=True)
    )
    changed = session.execute(stmt).rowcount  # type: ignore[attr-defined]
    session.commit()
    return bool(changed)
