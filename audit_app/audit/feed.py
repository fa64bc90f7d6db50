"""The lossless feed: every event of a caller's scope exactly once, in commit-ordered position order.

A collector follows `next` cursors forever. Positions come from `feed_position` (assigned at
ingest, served only once final), so an event whose transaction commits late is never skipped:
its position is not served until it has committed. A cursor is (position, id) of the last
event handed out; it stays valid while that event is retained, and a cursor into purged
history raises `CursorExpiredError` with the oldest `since` still valid. Polls are recorded
as one `audit.feed` event per collector and hour (`record_poll`), never per call.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar, overload

from sqlalchemy import Row, Text, bindparam, cast, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from audit_app.audit.feed_position import served
from audit_app.audit.filters import TEXT_FILTERS, AuditFilters, where_clause
from audit_app.audit.ingest import caller_key, record_access
from audit_app.audit.scope import Scope
from audit_app.auth import Principal
from audit_app.db import BINARY_RESULTS, as_stored, get_counter_engine
from audit_app.models import AuditLog, AuditLogPublic, FeedCollector, utc, utcnow

MAX_FEED_LIMIT = 1000
DEFAULT_FEED_LIMIT = 100
FEED_FILTERS: tuple[str, ...] = TEXT_FILTERS
FEED_ORDER = (col(AuditLog.feed_pos), col(AuditLog.id))
FEED_COLUMNS = tuple(AuditLog.__table__.c[name] for name in AuditLogPublic.model_fields)  # type: ignore[attr-defined]
FEED_COLUMNS_RAW_DETAILS = tuple(
    cast(column, Text).label("details") if column.name == "details" else column for column in FEED_COLUMNS
)
FEED_COLUMNS_AS_STORED = as_stored(FEED_COLUMNS_RAW_DETAILS, ("timestamp", "ingested_at"))
"""FEED_COLUMNS with `details` as its stored JSON text and the times as the driver reads them (`db.as_stored`):
no conversion for a caller that only re-serialises them (the values SQLAlchemy's result layer would only
wrap and re-check; at 1,000 rows a page that took as long as reading them)."""
FEED_PAGE = select(*FEED_COLUMNS, col(AuditLog.feed_pos)).order_by(*FEED_ORDER)
FEED_PAGE_AS_STORED = select(*FEED_COLUMNS_AS_STORED, col(AuditLog.feed_pos)).order_by(*FEED_ORDER)
"""A page's SELECT and order, built once (each read adds its conditions and limit to a copy): coercing
the twenty columns again on each read is most of building the statement."""
HELD = AuditLog.__table__.alias("held")  # type: ignore[attr-defined]
"""audit_log again, for the check that a cursor's event is retained (made once: an alias builds its columns)."""
FeedEvent = Row[*tuple[Any, ...]]
"""An event of the feed: a read-only row with the public fields of AuditLog, then `feed_pos`."""
ID_INDEX = 0
POSITION_INDEX = len(FEED_COLUMNS)
"""Where a page's row holds its event's id and its position (rows are also read as plain tuples)."""


class FeedCursorError(ValueError):
    """An `after` cursor this server did not hand out (HTTP 422)."""


class CursorExpiredError(Exception):
    """The cursor points after an event that was purged (HTTP 410); restart from `oldest_since`."""

    def __init__(self, oldest_since: datetime | None) -> None:
        super().__init__("The cursor points into purged history; restart with `since`.")
        self.oldest_since = oldest_since


@dataclass(frozen=True)
class FeedCursor:
    """Where a collector stands: after the event (`position`, `event_id`), or, before it has
    received anything, at the first event ingested at or after `since` (None: the oldest)."""

    position: int = -1
    event_id: str = ""
    since: datetime | None = None

    def encode(self) -> str:
        """The opaque text form handed to collectors."""
        raw: dict[str, Any] = {"p": self.position, "i": self.event_id}
        if self.since is not None:
            raw = {"s": self.since.isoformat()}
        text = json.dumps(raw, separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> FeedCursor:
        """The cursor a text form stands for; FeedCursorError when it is not one of ours."""
        try:
            raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if set(raw) == {"s"} and isinstance(raw["s"], str):
                return cls(since=utc(datetime.fromisoformat(raw["s"])))
            position, event_id = raw["p"], raw["i"]
            if type(position) is not int or not isinstance(event_id, str) or not -1 <= position < 2**63:
                raise TypeError(raw)
            return cls(position=position, event_id=event_id)
        except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError, OverflowError) as exc:
            raise FeedCursorError("is not a cursor of this feed; use the `next` of a previous answer") from exc

    @property
    def is_start(self) -> bool:
        """Whether no event has been handed out yet on this cursor."""
        return self.event_id == ""


EventT = TypeVar("EventT")


@dataclass(frozen=True)
class FeedPage(Generic[EventT]):
    """One answer of the feed: its events in position order, and the cursor to ask with next.

    Each item is a FeedEvent, or, read for the JSON answer (`details_as_json_text`), the driver's
    tuple of the same columns."""

    items: Sequence[EventT]
    next: FeedCursor


def feed_filters(filters: AuditFilters) -> AuditFilters:
    """Only the filters the feed takes (a feed is never windowed by event time)."""
    return AuditFilters(**{name: getattr(filters, name) for name in FEED_FILTERS})


def _oldest_since(session: Session, scope_conditions: list[Any]) -> datetime | None:
    """The ingest time of the oldest retained event in scope: the earliest `since` still served."""
    found = session.execute(select(func.min(col(AuditLog.ingested_at))).where(*scope_conditions)).scalar()
    return None if found is None else utc(found)


@overload
def read_feed(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    cursor: FeedCursor,
    limit: int,
    *,
    details_as_json_text: Literal[False] = False,
) -> FeedPage[FeedEvent]: ...


@overload
def read_feed(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    cursor: FeedCursor,
    limit: int,
    *,
    details_as_json_text: bool,
) -> FeedPage[Any]: ...


def read_feed(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    cursor: FeedCursor,
    limit: int,
    *,
    details_as_json_text: bool = False,
) -> FeedPage[Any]:
    """Up to `limit` events after `cursor`, in position order, within the caller's scope and filters.

    With `details_as_json_text`, each event's `details` is the JSON text as stored (half the
    cost of reading a page on PostgreSQL, where decoding it is most of the driver's work) and its
    times as the driver reads them (`db.as_stored`; `db.stored_time` makes datetimes of them);
    the items are then the driver's own row tuples (in FeedEvent's column order, read by index),
    not SQLAlchemy rows: wrapping 1,000 of them cost more than the rest of reading the page in Python.
    Refuses (403) filters outside the scope; raises CursorExpiredError when the cursor's event
    was purged. Only final positions are served (`feed_position.served`), so following `next`
    yields every committed event exactly once.
    """
    conditions = where_clause(session, principal, feed_filters(filters))
    final = served(session)
    kept: Any = None
    if not cursor.is_start:
        kept = _cursor_kept(principal, cursor)
        conditions.append(kept)  # checked in the page's own statement: no round trip of its own
        start: Any = tuple_(*FEED_ORDER) > tuple_(cursor.position, cursor.event_id)
    elif cursor.since is not None:
        first = session.execute(
            select(*FEED_ORDER)
            .where(*conditions, final, col(AuditLog.ingested_at) >= cursor.since)
            .order_by(*FEED_ORDER)
            .limit(1)
        ).first()
        if first is None:
            return FeedPage(items=[], next=cursor)
        start = tuple_(*FEED_ORDER) >= tuple_(first.feed_pos, first.id)
    else:
        start = tuple_(*FEED_ORDER) > tuple_(-1, "")
    stmt = (FEED_PAGE_AS_STORED if details_as_json_text else FEED_PAGE).where(start, *conditions, final).limit(limit)
    items: Sequence[Any]
    if details_as_json_text:
        result = session.connection().execute(stmt, execution_options={BINARY_RESULTS: True})
        items = result.cursor.fetchall()  # all rows are in the client already: nothing left to fail here
        result.close()
    else:
        items = session.connection().execute(stmt).all()
    if not items:
        if kept is not None and not session.execute(select(kept)).scalar():
            raise CursorExpiredError(_oldest_since(session, [Scope.of(principal).condition()]))
        return FeedPage(items=[], next=cursor)
    last = items[-1]
    return FeedPage(items=items, next=FeedCursor(position=last[POSITION_INDEX], event_id=last[ID_INDEX]))


def _cursor_kept(principal: Principal, cursor: FeedCursor) -> Any:
    """The condition that the event `cursor` points after is still retained, in the caller's scope."""
    scope = Scope.of(principal).condition(HELD.c.tenant_id)
    return select(HELD.c.id).where(HELD.c.id == cursor.event_id, scope).exists()


def feed_end(session: Session, principal: Principal) -> FeedCursor:
    """A cursor after the newest served event of the caller's scope: following it yields only the
    events stored from now on (a live tail), read forward from the end of the feed index."""
    scope = Scope.of(principal).condition()
    last = session.execute(
        select(*FEED_ORDER)
        .where(scope, served(session))
        .order_by(col(AuditLog.feed_pos).desc(), col(AuditLog.id).desc())
        .limit(1)
    ).first()
    return FeedCursor() if last is None else FeedCursor(position=last.feed_pos, event_id=last.id)


def collector_key(principal: Principal, filters: AuditFilters, fmt: str) -> str:
    """Who follows which feed: the caller (as for idempotency) with its filters and format."""
    what = json.dumps([caller_key(principal), feed_filters(filters).active(), fmt])
    return hashlib.sha256(what.encode()).hexdigest()


def _count_poll(key: str, hour: datetime, read: int) -> bool:
    """Add a poll to its collector's row if the row is at `hour` already (every poll but the
    hour's first); whether it was. One autocommitted UPDATE, in one round trip: a poll count
    is a statistic, so its commit does not wait for the disk (`get_counter_engine`)."""
    with get_counter_engine().connect() as connection:
        return connection.execute(COUNT_POLL, {"collector": key, "this_hour": hour, "read_events": read}).rowcount == 1


COUNT_POLL = (
    update(FeedCollector)
    .where(col(FeedCollector.key) == bindparam("collector"), col(FeedCollector.hour) == bindparam("this_hour"))
    .values(polls=col(FeedCollector.polls) + 1, events=col(FeedCollector.events) + bindparam("read_events"))
)
"""`_count_poll`'s statement, built once (building its expressions cost as much as running it)."""


RECORDED_HOURS: dict[tuple[object, str], datetime] = {}
"""For each collector (per database) the hour whose `audit.feed` event this process saw written:
its later polls in that hour are only counted (`hour_recorded`). Bounded by MAX_RECORDED_HOURS."""
MAX_RECORDED_HOURS = 4096


def poll_hour(now: datetime | None = None) -> datetime:
    """The UTC hour a poll at `now` (default: now) belongs to."""
    return (now or utcnow()).replace(minute=0, second=0, microsecond=0)


def hour_recorded(engine: object, key: str, hour: datetime) -> bool:
    """Whether this process saw collector `key`'s `audit.feed` event of `hour` written on `engine`'s
    database: a poll of that hour then only adds to the counts, and may do so after its answer.

    A yes can be stale (the row was changed or removed since); `record_poll` then still does
    whatever the poll needs, only later.
    """
    return RECORDED_HOURS.get((engine, key)) == hour


def _remember_hour(engine: object, key: str, hour: datetime) -> None:
    if len(RECORDED_HOURS) >= MAX_RECORDED_HOURS:
        RECORDED_HOURS.clear()
    RECORDED_HOURS[(engine, key)] = hour


def record_poll(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    fmt: str,
    page: FeedPage[Any],
    *,
    ip_address: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
) -> str | None:
    """Count a poll for its collector, and write an `audit.feed` event at its first poll of an hour.

    The event says what the collector read: its filters and format, this poll's events, and
    its polls and events in the hour before. Returns the event's id, None when the hour already
    has one. Commits (on the primary database), then remembers the collector's hour (`hour_recorded`).
    """
    hour = poll_hour(now)
    key = collector_key(principal, filters, fmt)
    read = len(page.items)
    engine = session.get_bind()
    if _count_poll(key, hour, read):
        _remember_hour(engine, key, hour)
        return None
    stmt = select(FeedCollector).where(col(FeedCollector.key) == key)
    if engine.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    collector = session.execute(stmt).scalars().first()
    if collector is not None and utc(collector.hour) == hour:
        collector.polls += 1
        collector.events += read
        session.commit()
        _remember_hour(engine, key, hour)
        return None
    before: dict[str, Any] | None = None
    if collector is not None:
        before = {"hour": utc(collector.hour).isoformat(), "polls": collector.polls, "events": collector.events}
        if utc(collector.hour) != hour - timedelta(hours=1):
            before["note"] = "the last hour with polls"
        collector.hour, collector.polls, collector.events = hour, 1, read
    else:
        session.add(FeedCollector(key=key, hour=hour, polls=1, events=read))
    details: dict[str, Any] = {
        "format": fmt,
        "hour": hour.isoformat(),
        "read": {
            "events": read,
            "first_id": page.items[0][ID_INDEX] if read else None,
            "last_id": page.items[-1][ID_INDEX] if read else None,
        },
        "previous": before,
    }
    try:
        recorded = record_access(
            session,
            principal,
            "audit.feed",
            filters=feed_filters(filters),
            details=details,
            ip_address=ip_address,
            user_agent=user_agent,
        )
    except IntegrityError:  # another worker recorded this collector's hour first
        session.rollback()
        return None
    _remember_hour(engine, key, hour)
    return recorded
