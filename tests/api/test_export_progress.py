"""A console export's progress is the server's count of the rows streamed, and Cancel stops the stream."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from audit_app.audit import export_progress
from audit_app.audit.access import export_events
from audit_app.audit.export_progress import ExportCancelledError, ExportTracker, read_progress, request_cancel
from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import ingest_events
from audit_app.auth import Principal, issue_download_token
from audit_app.models import AuditEventIn, AuditLog, ExportProgress
from audit_app.settings import Settings
from tests.api.helpers import LIST, at

EXPORT = LIST + "export"
EVENTS = 3500  # the CSV stream hands on 1,000 rows a chunk: four chunks
EXPORTER = Principal(sub="exporter", email="", role="super_admin", scopes=frozenset({"audit:read", "audit:export"}))
OTHER = Principal(sub="someone-else", email="", role="super_admin", scopes=frozenset({"audit:read", "audit:export"}))


@pytest.fixture
def many(session: Session) -> None:
    """EVENTS events in three tenants."""
    events = [
        AuditEventIn(tenant_id=f"t{n % 3}", actor_id=f"a{n % 17}", action="user.login", timestamp=at(1 + n % 20))
        for n in range(EVENTS)
    ]
    ingest_events(session, events)
    session.commit()


def _ended(session: Session) -> AuditLog:
    session.expire_all()
    (ended,) = session.execute(select(AuditLog).where(col(AuditLog.action) == "audit.export.end")).scalars()
    return ended


@pytest.mark.usefixtures("many")
def test_a_download_records_its_rows_as_they_stream_and_ends_complete(
    client: TestClient, settings: Settings, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_progress, "UPDATE_SECONDS", 0.0)  # write after every chunk
    download_id = str(uuid.uuid4())
    export = export_events(EXPORTER, AuditFilters(), "csv", download_id=download_id)
    assert read_progress(session, download_id, EXPORTER.sub) == export_progress.ProgressView(0, "running", False)
    seen = []
    for _chunk in export.chunks:
        session.expire_all()
        view = read_progress(session, download_id, EXPORTER.sub)
        assert view is not None
        seen.append((view.rows, view.state))
    # Written when the server asks for the next chunk, i.e. has sent the last one on (a chunk: 1,000 lines).
    assert seen == [(0, "running"), (999, "running"), (1999, "running"), (2999, "running")]
    session.expire_all()
    assert read_progress(session, download_id, EXPORTER.sub) == export_progress.ProgressView(EVENTS, "complete", False)
    assert read_progress(session, download_id, OTHER.sub) is None  # another user never sees it
    assert _ended(session).details["complete"] is True

    # Through the route: the download token's jti names the record; a bearer-token export keeps none.
    token_id = str(uuid.uuid4())
    token = issue_download_token(settings, EXPORTER, token_id=token_id)
    response = client.get(EXPORT, params={"download_token": token, "tenant_id": "t1"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    session.expire_all()
    record = session.get(ExportProgress, token_id)
    assert record is not None
    assert (record.rows, record.state, record.actor_id) == (len(rows), "complete", EXPORTER.sub)
    assert len(rows) == EVENTS // 3 + (1 if EVENTS % 3 > 1 else 0)
    assert len(session.execute(select(ExportProgress)).scalars().all()) == 2


@pytest.mark.usefixtures("many")
def test_cancel_stops_the_stream_and_the_end_record_says_incomplete(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_progress, "UPDATE_SECONDS", 0.0)
    download_id = str(uuid.uuid4())
    export = export_events(EXPORTER, AuditFilters(), "csv", download_id=download_id)
    next(export.chunks)  # the header and 999 rows
    next(export.chunks)  # 1,000 more
    assert request_cancel(session, download_id, OTHER.sub) is False  # only the one who started it
    assert request_cancel(session, download_id, EXPORTER.sub) is True
    with pytest.raises(ExportCancelledError):
        list(export.chunks)  # the stream stops at its next update: the response ends unfinished
    session.expire_all()
    view = read_progress(session, download_id, EXPORTER.sub)
    assert view is not None
    assert (view.state, view.cancel_requested) == ("cancelled", True)
    assert view.rows < EVENTS
    ended = _ended(session)
    assert (ended.details["complete"], ended.details["cancelled"], ended.details["rows"]) == (False, True, view.rows)
    assert request_cancel(session, download_id, EXPORTER.sub) is False  # it has already ended


@pytest.mark.usefixtures("many")
def test_a_client_that_hangs_up_leaves_the_record_interrupted(session: Session) -> None:
    download_id = str(uuid.uuid4())
    export = export_events(EXPORTER, AuditFilters(), "jsonl", download_id=download_id)
    next(export.chunks)
    export.chunks.close()
    session.expire_all()
    view = read_progress(session, download_id, EXPORTER.sub)
    assert view is not None
    assert view.state == "interrupted"
    assert "cancelled" not in _ended(session).details


def test_the_rows_per_second_cap_paces_the_stream_by_the_rows_sent() -> None:
    """AUDIT_EXPORT_ROWS_PER_SECOND: after each chunk the stream sleeps until its rows are due."""
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    tracker = ExportTracker(None, rows_per_second=1000, clock=lambda: now[0], sleep=sleep)
    tracker.tick(500)  # due at 0.5 s
    now[0] += 0.2
    tracker.tick(1000)  # due at 1.0 s, 0.7 s have passed
    now[0] += 2.0
    tracker.tick(2000)  # late already: no sleep
    assert slept == pytest.approx([0.5, 0.3])
    unpaced = ExportTracker(None, clock=lambda: now[0], sleep=sleep)
    unpaced.tick(10**9)
    assert len(slept) == 2
