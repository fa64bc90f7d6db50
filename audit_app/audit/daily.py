"""Pre-aggregated counts per UTC day and per UTC hour, kept in step with `audit_log` for /stats.

/stats reads whole days of a window from the daily tables, whole hours of its first and last
day from the hourly tables, and only the partial hours at its very edges from the events, so
its cost depends on the number of tenants, actions and actors, hardly on the number of events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, text
from sqlmodel import Session

from audit_app.models import AuditDailyActor, AuditDailyCount, AuditHourlyActor, AuditHourlyCount, utc

REBUILD_COUNT = """
INSERT INTO {table} (tenant_id, {bucket}, action, resource_type, result, count)
SELECT tenant_id, {expr}, action, coalesce(resource_type, ''), result, count(*)
FROM audit_log{where} GROUP BY tenant_id, {expr}, action, coalesce(resource_type, ''), result
"""
REBUILD_ACTOR = """
INSERT INTO {table} (tenant_id, {bucket}, actor_id, actor_email, count)
SELECT tenant_id, {expr}, actor_id, max(actor_email), count(*)
FROM audit_log{where} GROUP BY tenant_id, {expr}, actor_id
"""
UPSERT_COUNTS_PG = """
INSERT INTO {table} (tenant_id, {bucket}, action, resource_type, result, count)
SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb))
  AS r(tenant_id text, {bucket} {type}, action text, resource_type text, result text, count bigint)
ON CONFLICT (tenant_id, {bucket}, action, resource_type, result)
DO UPDATE SET count = {table}.count + excluded.count
"""
UPSERT_ACTORS_PG = """
INSERT INTO {table} (tenant_id, {bucket}, actor_id, actor_email, count)
SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb))
  AS r(tenant_id text, {bucket} {type}, actor_id text, actor_email text, count bigint)
ON CONFLICT (tenant_id, {bucket}, actor_id) DO UPDATE SET
  count = {table}.count + excluded.count,
  actor_email = CASE
    WHEN excluded.actor_email IS NULL THEN {table}.actor_email
    WHEN {table}.actor_email IS NULL OR excluded.actor_email > {table}.actor_email THEN excluded.actor_email
    ELSE {table}.actor_email END
"""

UPSERT_COUNTS_SQLITE = """ON CONFLICT (tenant_id, {bucket}, action, resource_type, result)
DO UPDATE SET count = {table}.count + excluded.count
"""
UPSERT_ACTORS_SQLITE = """ON CONFLICT (tenant_id, {bucket}, actor_id) DO UPDATE SET
  count = {table}.count + excluded.count,
  actor_email = CASE
    WHEN excluded.actor_email IS NULL THEN {table}.actor_email
    WHEN {table}.actor_email IS NULL OR excluded.actor_email > {table}.actor_email THEN excluded.actor_email
    ELSE {table}.actor_email END
"""


def day_sql(dialect: str) -> str:
    """The UTC calendar day of `audit_log.timestamp` as SQL of `dialect`."""
    return "CAST(timezone('UTC', timestamp) AS DATE)" if dialect == "postgresql" else "date(timestamp)"


def hour_sql(dialect: str) -> str:
    """The UTC hour of `audit_log.timestamp`, as the hourly tables store it."""
    if dialect == "postgresql":
        return "timezone('UTC', date_trunc('hour', timezone('UTC', timestamp)))"
    return r"strftime('%Y-%m-%d %H\:00\:00.000000', timestamp)"  # \: keeps text() from seeing binds


def start_of_hour(value: datetime) -> datetime:
    """The UTC hour `value` falls in."""
    return utc(value).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Granularity:
    """One pair of aggregate tables and how an event's time maps to their bucket."""

    counts: Any
    actors: Any
    bucket: str
    pg_type: str
    of: Callable[[datetime], Any]
    sql: Callable[[str], str]


DAILY = Granularity(AuditDailyCount, AuditDailyActor, "day", "date", lambda ts: utc(ts).date(), day_sql)
HOURLY = Granularity(AuditHourlyCount, AuditHourlyActor, "hour", "timestamptz", start_of_hour, hour_sql)
GRANULARITIES = (DAILY, HOURLY)


def sqlite_count_statements() -> list[str]:
    """The statements that count the rows above rowid `:mark` into each aggregate table (SQLite).

    The rebuild's own INSERT ... SELECT ... GROUP BY limited to the new rows, adding to existing
    buckets ON CONFLICT. NOT INDEXED keeps SQLite on the rowid range: without statistics it chose
    to scan a whole index in the order of the grouping instead (seen for the actor tables).
    """
    where = " NOT INDEXED WHERE rowid > :mark"
    statements = []
    for granularity in GRANULARITIES:
        for template, table, conflict in (
            (REBUILD_COUNT, granularity.counts, UPSERT_COUNTS_SQLITE),
            (REBUILD_ACTOR, granularity.actors, UPSERT_ACTORS_SQLITE),
        ):
            name = table.__tablename__
            upsert = conflict.format(table=name, bucket=granularity.bucket)
            statements.append(_rebuild_sql(template, name, granularity, "sqlite", where) + upsert)
    return statements


def count_rows_after(session: Session, mark: int) -> None:
    """Count the events this transaction inserted above rowid `mark` into the daily and hourly tables (SQLite).

    SQLite groups and upserts them itself (`sqlite_count_statements`), where one executemany of
    the grouped rows per table spent most of its time in SQLAlchemy's per-row parameter handling.
    """
    for statement in sqlite_count_statements():
        session.execute(text(statement), {"mark": mark})


def add_to_daily_counts(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Count freshly inserted events into the daily and hourly tables, in the caller's transaction (PostgreSQL)."""
    rows = list(rows)
    for granularity in GRANULARITIES:
        counts: Counter[tuple[str, Any, str, str, str]] = Counter()
        actors: Counter[tuple[str, Any, str]] = Counter()
        emails: dict[tuple[str, Any, str], str | None] = {}
        for row in rows:
            bucket = granularity.of(row["timestamp"])
            counts[(row["tenant_id"], bucket, row["action"], row["resource_type"] or "", row["result"])] += 1
            key = (row["tenant_id"], bucket, row["actor_id"])
            actors[key] += 1
            email, known = row.get("actor_email"), emails.get(key)
            emails[key] = email if known is None or (email is not None and email > known) else known
        if not counts:
            return
        _upsert_postgres(session, granularity, counts, actors, emails)


def _upsert_postgres(
    session: Session,
    granularity: Granularity,
    counts: Counter[tuple[str, Any, str, str, str]],
    actors: Counter[tuple[str, Any, str]],
    emails: dict[tuple[str, Any, str], str | None],
) -> None:
    """Both upserts as one statement each: the rows travel as one JSON document (a batch of 1,000
    events touches hundreds of aggregate rows; one round trip per row would cost more than the
    events, and json.dumps is cheaper than adapting a dozen typed arrays value by value).

    Rows go in key order, the one order every writer uses, so concurrent upserts cannot deadlock.
    """
    bucket = granularity.bucket
    names = {"bucket": bucket, "type": granularity.pg_type}
    count_rows = [
        {"tenant_id": t, bucket: b.isoformat(), "action": a, "resource_type": r, "result": res, "count": counts[key]}
        for key in sorted(counts)
        for t, b, a, r, res in (key,)
    ]
    session.execute(
        text(UPSERT_COUNTS_PG.format(table=granularity.counts.__tablename__, **names)),
        {"rows": json.dumps(count_rows)},
    )
    actor_rows = [
        {"tenant_id": t, bucket: b.isoformat(), "actor_id": a, "actor_email": emails[key], "count": actors[key]}
        for key in sorted(actors)
        for t, b, a in (key,)
    ]
    session.execute(
        text(UPSERT_ACTORS_PG.format(table=granularity.actors.__tablename__, **names)),
        {"rows": json.dumps(actor_rows)},
    )


def _rebuild_sql(template: str, table: str, granularity: Granularity, dialect: str, where: str = "") -> str:
    return template.format(table=table, bucket=granularity.bucket, expr=granularity.sql(dialect), where=where)


def rebuild_daily_counts(session: Session) -> None:
    """Recompute the daily and hourly tables from `audit_log` (after a bulk load that bypassed ingest)."""
    dialect = session.get_bind().dialect.name
    for granularity in GRANULARITIES:
        for template, table in ((REBUILD_COUNT, granularity.counts), (REBUILD_ACTOR, granularity.actors)):
            session.execute(delete(table))
            session.execute(text(_rebuild_sql(template, table.__tablename__, granularity, dialect)))


def recount_daily_counts(session: Session, tenant_id: str, through: datetime) -> None:
    """Recount a tenant's days (and hours) up to the day of `through` from `audit_log`.

    Call it after purging the tenant's events up to `through`, in the same transaction.
    """
    dialect = session.get_bind().dialect.name
    last_day = utc(through).date()
    ends: dict[str, Any] = {"day": last_day, "hour": start_of_hour(through).replace(hour=23)}
    for granularity in GRANULARITIES:
        end = ends[granularity.bucket]
        for table in (granularity.counts, granularity.actors):
            column = getattr(table, granularity.bucket)
            session.execute(delete(table).where(table.tenant_id == tenant_id, column <= end))
        where = f" WHERE tenant_id = :tenant AND {day_sql(dialect)} <= :last_day"
        params = {"tenant": tenant_id, "last_day": last_day if dialect == "postgresql" else last_day.isoformat()}
        for template, table in ((REBUILD_COUNT, granularity.counts), (REBUILD_ACTOR, granularity.actors)):
            session.execute(text(_rebuild_sql(template, table.__tablename__, granularity, dialect, where)), params)
