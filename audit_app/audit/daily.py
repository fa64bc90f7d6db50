"""Daily pre-aggregated counts, kept in step with `audit_log` so /stats need not scan every event."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, delete, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from audit_app.models import AuditDailyActor, AuditDailyCount, utc

REBUILD_DAILY_COUNT = """
INSERT INTO audit_daily_count (tenant_id, day, action, resource_type, result, count)
SELECT tenant_id, {day}, action, coalesce(resource_type, ''), result, count(*)
FROM audit_log GROUP BY tenant_id, {day}, action, coalesce(resource_type, ''), result
"""
REBUILD_DAILY_ACTOR = """
INSERT INTO audit_daily_actor (tenant_id, day, actor_id, actor_email, count)
SELECT tenant_id, {day}, actor_id, max(actor_email), count(*)
FROM audit_log GROUP BY tenant_id, {day}, actor_id
"""


def day_sql(dialect: str) -> str:
    """The UTC calendar day of `audit_log.timestamp` as SQL of `dialect`."""
    return "CAST(timezone('UTC', timestamp) AS DATE)" if dialect == "postgresql" else "date(timestamp)"


def _upsert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def add_to_daily_counts(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Count freshly inserted events into the daily tables, in the caller's transaction."""
    counts: Counter[tuple[str, date, str, str, str]] = Counter()
    actors: Counter[tuple[str, date, str]] = Counter()
    emails: dict[tuple[str, date, str], str | None] = {}
    for row in rows:
        day = utc(row["timestamp"]).date()
        counts[(row["tenant_id"], day, row["action"], row["resource_type"] or "", row["result"])] += 1
        key = (row["tenant_id"], day, row["actor_id"])
        actors[key] += 1
        email, known = row.get("actor_email"), emails.get(key)
        emails[key] = email if known is None or (email is not None and email > known) else known
    if not counts:
        return
    if session.get_bind().dialect.name == "postgresql":
        _upsert_postgres(session, counts, actors, emails)
        return
    insert = _upsert(session)
    stmt = insert(AuditDailyCount.__table__)  # type: ignore[attr-defined]
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "day", "action", "resource_type", "result"],
        set_={"count": stmt.table.c["count"] + stmt.excluded["count"]},
    )
    session.execute(
        stmt,
        [
            {"tenant_id": t, "day": d, "action": a, "resource_type": r, "result": res, "count": n}
            for (t, d, a, r, res), n in sorted(counts.items())
        ],
    )
    stmt = insert(AuditDailyActor.__table__)  # type: ignore[attr-defined]
    current, new = stmt.table.c["actor_email"], stmt.excluded["actor_email"]
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "day", "actor_id"],
        set_={
            "count": stmt.table.c["count"] + stmt.excluded["count"],
            "actor_email": case(
                (new.is_(None), current),
                (current.is_(None) | (new > current), new),  # type: ignore[operator]
                else_=current,
            ),
        },
    )
    session.execute(
        stmt,
        [
            {"tenant_id": t, "day": d, "actor_id": a, "actor_email": emails[(t, d, a)], "count": n}
            for (t, d, a), n in sorted(actors.items())
        ],
    )


UPSERT_COUNTS_PG = """
INSERT INTO audit_daily_count (tenant_id, day, action, resource_type, result, count)
SELECT * FROM unnest(CAST(:tenant AS text[]), CAST(:day AS date[]), CAST(:action AS text[]),
                     CAST(:resource_type AS text[]), CAST(:result AS text[]), CAST(:n AS bigint[]))
ON CONFLICT (tenant_id, day, action, resource_type, result)
DO UPDATE SET count = audit_daily_count.count + excluded.count
"""
UPSERT_ACTORS_PG = """
INSERT INTO audit_daily_actor (tenant_id, day, actor_id, actor_email, count)
SELECT * FROM unnest(CAST(:tenant AS text[]), CAST(:day AS date[]), CAST(:actor AS text[]),
                     CAST(:email AS text[]), CAST(:n AS bigint[]))
ON CONFLICT (tenant_id, day, actor_id) DO UPDATE SET
  count = audit_daily_actor.count + excluded.count,
  actor_email = CASE
    WHEN excluded.actor_email IS NULL THEN audit_daily_actor.actor_email
    WHEN audit_daily_actor.actor_email IS NULL OR excluded.actor_email > audit_daily_actor.actor_email
      THEN excluded.actor_email
    ELSE audit_daily_actor.actor_email END
"""


def _upsert_postgres(
    session: Session,
    counts: Counter[tuple[str, date, str, str, str]],
    actors: Counter[tuple[str, date, str]],
    emails: dict[tuple[str, date, str], str | None],
) -> None:
    """Both upserts as one statement each: the rows travel as arrays (a batch of 1,000 events
    touches hundreds of daily rows; one round trip per row would cost more than the events)."""
    keys = sorted(counts)
    session.execute(
        text(UPSERT_COUNTS_PG),
        {
            "tenant": [k[0] for k in keys],
            "day": [k[1] for k in keys],
            "action": [k[2] for k in keys],
            "resource_type": [k[3] for k in keys],
            "result": [k[4] for k in keys],
            "n": [counts[k] for k in keys],
        },
    )
    people = sorted(actors)
    session.execute(
        text(UPSERT_ACTORS_PG),
        {
            "tenant": [k[0] for k in people],
            "day": [k[1] for k in people],
            "actor": [k[2] for k in people],
            "email": [emails[k] for k in people],
            "n": [actors[k] for k in people],
        },
    )


def rebuild_daily_counts(session: Session) -> None:
    """Recompute both daily tables from `audit_log` (after a bulk load that bypassed ingest)."""
    day = day_sql(session.get_bind().dialect.name)
    session.execute(delete(AuditDailyCount))
    session.execute(delete(AuditDailyActor))
    session.execute(text(REBUILD_DAILY_COUNT.format(day=day)))
    session.execute(text(REBUILD_DAILY_ACTOR.format(day=day)))


def recount_daily_counts(session: Session, tenant_id: str, through: datetime) -> None:
    """Recount a tenant's days up to the day of `through` from `audit_log` (call after purging its events)."""
    dialect = session.get_bind().dialect.name
    last_day = utc(through).date()
    for table in (AuditDailyCount, AuditDailyActor):
        session.execute(delete(table).where(table.tenant_id == tenant_id, table.day <= last_day))  # type: ignore[arg-type]
    scope = f" WHERE tenant_id = :tenant AND {day_sql(dialect)} <= :last_day GROUP BY"
    params = {"tenant": tenant_id, "last_day": last_day if dialect == "postgresql" else last_day.isoformat()}
    for sql in (REBUILD_DAILY_COUNT, REBUILD_DAILY_ACTOR):
        session.execute(text(sql.format(day=day_sql(dialect)).replace(" GROUP BY", scope, 1)), params)
