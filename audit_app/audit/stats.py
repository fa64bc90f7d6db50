"""Statistics over the events in scope: totals, breakdowns, daily counts, top actors."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

from sqlalchemy import Date, Interval, case, cast, func, literal, literal_column, or_, select
from sqlmodel import Session, col

from audit_app.audit.daily import DAILY, HOURLY, Granularity, start_of_hour
from audit_app.audit.filters import AuditFilters, check_filters_in_scope, where_clause
from audit_app.audit.scope import Scope, tenants_of_partner
from audit_app.auth import Principal
from audit_app.models import AuditLog, utc

TOP_ACTORS = 10
ACCESS_ACTIONS = frozenset({"audit.view", "audit.export", "audit.export.end", "audit.verify"})
"""The records of people reading the log (the console leaves them out of its statistics by default)."""


def _day_column(session: Session) -> Any:
    """The UTC calendar day of an event, in the dialect at hand."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", AuditLog.timestamp), Date)
    return func.date(AuditLog.timestamp)


def _hour_column(session: Session) -> Any:
    """The UTC hour of an event (its start), in the dialect at hand."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", AuditLog.timestamp))
    return func.strftime("%Y-%m-%d %H:00:00", AuditLog.timestamp)


def _as_hour(value: Any) -> datetime:
    """The start of an hourly bucket as an aware UTC datetime, from what either dialect returns."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return start_of_hour(utc(moment))


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):  # an hourly bucket
        return utc(value).date()
    return value if isinstance(value, date) else date.fromisoformat(str(value))


BUCKET_SIZES = ("day", "week", "month", "year")
MAX_BUCKETS = 400  # the bucket size is the smallest that keeps an answer within this many buckets
HOUR_WINDOW = timedelta(hours=48)  # a window given with both ends and at most this long is counted per hour
# The window is cut to the days the splitting into days and hours can step through without overflow.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def _representable(filters: AuditFilters) -> AuditFilters | None:
    """`filters` with the window cut to [EARLIEST, LATEST]; None when nothing of it is left."""
    start, end = filters.start_time, filters.end_time
    if (start is not None and start >= LATEST) or (end is not None and end <= EARLIEST):
        return None
    return filters.replace(
        start_time=None if start is None else max(start, EARLIEST),
        end_time=None if end is None else min(end, LATEST),
    )


def _window_range(
    first: date | None, last: date | None, filters: AuditFilters, zone: tzinfo = UTC
) -> tuple[date, date] | None:
    """The first and last day (in `zone`) of the window; an open side runs to the first or last event."""
    try:
        start = filters.start_time.astimezone(zone).date() if filters.start_time else first
        end = (filters.end_time - timedelta(microseconds=1)).astimezone(zone).date() if filters.end_time else last
    except OverflowError:  # a window ending at the very first instant holds nothing
        return None
    if start is None or end is None or end < start:
        return None
    return start, end


def _bucket_start(day: date, size: str) -> date:
    """The first day of the bucket of `size` holding `day` (weeks start on Monday)."""
    if size == "week":
        return day - timedelta(days=day.weekday())  # 0001-01-01 is a Monday: never before it
    if size == "month":
        return day.replace(day=1)
    if size == "year":
        return day.replace(month=1, day=1)
    return day


def next_bucket(start: date, size: str) -> date | None:
    """The first day of the bucket after the one starting at `start`; None past year 9999."""
    try:
        if size == "day":
            return start + timedelta(days=1)
        if size == "week":
            return start + timedelta(days=7)
        if size == "month":
            return date(start.year + start.month // 12, start.month % 12 + 1, 1)
        return date(start.year + 1, 1, 1)
    except (OverflowError, ValueError):
        return None


def _bucket_count(start: date, end: date, size: str) -> int:
    if size == "day":
        return (end - start).days + 1
    if size == "week":
        return (_bucket_start(end, size) - _bucket_start(start, size)).days // 7 + 1
    if size == "month":
        return (end.year - start.year) * 12 + end.month - start.month + 1
    return end.year - start.year + 1


def hourly(filters: AuditFilters) -> bool:
    """Whether the window is counted per hour: both ends given and at most HOUR_WINDOW apart (48 buckets)."""
    start, end = filters.start_time, filters.end_time
    return start is not None and end is not None and timedelta(0) < end - start <= HOUR_WINDOW


def local_hour(instant: datetime, zone: tzinfo = UTC) -> datetime:
    """The start of the hour of `zone` that `instant` falls in, as an aware datetime of `zone`."""
    return instant.astimezone(zone).replace(minute=0, second=0, microsecond=0)


def _hour_buckets(
    counts: dict[Any, dict[str, int]], start: datetime, end: datetime, zone: tzinfo = UTC
) -> list[dict[str, Any]]:
    """Every hour of `zone` meeting [start, end) (zero ones included), `date` being its start in ISO 8601
    with the zone's offset then (`+00:00` in UTC). `counts` is keyed by the hours' starts in UTC."""
    rows: list[dict[str, Any]] = []
    current = local_hour(start, zone)
    while current < end:
        instant = current.astimezone(UTC)  # (arithmetic in the zone itself would be wall-clock time)
        per_result = counts.get(instant, {})
        rows.append({"date": current.isoformat(), "count": sum(per_result.values()), "by_result": per_result})
        current = local_hour(instant + timedelta(hours=1), zone)
    return rows


def bucketed(
    daily: dict[Any, dict[str, int]], filters: AuditFilters, zone: tzinfo = UTC
) -> tuple[str, list[dict[str, Any]]]:
    """The bucket size for the window and its buckets (zero ones included), from counts per bucket and result.

    A window of at most HOUR_WINDOW with both ends given is counted per hour (`daily` then holds
    counts per hour). Otherwise the size is the smallest of day, week, month and year that keeps
    the answer within MAX_BUCKETS; each bucket is `{"date": its first day, "count", "by_result"}`.
    Days, weeks, months and years are calendar ones of `zone` (`daily` is then keyed by days of
    `zone`). A window of more than MAX_BUCKETS years (only events written before the ingestion
    limits can span one) lists the years holding events, so the answer stays as small as the data.
    """
    if hourly(filters) and filters.start_time is not None and filters.end_time is not None:
        return "hour", _hour_buckets(daily, filters.start_time, filters.end_time, zone)
    window = _window_range(min(daily) if daily else None, max(daily) if daily else None, filters, zone)
    if window is None:
        return "day", []
    start, end = window
    size = next((s for s in BUCKET_SIZES if _bucket_count(start, end, s) <= MAX_BUCKETS), "year")
    merged: dict[date, dict[str, int]] = {}
    for day, per_result in daily.items():
        into = merged.setdefault(_bucket_start(day, size), {})
        for result, n in per_result.items():
            into[result] = into.get(result, 0) + n
    starts: list[date] = []
    if _bucket_count(start, end, size) > MAX_BUCKETS:  # centuries of window: only the years holding events
        starts = sorted(merged)
    else:
        current: date | None = _bucket_start(start, size)
        while current is not None and current <= end:
            starts.append(current)
            current = next_bucket(current, size)
    return size, [
        {"date": b.isoformat(), "count": sum(merged.get(b, {}).values()), "by_result": merged.get(b, {})}
        for b in starts
    ]


def _window_echo(filters: AuditFilters) -> dict[str, str | None]:
    """The window asked for, as the response states it."""
    return {
        "start_time": filters.start_time.isoformat() if filters.start_time else None,
        "end_time": filters.end_time.isoformat() if filters.end_time else None,
    }


# --- Buckets of a time zone other than UTC --------------------------------------------------------
# A local day is not made of UTC days, so the daily counts cannot answer for another zone. Python
# reads the zone's UTC offsets from zoneinfo (the same data for SQLite and PostgreSQL, which
# then need no time zone support of their own), and one grouped query turns each instant into
# its local day (or hour) with a CASE over those fixed offsets. Where every offset is whole hours
# (most zones) a local day is made of UTC hours: the hourly counts answer for the window's whole
# hours and only its partial first and last hour are counted from the events. A :30 or :45 offset
# (Asia/Kolkata, Asia/Kathmandu) cuts UTC hours, so there every event of the window is counted.
# The other figures (totals, breakdowns, top actors) do not depend on the zone and keep their sources.
UTC_NAMES = frozenset({"UTC", "Etc/UTC"})


def is_utc(zone: tzinfo | None) -> bool:
    """Whether `zone` means UTC (no zone at all does)."""
    return zone is None or zone is UTC or getattr(zone, "key", None) in UTC_NAMES


def _offset_at(instant: datetime, zone: tzinfo) -> int:
    """`zone`'s UTC offset at `instant`, in seconds."""
    offset = instant.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def offset_steps(zone: tzinfo, days: Iterable[date]) -> tuple[int, list[tuple[datetime, int]]]:
    """`zone`'s UTC offset (seconds) over the UTC days `days`: the first one, then each change `(instant, offset)`.

    Only the days holding events matter, so the list stays as short as the changes within them
    (one per daylight-saving change), whatever the window's length. Between two such days the
    offset may change at any instant: no event lies there. A change is found to the second by
    bisection within its day (a zone changes at most once a day). The days around the very
    first and last representable instant keep offset 0 (their local days could not be written).
    """
    first: int | None = None
    steps: list[tuple[datetime, int]] = []

    def move(at: datetime, offset: int) -> None:
        nonlocal first
        if first is None:
            first = offset
        elif offset != (steps[-1][1] if steps else first):
            steps.append((at, offset))

    for day in sorted(set(days)):
        start = datetime.combine(day, time(), UTC)
        if start < EARLIEST or start >= LATEST - timedelta(days=1):
            move(start, 0)
            continue
        at_start, at_end = _offset_at(start, zone), _offset_at(start + timedelta(days=1, microseconds=-1), zone)
        move(start, at_start)
        if at_end != at_start:
            before, after = 0, 24 * 3600  # seconds into the day: still at_start at `before`, changed at `after`
            while after - before > 1:
                middle = (before + after) // 2
                if _offset_at(start + timedelta(seconds=middle), zone) == at_start:
                    before = middle
                else:
                    after = middle
            move(start + timedelta(seconds=after), at_end)
    return first or 0, steps


def _offset_column(column: Any, first: int, steps: list[tuple[datetime, int]]) -> Any:
    """SQL of the UTC offset (seconds) at `column`'s instant: a CASE over the changes."""
    if not steps:
        return literal(first)
    whens, before = [], first
    for at, offset in steps:
        whens.append((column < at, before))
        before = offset
    return case(*whens, else_=before)


def _shifted(session: Session, column: Any, offset: Any, per_hour: bool) -> Any:
    """The local day (or local hour's start, as text or naive time) of `column` moved by `offset` seconds."""
    if session.get_bind().dialect.name == "postgresql":
        local = func.timezone("UTC", column) + offset * literal_column("INTERVAL '1 second'", Interval)
        return func.date_trunc("hour", local) if per_hour else cast(local, Date)
    modifier = func.printf("%d seconds", offset)
    return func.strftime("%Y-%m-%d %H:00:00", column, modifier) if per_hour else func.date(column, modifier)


def _local_key(value: Any, offset: int, per_hour: bool) -> Any:
    """A bucket of the local series: the local day, or the instant (in UTC) the local hour starts."""
    if not per_hour:
        try:
            return _as_date(value)
        except ValueError:  # a day before year 1 (an event of 0001-01-01 west of Greenwich)
            return date.min
    naive = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return naive.replace(tzinfo=timezone(timedelta(seconds=offset))).astimezone(UTC)


@dataclass(frozen=True)
class _Offsets:
    """A zone's UTC offsets over the days holding events (`offset_steps`), and whether buckets are hours."""

    first: int
    steps: list[tuple[datetime, int]]
    per_hour: bool

    def whole_hours(self) -> bool:
        """Whether every offset is whole hours and changes on a UTC hour: local days are then made of UTC hours."""
        return self.first % 3600 == 0 and all(
            offset % 3600 == 0 and at == start_of_hour(at) for at, offset in self.steps
        )


def _add_zoned(
    series: dict[Any, dict[str, int]],
    session: Session,
    offsets: _Offsets,
    time_column: Any,
    result_column: Any,
    count: Any,
    where: list[Any],
) -> None:
    """Add to `series` the counts per local bucket and result of one source (events or hourly counts)."""
    first, steps, per_hour = offsets.first, offsets.steps, offsets.per_hour
    offset = _offset_column(time_column, first, steps).label("utc_offset")
    key = _shifted(session, time_column, offset, per_hour).label("bucket")
    columns: list[Any] = [key, result_column]
    columns += [offset] if per_hour and steps else []  # an hour repeated when the clocks go back
    for row in session.execute(select(*columns, count).where(*where).group_by(*columns)).all():
        bucket = _local_key(row[0], int(row[2]) if per_hour and steps else first, per_hour)
        per_result = series.setdefault(bucket, {})
        per_result[row[1]] = per_result.get(row[1], 0) + int(row[-1])


def zoned_series(
    session: Session, conditions: list[Any], zone: tzinfo, days: Iterable[date], per_hour: bool
) -> dict[Any, dict[str, int]]:
    """Counts per local day (or hour) of `zone` and result of the events matching `conditions`, in SQL.

    `days` are the UTC days holding such events (the offsets are only needed there).
    """
    offsets = _Offsets(*offset_steps(zone, days), per_hour)
    series: dict[Any, dict[str, int]] = {}
    _add_zoned(series, session, offsets, AuditLog.timestamp, col(AuditLog.result), func.count(), conditions)
    return series


def zoned_series_from_hours(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    excluded: list[str],
    zone: tzinfo,
    days: Iterable[date],
) -> dict[Any, dict[str, int]]:
    """`zoned_series` of the tenant/partner/time filters, read from the hourly counts where the zone allows.

    When the zone's offsets over the data are whole hours (most zones) a local day (or hour) is
    made of whole UTC hours: the window's whole hours come from `audit_hourly_count` and only
    its partial first and last hour from the events. Otherwise (:30 and :45 offsets) every event
    of the window is counted.
    """
    offsets = _Offsets(*offset_steps(zone, days), hourly(filters))
    raw = where_clause(session, principal, filters)
    drop = [col(AuditLog.action).not_in(excluded)] if excluded else []
    series: dict[Any, dict[str, int]] = {}
    if not offsets.whole_hours():
        _add_zoned(series, session, offsets, AuditLog.timestamp, col(AuditLog.result), func.count(), raw + drop)
        return series
    start, end = filters.start_time, filters.end_time
    low = None if start is None else start_of_hour(start)  # the window's first and last whole hour
    low = low + timedelta(hours=1) if low is not None and start is not None and low < start else low
    high = None if end is None else start_of_hour(end)
    edges: list[tuple[datetime | None, datetime | None]] = [(start, end)]
    if low is None or high is None or low < high:
        table = HOURLY.counts
        hour = getattr(table, HOURLY.bucket)
        where = [Scope.of(principal).condition(table.tenant_id), *_tenant_filters(table, filters)]
        where += [hour >= low] if low is not None else []
        where += [hour < high] if high is not None else []
        where += [col(table.action).not_in(excluded)] if excluded else []
        _add_zoned(series, session, offsets, hour, col(table.result), func.sum(table.count), where)
        edges = [(a, b) for a, b in ((start, low), (high, end)) if a is not None and b is not None and a < b]
    for edge_start, edge_end in edges:
        where = where_clause(session, principal, filters.replace(start_time=edge_start, end_time=edge_end))
        _add_zoned(series, session, offsets, AuditLog.timestamp, col(AuditLog.result), func.count(), where + drop)
    return series


def _utc_days(buckets: Iterable[Any]) -> set[date]:
    """The UTC days of buckets of the UTC series (days or hours)."""
    return {utc(b).date() if isinstance(b, datetime) else b for b in buckets}


def _empty_stats(filters: AuditFilters, zone: tzinfo | None = None) -> dict[str, Any]:
    """The answer for a window no event can fall in (it lies beyond the representable days)."""
    empty = _stats_document({}, {}, AuditFilters())
    return empty | {"window": _window_echo(filters), "tz": "UTC" if is_utc(zone) else str(zone)}


def _series(
    session: Session | None,
    conditions: list[Any],
    utc_series: dict[Any, dict[str, int]],
    filters: AuditFilters,
    zone: tzinfo,
) -> dict[str, Any]:
    """`bucket`, `by_day` and `tz` of the answer: the UTC series as it is, or the events recounted in `zone`."""
    if is_utc(zone):
        bucket, by_day = bucketed(utc_series, filters)
        return {"bucket": bucket, "by_day": by_day, "tz": "UTC"}
    per_hour = hourly(filters)
    days = _utc_days(utc_series)
    local = zoned_series(session, conditions, zone, days, per_hour) if session is not None and days else {}
    bucket, by_day = bucketed(local, filters, zone)
    return {"bucket": bucket, "by_day": by_day, "tz": str(zone)}


def compute_stats_scan(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    *,
    exclude_actions: frozenset[str] = frozenset(),
    zone: tzinfo | None = None,
) -> dict[str, Any]:
    """Aggregate the events matching `filters` within the caller's scope, all in SQL, from every event.

    Events whose action is in `exclude_actions` are left out of every figure. The time series
    is bucketed in calendar days (hours, weeks, ...) of `zone` (UTC when None; `zoned_series`).
    """
    bounded = _representable(filters)
    if bounded is None:
        check_filters_in_scope(session, principal, filters)
        return _empty_stats(filters, zone)
    filters = bounded
    conditions = where_clause(session, principal, filters)
    conditions += [col(AuditLog.action).not_in(sorted(exclude_actions))] if exclude_actions else []
    per_hour = hourly(filters)
    day = (_hour_column if per_hour else _day_column)(session).label("day")
    as_bucket = _as_hour if per_hour else _as_date

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
        daily.setdefault(as_bucket(day_value), {})[result] = count
    series = _series(session, conditions, daily, filters, zone or UTC)
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
        "by_day": series["by_day"],
        "bucket": series["bucket"],
        "top_actors": [{"actor_id": a, "actor_email": e, "count": n} for a, e, n in top],
        "unique_actors": unique_actors,
        "failure_rate": round(failures / total, 4) if total else 0.0,
        "window": _window_echo(filters),
        "tz": series["tz"],
    }


DAILY_FILTERS = frozenset({"tenant_id", "partner_id", "start_time", "end_time"})


def compute_stats(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    *,
    exclude_actions: frozenset[str] = frozenset(),
    zone: tzinfo | None = None,
) -> dict[str, Any]:
    """The same figures as `compute_stats_scan`, read from the daily counts where they can answer.

    With a `zone` other than UTC the time series is counted in that zone's calendar days by
    `zoned_series_from_hours` (the hourly counts where the zone's offsets are whole hours).

    Whole UTC days of the window come from `audit_daily_count`/`audit_daily_actor`, whole hours
    of its partial first and last day from the hourly tables, and only the partial hours at its
    very edges are counted from the events themselves. Filters the daily
    tables do not carry (actor, action, ...) fall back to the full scan. Events whose action is
    in `exclude_actions` are left out: the counts tables carry the action, the actor tables do
    not, so those actors' excluded events are counted from the events and subtracted.
    """
    if not set(filters.active()) <= DAILY_FILTERS:
        return compute_stats_scan(session, principal, filters, exclude_actions=exclude_actions, zone=zone)
    excluded = sorted(exclude_actions)
    check_filters_in_scope(session, principal, filters)
    bounded = _representable(filters)
    if bounded is None:
        return _empty_stats(filters, zone)
    filters = bounded
    per_hour = hourly(filters)  # then the whole window comes from the hourly tables and its edges
    full_days, edges = (None, [(filters.start_time, filters.end_time)]) if per_hour else _split_window(filters)
    as_bucket = _as_hour if per_hour else _as_date
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
        where += [col(table.action).not_in(excluded)] if excluded else []
        group = (bucket, col(table.action), col(table.resource_type), col(table.result))
        for bucket_value, action, resource_type, result, n in session.execute(
            select(*group, func.sum(table.count)).where(*where).group_by(*group)
        ).all():
            add((as_bucket(bucket_value), action, resource_type, result), int(n))
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
    day = (_hour_column if per_hour else _day_column)(session).label("day")
    for start, end_time in _hourly_split(edges, read):
        raw = where_clause(session, principal, filters.replace(start_time=start, end_time=end_time))
        counted = [*raw, col(AuditLog.action).not_in(excluded)] if excluded else raw
        group_raw = (day, col(AuditLog.action), func.coalesce(AuditLog.resource_type, ""), col(AuditLog.result))
        for day_value, action, resource_type, result, n in session.execute(
            select(*group_raw, func.count()).where(*counted).group_by(*group_raw)
        ).all():
            add((as_bucket(day_value), action, resource_type, result), n)
        for actor_id, email, n in session.execute(
            select(col(AuditLog.actor_id), func.max(AuditLog.actor_email), func.count())
            .where(*raw)
            .group_by(AuditLog.actor_id)
        ).all():
            add_actor(actor_id, email, n)
    if excluded:
        for actor_id, n in session.execute(
            select(col(AuditLog.actor_id), func.count())
            .where(*where_clause(session, principal, filters), col(AuditLog.action).in_(excluded))
            .group_by(AuditLog.actor_id)
        ).all():
            add_actor(actor_id, None, -n)
        actors = {actor_id: known for actor_id, known in actors.items() if known[0] > 0}
    if zone is None or is_utc(zone):
        return _stats_document(counts, actors, filters)

    def in_zone(daily: dict[Any, dict[str, int]]) -> dict[str, Any]:
        local = zoned_series_from_hours(session, principal, filters, excluded, zone, _utc_days(daily))
        bucket, by_day = bucketed(local, filters, zone)
        return {"bucket": bucket, "by_day": by_day, "tz": str(zone)}

    return _stats_document(counts, actors, filters, in_zone)


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
        conditions.append(table.tenant_id.in_(filters.values("tenant_id")))
    if filters.partner_id:
        partners = filters.values("partner_id")
        conditions.append(or_(*(table.tenant_id.in_(tenants_of_partner(p)) for p in partners)))
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
    counts: dict[tuple[date, str, str, str], int],
    actors: dict[str, list[Any]],
    filters: AuditFilters,
    series: Callable[[dict[Any, dict[str, int]]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The /stats response from counts per (UTC day, action, resource type, result) and per actor.

    `series` turns the counts per UTC day and result into `bucket`, `by_day` and `tz` (UTC buckets when None).
    """
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
    buckets = series(daily) if series is not None else _series(None, [], daily, filters, UTC)
    top = sorted(actors.items(), key=lambda item: (-item[1][0], item[0]))[:TOP_ACTORS]
    failures = total - by_result.get("success", 0)
    return {
        "total": total,
        "by_action": _ranked(by_action),
        "by_result": _ranked(by_result),
        "by_resource_type": _ranked(by_resource_type),
        "by_day": buckets["by_day"],
        "bucket": buckets["bucket"],
        "top_actors": [{"actor_id": a, "actor_email": e, "count": n} for a, (n, e) in top],
        "unique_actors": len(actors),
        "failure_rate": round(failures / total, 4) if total else 0.0,
        "window": _window_echo(filters),
        "tz": buckets["tz"],
    }
