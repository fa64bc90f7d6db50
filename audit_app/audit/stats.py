"""Statistics over the events in scope: totals, breakdowns, daily counts, top actors."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, cast, func, select
from sqlmodel import Session, col

from audit_app.audit.filters import AuditFilters, where_clause
from audit_app.auth import Principal
from audit_app.models import AuditLog

TOP_ACTORS = 10
MAX_DAYS = 3660  # a window wider than ten years is shown from its first to its last event


def _day_column(session: Session) -> Any:
    """The UTC calendar day of an event, in the dialect at hand."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", AuditLog.timestamp), Date)
    return func.date(AuditLog.timestamp)


def _as_date(value: Any) -> date:
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


def compute_stats(session: Session, principal: Principal, filters: AuditFilters) -> dict[str, Any]:
    """Aggregate the events matching `filters` within the caller's scope, all in SQL."""
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
