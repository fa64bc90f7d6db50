"""Log streams over HTTP (`/api/v1/admin/audit/streams`), over `audit_app.audit.streams`.

Scope `audit:admin`; tenant admins manage their tenant's streams, partner admins their
partner's and its tenants', super admins any. Another scope's stream answers 404 like a missing one.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audit_app.api.deps import AdminPrincipal, SessionDep, SettingsDep
from audit_app.audit.feed import FeedCursorError
from audit_app.audit.stream_delivery import send_test_event
from audit_app.audit.stream_targets import TargetPolicy
from audit_app.audit.streams import (
    CredentialsUnreadableError,
    StreamChange,
    StreamConfigError,
    StreamSpec,
    change_stream,
    config_errors,
    create_stream,
    credential_names,
    delete_stream,
    get_stream,
    list_streams,
    position_cursor,
    replay_stream,
    set_status,
    stream_lag,
)
from audit_app.models import LogStream, utc

router = APIRouter(prefix="/api/v1/admin/audit/streams", tags=["Log streams"])
StreamIdPath = Annotated[str, Path(min_length=1, max_length=36, pattern=r"^[0-9a-f-]+$")]


class StreamHealth(BaseModel):
    """How a stream is doing: lag (events, capped, and seconds), last success and error, counts."""

    lag_events: int
    lag_capped: bool = Field(description="more events are pending than counted (lag_events+)")
    lag_seconds: float = Field(description="age of the oldest event not yet delivered (0: none pending)")
    last_success_at: datetime | None
    last_error: str | None = Field(description="the receiver's last answer to a failed delivery")
    last_error_at: datetime | None
    failing_since: datetime | None = Field(description="start of the current run of failures")
    delivered: int = Field(description="events acknowledged by the receiver")
    failed: int = Field(description="failed delivery attempts")
    worker: str | None = Field(description="the worker delivering it now, when one holds it")


class StreamOut(BaseModel):
    """A stream as its administrators see it: configuration without credential values, and health."""

    id: str
    name: str
    type: str
    target: str
    format: str
    tenant_id: str | None
    partner_id: str | None
    actions: list[str]
    action_prefixes: list[str]
    results: list[str]
    options: dict[str, Any]
    credentials_set: list[str] = Field(description="names of the stored credentials (values are write-only)")
    status: Literal["active", "paused", "failing"]
    position: str = Field(description="where the stream stands, as a feed cursor (`after`)")
    created_by: str
    created_at: datetime
    updated_at: datetime
    health: StreamHealth


class StreamList(BaseModel):
    """The streams in the caller's scope, by name."""

    streams: list[StreamOut]


class StreamDeleted(BaseModel):
    """A deleted stream and the event recording it."""

    id: str
    deleted: bool = True
    audit_event_id: str


class ReplayIn(BaseModel):
    """Where to redeliver from: events ingested at or after `since`, or after a feed `cursor`."""

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = None
    cursor: str | None = Field(default=None, min_length=1, max_length=512)


class ReplayOut(BaseModel):
    """The stream after the replay was set, and how many events it has to deliver now."""

    stream: StreamOut
    pending_events: int


class TestOut(BaseModel):
    """The receiver's answer to a test event (`audit.stream.test`, never stored)."""

    ok: bool
    event_id: str
    answer: str
    status: int | None = None
    retryable: bool | None = None


def stream_out(session: Any, stream: LogStream, secret_key: str | None) -> StreamOut:
    """The public form of a stream, with its health computed now."""
    lag = stream_lag(session, stream)
    return StreamOut(
        id=stream.id,
        name=stream.name,
        type=stream.type,
        target=stream.target,
        format=stream.format,
        tenant_id=stream.tenant_id,
        partner_id=stream.partner_id,
        actions=list(stream.actions),
        action_prefixes=list(stream.action_prefixes),
        results=list(stream.results),
        options=dict(stream.options),
        credentials_set=credential_names(secret_key, stream),
        status=stream.status,  # type: ignore[arg-type]
        position=position_cursor(stream),
        created_by=stream.created_by,
        created_at=stream.created_at,
        updated_at=stream.updated_at,
        health=StreamHealth(
            lag_events=lag.events,
            lag_capped=lag.capped,
            lag_seconds=round(lag.seconds, 3),
            last_success_at=stream.last_success_at,
            last_error=stream.last_error,
            last_error_at=stream.last_error_at,
            failing_since=stream.failing_since,
            delivered=stream.delivered,
            failed=stream.failed,
            worker=stream.lease_holder,
        ),
    )


def _invalid(exc: ValidationError | StreamConfigError, *, untag: bool = False) -> RequestValidationError:
    """A domain validation failure in FastAPI's 422 shape (`untag`: without the type's union tag)."""
    return RequestValidationError(config_errors(exc, untag=untag))


@router.get("", summary="List Log Streams")
def get_streams(session: SessionDep, principal: AdminPrincipal, settings: SettingsDep) -> StreamList:
    """The streams the caller may manage, each with its health."""
    return StreamList(
        streams=[stream_out(session, stream, settings.secret_key) for stream in list_streams(session, principal)]
    )


@router.post("", summary="Create a Log Stream", status_code=201)
def post_stream(
    session: SessionDep, principal: AdminPrincipal, settings: SettingsDep, body: Annotated[StreamSpec, Body()]
) -> StreamOut:
    """Create a stream; it delivers every event of its owner's scope written from now on."""
    try:
        stream = create_stream(session, principal, body, settings.secret_key, TargetPolicy.of(settings))
    except StreamConfigError as exc:
        raise _invalid(exc) from None
    return stream_out(session, stream, settings.secret_key)


@router.get("/{stream_id}", summary="Get a Log Stream")
def get_one_stream(
    session: SessionDep, principal: AdminPrincipal, settings: SettingsDep, stream_id: StreamIdPath
) -> StreamOut:
    """One stream with its health."""
    return stream_out(session, get_stream(session, principal, stream_id), settings.secret_key)


@router.patch("/{stream_id}", summary="Change a Log Stream")
def patch_stream(
    session: SessionDep, principal: AdminPrincipal, settings: SettingsDep, stream_id: StreamIdPath, body: StreamChange
) -> StreamOut:
    """Change a stream's settings, filter or credentials (a failing stream becomes active again)."""
    try:
        stream = change_stream(session, principal, stream_id, body, settings.secret_key, TargetPolicy.of(settings))
    except (ValidationError, StreamConfigError) as exc:
        raise _invalid(exc, untag=True) from None
    except CredentialsUnreadableError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "credentials"), "msg": f"Value error, {exc}"}]
        ) from None
    return stream_out(session, stream, settings.secret_key)


@router.delete("/{stream_id}", summary="Delete a Log Stream")
def remove_stream(session: SessionDep, principal: AdminPrincipal, stream_id: StreamIdPath) -> StreamDeleted:
    """Delete a stream; its worker stops at its next step."""
    return StreamDeleted(id=stream_id, audit_event_id=delete_stream(session, principal, stream_id))


@router.post("/{stream_id}/pause", summary="Pause a Log Stream")
def pause_stream(
    session: SessionDep, principal: AdminPrincipal, settings: SettingsDep, stream_id: StreamIdPath
) -> StreamOut:
    """Stop delivering; the position is kept."""
    return stream_out(session, set_status(session, principal, stream_id, "paused"), settings.secret_key)


@router.post("/{stream_id}/resume", summary="Resume a Log Stream")
def resume_stream(
    session: SessionDep, principal: AdminPrincipal, settings: SettingsDep, stream_id: StreamIdPath
) -> StreamOut:
    """Deliver again from the position (a paused or failing stream)."""
    return stream_out(session, set_status(session, principal, stream_id, "active"), settings.secret_key)


@router.post("/{stream_id}/replay", summary="Replay a Log Stream")
def replay(
    session: SessionDep, principal: AdminPrincipal, settings: SettingsDep, stream_id: StreamIdPath, body: ReplayIn
) -> ReplayOut:
    """Redeliver from a time (`since`, ingest time) or a feed cursor (`cursor`), e.g. after data loss."""
    try:
        since = utc(body.since) if body.since is not None else None
        stream, pending = replay_stream(session, principal, stream_id, since=since, cursor=body.cursor)
    except StreamConfigError as exc:
        raise _invalid(exc) from None
    except FeedCursorError as exc:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", "cursor"), "msg": f"Value error, {exc}"}]
        ) from None
    return ReplayOut(stream=stream_out(session, stream, settings.secret_key), pending_events=pending)


@router.post("/{stream_id}/test", summary="Send a Test Event")
def test_stream(
    session: SessionDep, principal: AdminPrincipal, settings: SettingsDep, stream_id: StreamIdPath
) -> TestOut:
    """Send one `audit.stream.test` event to the receiver now and show its answer (the stream's
    position and counts are untouched)."""
    answer = send_test_event(
        session, principal, stream_id, settings.secret_key, settings.stream_timeout_seconds, TargetPolicy.of(settings)
    )
    return TestOut(**asdict(answer))
