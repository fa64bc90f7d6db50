"""Reading events: the filtered, scoped, newest-first list, one event, and distinct values.

Built to stay fast at millions of events: the total is counted only up to a cap (an inexact
total says so), a page's rows are found through the index alone before the full rows are
read (deep pages), a `cursor` continues after the last row seen (keyset pagination), and the
distinct values of a column are read by skipping through an index rather than scanning it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Row, bindparam, func, literal_column, select, text, tuple_
from sqlmodel import Session, col

from audit_app.audit.filters import EXCLUSIONS, AuditFilters, parse_network, where_clause
from audit_app.audit.scope import Scope
from audit_app.auth import Principal
from audit_app.db import ShapedStatements, as_stored, stored_time
from audit_app.models import AuditLog, AuditLogPublic, utc

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 50
COUNT_CAP = 10_000
SEARCH_COUNT_CAP = 1_000
"""The cap for searches whose every match must be rechecked (free text `q`, exclusions): past a
thousand matches an analyst narrows the search rather than reads the exact number."""
NEWEST_FIRST = (col(AuditLog.timestamp).desc(), col(AuditLog.id).desc())
OLDEST_FIRST = (col(AuditLog.timestamp).asc(), col(AuditLog.id).asc())
ORDERS = ("desc", "asc")
"""List orders by time: newest first (the default) or oldest first."""


def time_order(order: str) -> tuple[Any, Any]:
    """The ORDER BY of the list in `order` (`desc`: newest first, `asc`: oldest first; ties by id)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    return OLDEST_FIRST if order == "asc" else NEWEST_FIRST


# What a listed event carries: the public fields, read as plain rows (no ORM objects to build).
LISTED_COLUMNS = tuple(AuditLog.__table__.c[name] for name in AuditLogPublic.model_fields)  # type: ignore[attr-defined]
STORED_AS_READ = ("timestamp", "ingested_at", "details")
"""The listed columns `list_events(as_stored=True)` leaves as the driver reads them (`db.as_stored`)."""
LISTED_COLUMNS_AS_STORED = as_stored(LISTED_COLUMNS, STORED_AS_READ)
# The SELECT of those columns, built once (each request adds to a copy): its twenty columns are not
# coerced again on each request.
SELECT_LISTED = select(*LISTED_COLUMNS)
SELECT_LISTED_AS_STORED = select(*LISTED_COLUMNS_AS_STORED)
ListedEvent = Row[*tuple[Any, ...]]
"""A listed event: a read-only row with the public fields of AuditLog as attributes."""


PAGE_OFFSET = bindparam("page_offset", type_=Integer)
PAGE_SIZE = bindparam("page_size", type_=Integer)
COUNT_LIMIT = bindparam("count_limit", type_=Integer)
"""The list's window and how far its total is counted: named values, so a page's statement is
compiled once per shape of filters and run again with each request's (`PAGE_STATEMENTS`)."""
PAGE_STATEMENTS = ShapedStatements()


class CursorError(ValueError):
    """A `cursor` that this server did not hand out (HTTP 422)."""


@dataclass(frozen=True)
class EventPage:
    """One page of a filtered list and where it stands in the whole.

    `total` is exact when `total_exact`; otherwise at least `total` events match (shown as "N+").
    `next_cursor` continues the list after this page's last row, when there may be more.
    `items` are read-only rows holding the public fields of AuditLog as attributes.
    """

    items: Sequence[ListedEvent]
    total: int
    page: int
    per_page: int
    total_exact: bool = True
    next_cursor: str | None = None

    @property
    def pages(self) -> int:
        """How many pages the whole list has (0 when empty)."""
        return math.ceil(self.total / self.per_page) if self.total else 0


def encode_cursor(event: AuditLog | ListedEvent) -> str:
    """An opaque cursor pointing just after `event` in the list's order."""
    raw = json.dumps([stored_time(event.timestamp).isoformat(), event.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (timestamp, id) a cursor points after; CursorError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, event_id = json.loads(raw)
        if not isinstance(stamp, str) or not isinstance(event_id, str):
            raise TypeError(stamp)
        return utc(datetime.fromisoformat(stamp)), event_id
    except (binascii.Error, ValueError, TypeError, OverflowError) as exc:  # UnicodeDecodeError is a ValueError
        raise CursorError("cursor is not valid; use the next_cursor of a previous page") from exc


# The index that serves a filter best, for SQLite (see `sqlite_index`), most selective first:
# (filters that must each hold one exact value, index).
SQLITE_FILTER_INDEXES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("request_id",), "ix_audit_log_request"),
    (("resource_id",), "ix_audit_log_resource_id_time"),
    (("ip_address",), "ix_audit_log_ip_time"),
    (("actor_id",), "ix_audit_log_actor_time"),
    (("tenant_id", "action"), "ix_audit_log_tenant_action_time"),
    (("action",), "ix_audit_log_action_time"),
    (("resource_type",), "ix_audit_log_resource_type_time"),
    (("result",), "ix_audit_log_result_time"),
    (("tenant_id",), "ix_audit_log_tenant_time"),
)


def _single_value(filters: AuditFilters, name: str) -> bool:
    """Whether filter `name` holds one plain value (compared with `=`: no list, prefix or network)."""
    value = getattr(filters, name, None)
    return isinstance(value, str) and value != "" and not any(mark in value for mark in ",*/")


def sqlite_index(filters: AuditFilters) -> str | None:
    """The index SQLite must read a filtered list through (None: leave it to the planner).

    SQLite plans from `sqlite_stat1`, which a file filled by ingestion does not have until
    something runs ANALYZE; with it, the planner assumes values spread evenly, so for a column
    of few values (`result`, `action`) it walks the time index newest-first, checking each
    row's table entry, instead of reading the filter's index (on 200,000 events: 7-20 ms
    against under 1 ms). The filter's own `(column, timestamp)` index is always the right
    choice for an equality filter, so the list names it (`INDEXED BY`), statistics or not.
    """
    for names, index in SQLITE_FILTER_INDEXES:
        if all(_single_value(filters, name) for name in names):
            return index
    if _narrow_network(filters.values("ip_address")):
        return "ix_audit_log_ip_time"  # the network's text ranges (`filters.ipv4_text_ranges`)
    return None


NARROW_PREFIX = 12
"""The shortest IPv4 prefix the list reads through the address index (`_narrow_network`)."""


def _narrow_network(values: list[str]) -> bool:
    """Whether `values` is one IPv4 network of a /12 or narrower: read through its text ranges of the
    address index (`filters.ipv4_text_ranges`), then sorted by time, instead of walking the time index
    newest-first and checking every row (a /20 none of 266,000 events lay in: 285 -> 3 ms). A broader
    network is left to the planner: the walk soon fills a page when many events lie in it (a /9 holding
    10,000 or more: 62 ms walked, 101 through the ranges)."""
    if len(values) != 1 or "/" not in values[0] or values[0].endswith("*"):
        return False
    try:
        network = parse_network(values[0])
    except ValueError:
        return False
    return isinstance(network, ipaddress.IPv4Network) and network.prefixlen >= NARROW_PREFIX


def _hinted(stmt: Any, index: str | None) -> Any:
    """`stmt` reading audit_log through `index` on SQLite (no-op elsewhere or without one)."""
    return stmt.with_hint(AuditLog, f"INDEXED BY {index}", "sqlite") if index else stmt


def _capped_count_query(conditions: list[Any], limit: int | Any, index: str | None = None) -> Any:
    """SELECT count(*) of the matching rows, counting no further than `limit` (a cap + 1, or `COUNT_LIMIT`).

    It selects a constant, not `id`: the filter indexes hold the row's position but not its
    text primary key, so counting `id` would read up to `cap` table rows instead of the index.
    """
    matching: Any = select(literal_column("1")).select_from(AuditLog).where(*conditions)
    limited = _hinted(matching, index).limit(limit).subquery()
    return select(func.count()).select_from(limited)


def _capped(found: int, cap: int) -> tuple[int, bool]:
    return (found, True) if found <= cap else (cap, False)


def count_capped(session: Session, conditions: list[Any], cap: int) -> tuple[int, bool]:
    """How many rows match, counting no further than `cap`: (count, exact)."""
    return _capped(session.execute(_capped_count_query(conditions, cap + 1)).scalar_one(), cap)


def count_cap(filters: AuditFilters) -> int:
    """How far past the page the list's total is counted (beyond: "N+", `total_exact: false`)."""
    searching = filters.q or any(filters.values(name) for name in EXCLUSIONS)
    return SEARCH_COUNT_CAP if searching else COUNT_CAP


def list_events(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    *,
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
    cursor: str | None = None,
    order: str = "desc",
    as_stored: bool = False,
) -> EventPage:
    """The page-th page of events matching `filters` within the caller's scope, newest first
    (`order="asc"`: oldest first; ties on time are broken by id the same way).

    With a `cursor` (a previous page's `next_cursor`) the page starts right after that row and
    `page` only labels it; the total always counts the whole filtered list (up to a cap).

    The capped total rides along the page's rows as an uncorrelated scalar subquery (computed
    once): one statement, one round trip. Only an empty page counts separately. Rows come back
    as plain tuples of the public columns, not ORM objects: a page is read, never changed.
    With `as_stored`, their times and `details` are as the driver reads them (`db.as_stored`;
    `db.stored_time`, `db.stored_json` make of them what SQLAlchemy would), for a caller that
    serialises the page straight away.
    """
    conditions = where_clause(session, principal, filters)
    index = sqlite_index(filters) if session.get_bind().dialect.name == "sqlite" else None
    ordering = time_order(order)
    offset = (page - 1) * per_page
    after: list[Any] = []
    if cursor:
        stamp, event_id = decode_cursor(cursor)
        position, mark = tuple_(AuditLog.timestamp, AuditLog.id), tuple_(stamp, event_id)
        after = [position > mark if order == "asc" else position < mark]
        offset = 0
    cap = (page - 1) * per_page + count_cap(filters)
    window = {"page_offset": offset, "page_size": per_page, "count_limit": cap + 1}

    def page_statement() -> Any:
        ids = (
            _hinted(select(AuditLog.id), index)  # type: ignore[call-overload]
            .where(*conditions, *after)
            .order_by(*ordering)
            .offset(PAGE_OFFSET)
            .limit(PAGE_SIZE)
        )
        found = _capped_count_query(conditions, COUNT_LIMIT, index).scalar_subquery()
        return (
            (SELECT_LISTED_AS_STORED if as_stored else SELECT_LISTED)
            .add_columns(found.label("found"))
            .where(col(AuditLog.id).in_(ids.scalar_subquery()))
            .order_by(*ordering)
        )

    connection = session.connection()
    items = (
        PAGE_STATEMENTS.execute(connection, (index, order), [*conditions, *after], window, page_statement).all()
        if as_stored
        else connection.execute(page_statement(), window).all()
    )
    total, exact = (
        _capped(items[0].found, cap)
        if items
        else _capped(session.execute(_capped_count_query(conditions, cap + 1, index)).scalar_one(), cap)
    )
    next_cursor = encode_cursor(items[-1]) if len(items) == per_page else None
    return EventPage(items=items, total=total, page=page, per_page=per_page, total_exact=exact, next_cursor=next_cursor)


def get_event(session: Session, principal: Principal, log_id: str) -> AuditLog | None:
    """The event `log_id` if it exists within the caller's scope; None otherwise (no leak)."""
    stmt = select(AuditLog).where(col(AuditLog.id) == log_id, Scope.of(principal).condition())
    return session.execute(stmt).scalars().first()


SKIP_SCAN_ALL = """
WITH RECURSIVE found(val) AS (
  SELECT (SELECT {c} FROM audit_log WHERE {c} IS NOT NULL ORDER BY {c} LIMIT 1)
  UNION ALL
  SELECT (SELECT {c} FROM audit_log WHERE {c} > found.val ORDER BY {c} LIMIT 1) FROM found WHERE found.val IS NOT NULL
) SELECT val FROM found WHERE val IS NOT NULL ORDER BY val
"""
SKIP_SCAN_TENANTS = """
WITH RECURSIVE found(tenant, val) AS (
  SELECT scope.id, (SELECT {c} FROM audit_log WHERE tenant_id = scope.id AND {c} IS NOT NULL ORDER BY {c} LIMIT 1)
  FROM ({tenants}) AS scope
  UNION ALL
  SELECT found.tenant,
    (SELECT {c} FROM audit_log WHERE tenant_id = found.tenant AND {c} > found.val ORDER BY {c} LIMIT 1)
  FROM found WHERE found.val IS NOT NULL
) SELECT DISTINCT val FROM found WHERE val IS NOT NULL ORDER BY val
"""
DISTINCT_COLUMNS = ("action", "resource_type", "result")


def distinct_values(session: Session, principal: Principal, column: Any) -> list[str]:
    """Sorted distinct non-empty values of `column` among the events the caller may see.

    Equivalent to SELECT DISTINCT over the scope, but it jumps from one value to the next
    through an index led by the column (by tenant and column for a scoped caller), so it
    reads a few rows per distinct value instead of every event.
    """
    name = column.key
    if name not in DISTINCT_COLUMNS:
        raise ValueError(f"no index-backed distinct values for {name!r}")
    scope = Scope.of(principal)
    if scope.is_empty:
        return []
    tenants = scope.tenant_ids_sql()
    if tenants is None:
        sql, params = SKIP_SCAN_ALL.format(c=name), {}
    else:
        sql, params = SKIP_SCAN_TENANTS.format(c=name, tenants=tenants[0]), tenants[1]
    return [value for value in session.execute(text(sql), params).scalars().all() if value]


def list_actions(session: Session, principal: Principal) -> list[str]:
    """Every action name in the caller's scope."""
    return distinct_values(session, principal, AuditLog.action)


def list_resource_types(session: Session, principal: Principal) -> list[str]:
    """Every resource type in the caller's scope."""
    return distinct_values(session, principal, AuditLog.resource_type)


def list_results(session: Session, principal: Principal) -> list[str]:
    """Every result value in the caller's scope."""
    return distinct_values(session, principal, AuditLog.result)


def count_events(session: Session, principal: Principal, filters: AuditFilters) -> int:
    """The exact number of events matching `filters` in scope (what an export of them holds)."""
    conditions = where_clause(session, principal, filters)
    return int(session.execute(select(func.count()).select_from(AuditLog).where(*conditions)).scalar_one())
