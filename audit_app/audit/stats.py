"""Statistics over the events in scope: totals, breakdowns, daily counts, top actors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, cast, func, select
from sqlmodel import Session, col

from audit_app.audit.daily import DAILY, HOURLY, Granularity, start_of_hour
from audit_app.audit.filters import AuditFilters, check_filters_in_scope, where_clause
from audit_app.audit.scope import Scope, tenants_of_partner
from audit_app.auth import Principal
from audit_app.models import AuditLog, utc

TOP_ACTORS = 10
MAX_DAYS = 3660  # a window wider than ten years is shown from its first to its last event


def _day_column(session: Session) -> Any:
    """The UTC calendar day of an event, in the dialect at hand."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", AuditLog.timestamp), Date)
    return func.date(AuditLog.timestamp)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):  # an hourly bucket
        return utc(value).date()
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _window_days(first: date | None, last: date | None, filters: AuditFilters) -> list[date]:
    """Every day of the window; an open side runs to the first or last event."""
    start = filters.start_time.date() if filters.start_time else first
    end = (filters.end_time - timedelta(microseconds=1)).date() if filters.end_time else last
    if start is None or end is None or end < start:
        return []
    if (end - start).days > MAX_DAYS:
        if first is None or last is None:
            return []  # a huge empty window would be millions of zero days
        start, end = max(start, first), min(end, last)
        if end < start:
            return []
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def compute_stats_scan(session: Session, principal: Principal, filters: AuditFilters) -> dict[str, Any]:
    """Aggregate the events matching `filters` within the caller's scope, all in SQL, from every event."""
    conditions = where_clause(session, principal, filters)
    day = _day_column(session).label("day")

    def grouped(column: Any) -> dict[str, int]:
        stmt = select(column, func.count()).where(*conditions).group_by(column).order_by(func.count().desc())
        return {str(key) if key is not None else "": count for key, count in session.execute(stmt).all()}

    total, unique_actors = session.execute(
        select(func.count(), func.count(func.distinct(AuditLog.actor_id))).where(*conditions)
    ).one()
    by_result = grouped(AuditLog.result)
    daily: dict[date, dict[str, int]] = {}
    for day_value, result, count in session.execute(
        select(day, col(AuditLog.result), func.count()).where(*conditions).group_by(day, AuditLog.result)
    ).all():
        daily.setdefault(_as_date(day_value), {})[result] = count
    first = min(daily) if daily else None
    last = max(daily) if daily else None
    by_day = [
        {"date": d.isoformat(), "count": sum(daily.get(d, {}).values()), "by_result": daily.get(d, {})}
        for d in _window_days(first, last, filters)
    ]
    top = session.execute(
        select(col(AuditLog.actor_id), func.max(AuditLog.actor_email), func.count().label("n"))
        .where(*conditions)
        .group_by(AuditLog.actor_id)
        .order_by(func.count().desc(), AuditLog.actor_id)
        .limit(TOP_ACTORS)
    ).all()
    failures = total - by_result.get("success", 0)
    return {
        "total": total,
        "by_action": grouped(AuditLog.action),
        "by_result": by_result,
        "by_resource_type": grouped(AuditLog.resource_type),
        "by_day": by_day,
        "top_actors": [{"actor_id": a, "actor_email": e, "count": n} for a, e, n in top],
        "unique_actors": unique_actors,
        "failure_rate": round(failures / total, 4) if total else 0.0,
        "window": {
            "start_time": filters.start_time.isoformat() if filters.start_time else None,
            "end_time": filters.end_time.isoformat() if filters.end_time else None,
        },
    }


DAILY_FILTERS = frozenset({"tenant_id", "partner_id", "start_time", "end_time"})


def compute_stats(session: Session, principal: Principal, filters: AuditFilters) -> dict[str, Any]:
    """The same figures as `compute_stats_scan`, read from the daily counts where they can answer.

    Whole UTC days of the window come from `audit_daily_count`/`audit_daily_actor`, whole hours
    of its partial first and last day from the hourly tables, and only the partial hours at its
    very edges are counted from the events themselves. Filters the daily
    tables do not carry (actor, action, ...) fall back to the full scan.
    """
    if not set(filters.active()) <= DAILY_FILTERS:
        return compute_stats_scan(session, principal, filters)
    check_filters_in_scope(session, principal, filters)
    full_days, edges = _split_window(filters)
    counts: dict[tuple[date, str, str, str], int] = {}
    actors: dict[str, list[Any]] = {}

    def add(key: tuple[date, str, str, str], n: int) -> None:
        counts[key] = counts.get(key, 0) + n

    def add_actor(actor_id: str, email: str | None, n: int) -> None:
        known = actors.setdefault(actor_id, [0, None])
        known[0] += n
        if email is not None and (known[1] is None or email > known[1]):
            known[1] = email

    def read(granularity: Granularity, low: Any, high: Any) -> None:
        """Add the aggregate rows of buckets [low, high) (an open side when None)."""
        table, people = granularity.counts, granularity.actors
        bucket = getattr(table, granularity.bucket)
        where = [Scope.of(principal).condition(table.tenant_id), *_tenant_filters(table, filters)]
        where += [bucket >= low] if low is not None else []
        where += [bucket < high] if high is not None else []
        group = (bucket, col(table.action), col(table.resource_type), col(table.result))
        for bucket_value, action, resource_type, result, n in session.execute(
            select(*group, func.sum(table.count)).where(*where).group_by(*group)
        ).all():
            add((_as_date(bucket_value), action, resource_type, result), int(n))
        bucket = getattr(people, granularity.bucket)
        where = [Scope.of(principal).condition(people.tenant_id), *_tenant_filters(people, filters)]
        where += [bucket >= low] if low is not None else []
        where += [bucket < high] if high is not None else []
        for actor_id, email, n in session.execute(
            select(col(people.actor_id), func.max(people.actor_email), func.sum(people.count))
            .where(*where)
            .group_by(people.actor_id)
        ).all():
            add_actor(actor_id, email, int(n))

    if full_days is not None:
        read(DAILY, *full_days)
    day = _day_column(session).label("day")
    for start, end_time in _hourly_split(edges, read):
        raw = where_clause(session, principal, filters.replace(start_time=start, end_time=end_time))
        group_raw = (day, col(AuditLog.action), func.coalesce(AuditLog.resource_type, ""), col(AuditLog.result))
        for day_value, action, resource_type, result, n in session.execute(
            select(*group_raw, func.count()).where(*raw).group_by(*group_raw)
        ).all():
            add((_as_date(day_value), action, resource_type, result), n)
        for actor_id, email, n in session.execute(
            select(col(AuditLog.actor_id), func.max(AuditLog.actor_email), func.count())
            .where(*raw)
            .group_by(AuditLog.actor_id)
        ).all():
            add_actor(actor_id, email, n)
    return _stats_document(counts, actors, filters)


def _hourly_split(
    edges: list[tuple[datetime | None, datetime | None]], read: Callable[[Granularity, Any, Any], None]
) -> list[tuple[datetime | None, datetime | None]]:
    """Read the whole hours of each partial-day range from the hourly tables; return the rest, for raw counting."""
    raw: list[tuple[datetime | None, datetime | None]] = []
    for low, high in edges:
        if low is None or high is None:
            raw.append((low, high))
            continue
        first = start_of_hour(low)
        first = first if first == low else first + timedelta(hours=1)
        end = start_of_hour(high)
        if first >= end:
            raw.append((low, high))
            continue
        read(HOURLY, first, end)
        if low < first:
            raw.append((low, first))
        if end < high:
            raw.append((end, high))
    return raw


def _tenant_filters(table: Any, filters: AuditFilters) -> list[Any]:
    """The tenant and partner filters applied to a daily table."""
    conditions: list[Any] = []
    if filters.tenant_id:
        conditions.append(table.tenant_id == filters.tenant_id)
    if filters.partner_id:
        conditions.append(table.tenant_id.in_(tenants_of_partner(filters.partner_id)))
    return conditions


def _midnight(value: datetime) -> datetime:
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def _split_window(
    filters: AuditFilters,
) -> tuple[tuple[date | None, date | None] | None, list[tuple[datetime | None, datetime | None]]]:
    """The whole UTC days [first, end) of the window, and the partial-day time ranges around them."""
    start, end = filters.start_time, filters.end_time
    first = None if start is None else (start.date() if start == _midnight(start) else start.date() + timedelta(days=1))
    end_day = None if end is None else end.date()
    if first is not None and end_day is not None and first >= end_day:
        return None, [(start, end)]
    edges: list[tuple[datetime | None, datetime | None]] = []
    if start is not None and first is not None and start != _midnight(start):
        edges.append((start, _midnight(start) + timedelta(days=1)))
    if end is not None and end != _midnight(end):
        edges.append((_midnight(end), end))
    return (first, end_day), edges


def _ranked(counts: dict[str, int]) -> dict[str, int]:
    """Most frequent first; ties by name, so the order is stable."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _stats_document(
    counts: dict[tuple[date, str, str, str], int], actors: dict[str, list[Any]], filters: AuditFilters
) -> dict[str, Any]:
    """The /stats response from counts per (day, action, resource type, result) and per actor."""
    by_action: dict[str, int] = {}
    by_result: dict[str, int] = {}
    by_resource_type: dict[str, int] = {}
    daily: dict[date, dict[str, int]] = {}
    for (day_value, action, resource_type, result), n in counts.items():
        if not n:
            continue
        by_action[action] = by_action.get(action, 0) + n
        by_result[result] = by_result.get(result, 0) + n
        by_resource_type[resource_type] = by_resource_type.get(resource_type, 0) + n
        per_day = daily.setdefault(day_value, {})
        per_day[result] = per_day.get(result, 0) + n
    total = sum(by_result.values())
    first = min(daily) if daily else None
    last = max(daily) if daily else None
    by_day = [
        {"date": d.isoformat(), "count": sum(daily.get(d, {}).values()), "by_result": daily.get(d, {})}
        for d in _window_days(first, last, filters)
    ]
    top = sorted(actors.items(), key=lambda item: (-item[1][0], item[0]))[:TOP_ACTORS]
    failures = total - by_result.get("success", 0)
    return {
        "total": total,
        "by_action": _ranked(by_action),
        "by_result": _ranked(by_result),
        "by_resource_type": _ranked(by_resource_type),
        "by_day": by_day,
        "top_actors": [{"actor_id": a, "actor_email": e, "count": n} for a, (n, e) in top],
        "unique_actors": len(actors),
        "failure_rate": round(failures / total, 4) if total else 0.0,
        "window": {
            "start_time": filters.start_time.isoformat() if filters.start_time else None,
            "end_time": filters.end_time.isoformat() if filters.end_time else None,
        },
    }
