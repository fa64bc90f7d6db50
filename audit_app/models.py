"""Tables of the audit store and the public schemas of the API."""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydField
from sqlalchemy import JSON, BigInteger, Column, Date, DateTime, Index, String, TypeDecorator, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

ActorType = Literal["user", "service", "system"]
Result = Literal["success", "failure", "denied", "error"]
RESULTS: tuple[str, ...] = ("success", "failure", "denied", "error")
ACTOR_TYPES: tuple[str, ...] = ("user", "service", "system")
MAX_DETAILS_DEPTH = 32
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")  # dotted quad without leading zeros


_UTC_ZONES: frozenset[tzinfo] = frozenset({UTC, ZoneInfo("UTC"), ZoneInfo("Etc/UTC")})
"""Zones that are UTC itself (ZoneInfo instances are cached per key, so membership is by identity)."""
_NAIVE_EPOCH = datetime(1970, 1, 1)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(value: datetime) -> datetime:
    """The same instant as an aware UTC datetime; naive values are taken as UTC."""
    zone = value.tzinfo
    if zone is UTC or zone in _UTC_ZONES:  # already UTC: psycopg reads timestamptz in the server's zone
        return value
    if zone is None:
        if type(value) is datetime and not value.fold:
            # `value.replace(tzinfo=UTC)`, exactly, by two C operations: replace() parses its keyword
            # arguments by name and builds the datetime twice (about 9,000 instructions a call in
            # CPython 3.11; SQLite returns every time naive, e.g. 100 per list page).
            return _UTC_EPOCH + (value - _NAIVE_EPOCH)
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    SQLite has no time zones: values are stored as naive UTC text that sorts in time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else utc(value)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Tenant(SQLModel, table=True):
    """A tenant and the partner that owns it (answers "every tenant of partner P")."""

    __tablename__ = "tenant"

    id: str = Field(primary_key=True, max_length=255)
    partner_id: str | None = Field(default=None, index=True, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class AuditLog(SQLModel, table=True):
    """One audit event. Rows are append-only and chained per tenant by `hash`."""

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("tenant_id", "chain_seq", name="uq_audit_log_tenant_chain_seq"),
        Index("ix_audit_log_time", "timestamp", "id"),
        Index("ix_audit_log_tenant_time", "tenant_id", "timestamp", "id"),
        Index("ix_audit_log_actor_time", "actor_id", "timestamp"),
        Index("ix_audit_log_action_time", "action", "timestamp"),
        Index("ix_audit_log_resource_type_time", "resource_type", "timestamp"),
        Index("ix_audit_log_resource_id_time", "resource_id", "timestamp"),
        Index("ix_audit_log_result_time", "result", "timestamp"),
        Index("ix_audit_log_ip_time", "ip_address", "timestamp"),
        Index("ix_audit_log_request", "request_id"),
        Index("ix_audit_log_tenant_action_time", "tenant_id", "action", "timestamp"),
        Index("ix_audit_log_tenant_resource_type", "tenant_id", "resource_type"),
        Index("ix_audit_log_feed", "feed_pos", "id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    timestamp: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    tenant_id: str = Field(max_length=255)
    partner_id: str | None = Field(default=None, max_length=255)
    actor_id: str = Field(max_length=255)
    actor_email: str | None = Field(default=None, max_length=320)
    actor_type: str = Field(default="user", max_length=16)
    action: str = Field(max_length=128)
    resource_type: str | None = Field(default=None, max_length=128)
    resource_id: str | None = Field(default=None, max_length=255)
    result: str = Field(default="success", max_length=16)
    ip_address: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, sa_column=Column(String(1024)))
    request_id: str | None = Field(default=None, max_length=255)
    session_id: str | None = Field(default=None, max_length=255)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONDocument, nullable=False))
    ingested_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    chain_seq: int = Field(default=0)
    prev_hash: str = Field(default="", max_length=64)
    hash: str = Field(default="", max_length=64)
    feed_pos: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    """The feed's commit-ordered position (docs/feed.md); set by ingest."""


class AuditDailyCount(SQLModel, table=True):
    """Events per UTC day, tenant, action, resource type and result, kept in step at ingest (for /stats)."""

    __tablename__ = "audit_daily_count"
    __table_args__ = (Index("ix_audit_daily_count_day", "day"),)

    tenant_id: str = Field(primary_key=True, max_length=255)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    action: str = Field(primary_key=True, max_length=128)
    resource_type: str = Field(primary_key=True, max_length=128)  # "" stands for none
    result: str = Field(primary_key=True, max_length=16)
    count: int = Field(sa_column=Column(BigInteger, nullable=False))


class AuditDailyActor(SQLModel, table=True):
    """Events per UTC day, tenant and actor, kept in step at ingest (for /stats' actor figures)."""

    __tablename__ = "audit_daily_actor"
    __table_args__ = (Index("ix_audit_daily_actor_day", "day"),)

    tenant_id: str = Field(primary_key=True, max_length=255)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    actor_id: str = Field(primary_key=True, max_length=255)
    actor_email: str | None = Field(default=None, max_length=320)
    count: int = Field(sa_column=Column(BigInteger, nullable=False))


class AuditHourlyCount(SQLModel, table=True):
    """Events per UTC hour, tenant, action, resource type and result (the partial days at a /stats window's edges)."""

    __tablename__ = "audit_hourly_count"
    __table_args__ = (Index("ix_audit_hourly_count_hour", "hour"),)

    tenant_id: str = Field(primary_key=True, max_length=255)
    hour: datetime = Field(sa_column=Column(UTCDateTime, primary_key=True))
    action: str = Field(primary_key=True, max_length=128)
    resource_type: str = Field(primary_key=True, max_length=128)  # "" stands for none
    result: str = Field(primary_key=True, max_length=16)
    count: int = Field(sa_column=Column(BigInteger, nullable=False))


class AuditHourlyActor(SQLModel, table=True):
    """Events per UTC hour, tenant and actor (the partial days at a /stats window's edges)."""

    __tablename__ = "audit_hourly_actor"
    __table_args__ = (Index("ix_audit_hourly_actor_hour", "hour"),)

    tenant_id: str = Field(primary_key=True, max_length=255)
    hour: datetime = Field(sa_column=Column(UTCDateTime, primary_key=True))
    actor_id: str = Field(primary_key=True, max_length=255)
    actor_email: str | None = Field(default=None, max_length=320)
    count: int = Field(sa_column=Column(BigInteger, nullable=False))


class ChainHead(SQLModel, table=True):
    """The newest link of each tenant's hash chain; writers lock it to append in order."""

    __tablename__ = "chain_head"

    tenant_id: str = Field(primary_key=True, max_length=255)
    seq: int = 0
    hash: str = Field(default="", max_length=64)


class FeedCollector(SQLModel, table=True):
    """A collector of the feed (caller and filters) and what it read this hour, for `audit.feed` records."""

    __tablename__ = "feed_collector"

    key: str = Field(primary_key=True, max_length=64)
    hour: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    polls: int = Field(sa_column=Column(BigInteger, nullable=False))
    events: int = Field(sa_column=Column(BigInteger, nullable=False))


class SavedView(SQLModel, table=True):
    """A saved view of the console: filters, time range and columns under a name (`audit.views`)."""

    __tablename__ = "audit_view"
    __table_args__ = (
        UniqueConstraint("owner", "scope_key", "name", name="uq_audit_view_owner_scope_name"),
        Index("ix_audit_view_scope", "scope_key", "name"),
    )

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=100)
    owner: str = Field(max_length=255)
    """The `sub` of the person who saved it; only they change or delete it."""
    scope_key: str = Field(max_length=300)
    """The owner's scope when saving (`all`, `partner:<id>`, `tenant:<id>`): shared views reach exactly it."""
    page: str = Field(default="events", max_length=16)
    shared: bool = False
    query: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    columns: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class SpentDownloadToken(SQLModel, table=True):
    """A download token already used: its `jti`, kept until the token would have expired anyway."""

    __tablename__ = "spent_download_token"

    jti: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))


class ExportProgress(SQLModel, table=True):
    """A console export in progress: rows streamed so far, as counted by the server that streams it.

    Found by the download token's `jti` (`download_id`) and its actor only; any API worker
    updates it and any console worker reads it, so both may be different processes.
    """

    __tablename__ = "export_progress"

    download_id: str = Field(primary_key=True, max_length=64)
    export_id: str = Field(max_length=64)  # the export's `audit.export` record
    actor_id: str = Field(max_length=320)
    rows: int = Field(sa_column=Column(BigInteger, nullable=False))
    state: str = Field(max_length=16)  # running, complete, cancelled or failed
    cancel_requested: bool = False
    started_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class LogStream(SQLModel, table=True):
    """A log stream: a destination every new event of its owner's scope is pushed to (docs/streams.md).

    The owner is a tenant (`tenant_id`), a partner (`partner_id`) or the platform (neither).
    Configuration is written by the API; the delivery worker writes only the position and health
    columns, and commits a position only for the `epoch` it read (a replay bumps the epoch).
    """

    __tablename__ = "log_stream"
    __table_args__ = (Index("ix_log_stream_owner", "tenant_id", "partner_id"),)

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=128)
    type: str = Field(max_length=32)
    target: str = Field(max_length=2048)
    format: str = Field(default="json", max_length=16)
    tenant_id: str | None = Field(default=None, max_length=255)
    partner_id: str | None = Field(default=None, max_length=255)
    actions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    action_prefixes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    results: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    credentials: str = Field(default="", sa_column=Column(String, nullable=False, server_default=""))
    """The credentials as one encrypted token (AUDIT_SECRET_KEY); never returned."""
    status: str = Field(default="active", max_length=16)
    created_by: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    position: int = Field(default=-1, sa_column=Column(BigInteger, nullable=False))
    position_id: str = Field(default="", max_length=36)
    epoch: int = Field(default=0)
    delivered: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    failed: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    last_success_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    last_error: str | None = Field(default=None, max_length=2048)
    last_error_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    failing_since: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    lease_holder: str | None = Field(default=None, max_length=128)
    lease_expires: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class ConsoleSession(SQLModel, table=True):
    """A signed-in console session, named by the SHA-256 of the secret in its HttpOnly cookie.

    Whoever signed in (SSO, a pasted token, a demo persona) is kept here, never in the browser;
    the provider's refresh and ID tokens stay on the server too.
    """

    __tablename__ = "console_session"

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)  # sso, token or demo
    sub: str = Field(max_length=255)
    email: str = Field(default="", max_length=320)
    role: str = Field(max_length=32)
    scopes: str = Field(default="", max_length=2048)
    tenant_id: str | None = Field(default=None, max_length=255)
    partner_id: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    token_expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    refresh_token: str | None = Field(default=None, sa_column=Column(String, nullable=True))
    id_token: str | None = Field(default=None, sa_column=Column(String, nullable=True))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class ConsoleSignIn(SQLModel, table=True):
    """A sign-in under way: an SSO authorization request (bound to the browser by a cookie), a
    one-time hand-over of a session to the browser, or a notice for the sign-in page; short-lived."""

    __tablename__ = "console_sign_in"

    id: str = Field(primary_key=True, max_length=64)  # SHA-256 of the secret the browser holds
    purpose: str = Field(max_length=16)  # sso, handoff or notice
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))


class IdempotencyRecord(SQLModel, table=True):
    """The outcome of an ingestion request, so a retried batch returns the same ids."""

    __tablename__ = "idempotency_record"

    key: str = Field(primary_key=True, max_length=255)
    caller: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if value is not None and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, stopping early past `limit`."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


def _check_json_values(value: Any) -> None:
    """Reject what a database cannot store exactly: NUL characters and non-finite numbers."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("must not contain NaN or Infinity")
        elif isinstance(item, dict):
            for key, child in item.items():
                _no_nul(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


class AuditEventIn(BaseModel):
    """One event as written by a producer (`POST /api/v1/audit/events`)."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str = PydField(min_length=1, max_length=255)
    actor_id: str = PydField(min_length=1, max_length=255)
    action: str = PydField(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
    timestamp: datetime | None = None
    partner_id: str | None = PydField(default=None, min_length=1, max_length=255)
    actor_email: str | None = PydField(default=None, max_length=320)
    actor_type: ActorType = "user"
    resource_type: str | None = PydField(default=None, max_length=128)
    resource_id: str | None = PydField(default=None, max_length=255)
    result: Result = "success"
    ip_address: str | None = PydField(default=None, max_length=45)
    user_agent: str | None = PydField(default=None, max_length=1024)
    request_id: str | None = PydField(default=None, max_length=255)
    session_id: str | None = PydField(default=None, max_length=255)
    details: dict[str, Any] = PydField(default_factory=dict)

    @field_validator(
        "tenant_id",
        "actor_id",
        "partner_id",
        "actor_email",
        "resource_type",
        "resource_id",
        "user_agent",
        "request_id",
        "session_id",
    )
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _no_nul(value)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        try:
            return None if value is None else utc(value)
        except OverflowError:
            raise ValueError("is outside the supported time range") from None

    @field_validator("ip_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if _CANONICAL_IPV4.fullmatch(value):
            return value  # what ip_address() would return, without its cost (1,000 events a batch)
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("is not an IPv4 or IPv6 address") from None

    @field_validator("details")
    @classmethod
    def _details(cls, value: dict[str, Any]) -> dict[str, Any]:
        if _depth(value, MAX_DETAILS_DEPTH) > MAX_DETAILS_DEPTH:
            raise ValueError(f"is nested deeper than {MAX_DETAILS_DEPTH} levels")
        _check_json_values(value)
        return value


class AuditLogPublic(BaseModel):
    """An audit event as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    timestamp: datetime
    tenant_id: str
    partner_id: str | None
    actor_id: str
    actor_email: str | None
    actor_type: str
    action: str
    resource_type: str | None
    resource_id: str | None
    result: str
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    session_id: str | None
    details: dict[str, Any]
    ingested_at: datetime
    hash: str
    prev_hash: str


EVENT_FIELDS: tuple[str, ...] = (
    "id",
    "timestamp",
    "tenant_id",
    "partner_id",
    "actor_id",
    "actor_email",
    "actor_type",
    "action",
    "resource_type",
    "resource_id",
    "result",
    "ip_address",
    "user_agent",
    "request_id",
    "session_id",
    "details",
)
"""What an event says, in the order exports and copies list them; chain and ingest columns come on top."""

EXPORT_COLUMNS: tuple[str, ...] = (*EVENT_FIELDS, "ingested_at", "hash")


class RetentionDefault(SQLModel, table=True):
    """The platform-wide retention: events older than `days` are purged (None keeps them forever)."""

    __tablename__ = "retention_default"

    id: int = Field(default=1, primary_key=True)
    days: int | None = None
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_by: str = Field(default="", max_length=255)


class TenantRetention(SQLModel, table=True):
    """A tenant's own retention (None = the platform default) and its legal hold (nothing is purged)."""

    __tablename__ = "tenant_retention"

    tenant_id: str = Field(primary_key=True, max_length=255)
    days: int | None = None
    legal_hold: bool = False
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_by: str = Field(default="", max_length=255)


class PurgeCheckpoint(SQLModel, table=True):
    """The last purged link of a tenant's chain: verification starts from here after a purge."""

    __tablename__ = "purge_checkpoint"

    tenant_id: str = Field(primary_key=True, max_length=255)
    seq: int = 0
    hash: str = Field(default="", max_length=64)
    events_purged: int = 0
    purged_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class VerifiedLink(SQLModel, table=True):
    """The newest link of a tenant's chain a verification found intact, and the purge checkpoint it walked from.

    The next verification re-checks this link (still there, same hash, content matching it)
    and walks only what was appended after it; a moved checkpoint (a purge) discards it.
    """

    __tablename__ = "verified_link"

    tenant_id: str = Field(primary_key=True, max_length=255)
    seq: int
    hash: str = Field(max_length=64)
    checkpoint_seq: int
    checkpoint_hash: str = Field(max_length=64)
    verified_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class VerifyLease(SQLModel, table=True):
    """A verification in progress on SQLite: one row per chain being walked, until it ends or expires."""

    __tablename__ = "verify_lease"

    tenant_id: str = Field(primary_key=True, max_length=255)
    holder: str = Field(max_length=64)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class PurgeGuard(SQLModel, table=True):
    """One row; SQLite's append-only triggers allow a DELETE only while a purge transaction sets it."""

    __tablename__ = "purge_guard"

    id: int = Field(default=1, primary_key=True)
    active: int = 0
