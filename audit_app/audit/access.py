"""Reading the audit log and recording that it was read: each action is one function here.

`view_event` (one event, `audit.view`) and `export_events` (the filtered view, `audit.export`)
serve the API and the console alike. They read from the read database (a replica, when
configured) and write their access records to the primary, each in its own committed session.

Who commits: a domain action (these, `ingest_batch`, `verify_chains`, the retention changes,
`record_access`) commits its own work; the building blocks (`ingest_events`, `record_access(...,
commit=False)`) join the caller's transaction and never commit.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from audit_app.audit.bundle import bundle_export
from audit_app.audit.chain import iso_utc
from audit_app.audit.export import (
    COPY_FORMATS,
    EXCEL_BOM,
    copy_export,
    csv_export,
    iter_events,
    json_lines,
    jsonl_export,
)
from audit_app.audit.export_progress import (
    CANCELLED,
    COMPLETE,
    INTERRUPTED,
    ExportCancelledError,
    ExportTracker,
)
from audit_app.audit.filters import AuditFilters, check_filters_in_scope
from audit_app.audit.ingest import record_access
from audit_app.audit.ocsf import to_ocsf
from audit_app.audit.query import get_event, time_order
from audit_app.audit.signing import ExportKeys, key_id
from audit_app.auth import Principal
from audit_app.db import session_scope
from audit_app.models import AuditLog, utcnow

logger = logging.getLogger(__name__)
MAX_LOG_ID_LENGTH = 64
EXPORT_STARTED, EXPORT_ENDED = "audit.export", "audit.export.end"


class EventNotFoundError(LookupError):
    """No event with this id within the caller's scope (HTTP 404; outside the scope looks the same)."""

    def __init__(self) -> None:
        super().__init__("Audit log entry not found.")


class ExportUnavailableError(Exception):
    """The export's access record could not be written, so nothing is exported (HTTP 503)."""

    def __init__(self) -> None:
        super().__init__("The export cannot be recorded right now, so it was not started; retry shortly.")


@dataclass(frozen=True)
class Client:
    """Where a request comes from, for access records."""

    ip_address: str | None = None
    user_agent: str | None = None


def view_event(principal: Principal, log_id: str, client: Client = Client()) -> AuditLog:
    """One event within the caller's scope, after recording that the caller saw it (`audit.view`).

    EventNotFoundError when it does not exist or is outside the scope (no leak).
    """
    event = None
    if len(log_id) <= MAX_LOG_ID_LENGTH and "\x00" not in log_id:
        with session_scope(read=True) as session:
            event = get_event(session, principal, log_id)
    if event is None:
        raise EventNotFoundError
    with session_scope() as primary:
        record_access(
            primary,
            principal,
            "audit.view",
            resource_id=event.id,
            tenant_id=event.tenant_id,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
        )
    return event


@dataclass(frozen=True)
class ExportStream:
    """A recorded, not yet started export: its resolved filters, its record's id, and its chunks."""

    filters: AuditFilters
    record_id: str
    chunks: Generator[str | bytes, None, None]


def export_events(
    principal: Principal,
    filters: AuditFilters,
    fmt: str,
    client: Client = Client(),
    *,
    excel: bool = False,
    keys: ExportKeys | None = None,
    now: datetime | None = None,
    download_id: str | None = None,
    rows_per_second: int = 0,
    order: str = "desc",
) -> ExportStream:
    """Record an export (`audit.export`: who, filters, format, when) and return its chunks to stream.

    The record is written before the first byte: ForbiddenError (403) when a filter leaves the
    scope, ExportUnavailableError (503) when the record cannot be written (nothing leaves
    unaudited). Without `end_time` the window ends now. The stream, once run or closed, appends
    `audit.export.end` naming the record, with the row count and whether it completed (a
    client that disconnects or a failing read leaves `complete: false`).

    A console download names its `download_id` (the download token's `jti`): its rows streamed
    are then recorded as it goes (audit/export_progress.py), and a cancel request from the
    console stops it with `cancelled: true` in the end record. `rows_per_second` caps the pace
    of the stream (0: none). Rows come newest first, or oldest first with `order="asc"` (recorded as `sort`).
    """
    with session_scope(read=True) as session:
        check_filters_in_scope(session, principal, filters)
    exported_at = now or utcnow()
    filters = filters.replace(end_time=filters.end_time or exported_at)
    time_order(order)  # ValueError before anything is recorded
    details: dict[str, Any] = {"format": fmt, "started_at": iso_utc(exported_at)} | ({"excel": True} if excel else {})
    details |= {"sort": order} if order != "desc" else {}
    tracker = ExportTracker(download_id, rows_per_second=rows_per_second)
    try:
        with session_scope() as primary:
            record_id = record_access(
                primary,
                principal,
                EXPORT_STARTED,
                filters=filters,
                details=details,
                ip_address=client.ip_address,
                user_agent=client.user_agent,
            )
        tracker.start(record_id, principal.sub)
    except Exception as exc:  # any reason the record cannot be written refuses the export
        raise ExportUnavailableError from exc
    chunks = _recorded_chunks(
        principal, filters, fmt, client, record_id, excel=excel, keys=keys, at=exported_at, tracker=tracker, order=order
    )
    return ExportStream(filters=filters, record_id=record_id, chunks=chunks)


def _recorded_chunks(
    principal: Principal,
    filters: AuditFilters,
    fmt: str,
    client: Client,
    record_id: str,
    *,
    excel: bool,
    keys: ExportKeys | None,
    at: datetime,
    tracker: ExportTracker,
    order: str,
) -> Generator[str | bytes, None, None]:
    """The export's chunks (own read session), then `audit.export.end` with the row count.

    A bundle's end record also carries the SHA-256 of its `events.csv` and the signing key's `kid`;
    a cancelled export's says `cancelled: true`. `tracker` hears the rows after each chunk.
    """
    rows = 0
    complete = False
    evidence: dict[str, Any] = {}

    def count_rows(n: int) -> None:
        nonlocal rows
        rows += n

    def counted_events(events: Iterator[AuditLog]) -> Iterator[AuditLog]:
        for event in events:
            count_rows(1)
            yield event

    def digested(digest: str) -> None:
        evidence["sha256"] = digest

    def formatted(session: Any) -> Iterator[str | bytes]:
        if fmt == "bundle":
            assert keys is not None
            evidence["kid"] = key_id(keys.signer().public_key())
            yield from bundle_export(
                session,
                principal,
                filters,
                keys=keys,
                exported_at=at,
                on_rows=count_rows,
                on_digest=digested,
                order=order,
            )
        elif fmt in COPY_FORMATS and session.get_bind().dialect.name == "postgresql":
            if excel:
                yield EXCEL_BOM
            yield from copy_export(session, principal, filters, fmt, on_rows=count_rows, order=order)
        elif fmt == "csv":
            if excel:
                yield EXCEL_BOM
            yield from csv_export(session, principal, filters, on_rows=count_rows, order=order)
        elif fmt == "ocsf":
            events = iter_events(session, principal, filters, order=order)
            yield from json_lines(to_ocsf(row) for row in counted_events(events))
        else:
            yield from jsonl_export(session, principal, filters, on_rows=count_rows, order=order)

    ended = INTERRUPTED
    try:
        with session_scope(read=True) as session:
            for chunk in formatted(session):
                yield chunk
                tracker.tick(rows)
        complete = True
        ended = COMPLETE
    except ExportCancelledError as exc:
        ended = CANCELLED
        evidence["cancelled"] = True
        logger.info("Export %s stopped: %s The response ends unfinished.", record_id, exc)
        raise  # the response ends unfinished: the browser sees a failed download, not a short file
    finally:
        try:
            with session_scope() as primary:
                record_access(
                    primary,
                    principal,
                    EXPORT_ENDED,
                    filters=filters,
                    resource_id=record_id,
                    details={"export_id": record_id, "format": fmt, "rows": rows, "complete": complete, **evidence},
                    ip_address=client.ip_address,
                    user_agent=client.user_agent,
                )
        finally:
            tracker.finish(rows, ended)
