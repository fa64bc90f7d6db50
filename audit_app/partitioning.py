"""Native monthly range partitioning of `audit_log` on PostgreSQL: the optional migration.

    python -m audit_app partition [--months-ahead 3]

The first run turns the configured database's `audit_log` into a partitioned table; run it in
a maintenance window (it rewrites the table; the benchmark runs it with `--partitioned`).
Later runs only add the months ahead that are missing, so the same command belongs in a
monthly cron job. What changes, and why the application code does not:

- `audit_log` becomes a table PARTITION BY RANGE ("timestamp") with one partition per UTC
  month from the oldest event to `months_ahead` months ahead, plus a DEFAULT partition for
  anything outside them; every index keeps its name and columns and becomes a partitioned
  index.
- A unique constraint on a partitioned table must contain the partition key, so the primary
  key becomes (id, timestamp) and the chain constraint (tenant_id, chain_seq, timestamp).
  Event ids are server-made UUIDs, and chain_seq is allocated under the tenant's chain_head
  row lock, so neither can repeat in practice; the chain verifier still reports a repeat.
- The append-only triggers are re-created on the partitioned table (PostgreSQL >= 13 runs
  row triggers of a partitioned table on every partition).
- Queries do not change: every list, stats and export query carries a time range or an
  ORDER BY timestamp and is pruned or merged per partition by the planner.

Rows that arrive for a month without a partition land in the DEFAULT partition, which must be
emptied before that month's partition can be created.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg

from audit_app.progress import Progress, no_progress

PARENT = "audit_log"
PARTITIONING = "partitioning audit_log (steps)"  # what partition_audit_log reports to its progress callback


def _month_start(value: date) -> date:
    return value.replace(day=1)


def _next_month(value: date) -> date:
    return date(value.year + value.month // 12, value.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"audit_log_y{month.year:04d}m{month.month:02d}"


def create_month_partitions(conn: psycopg.Connection, first: date, last: date) -> list[str]:
    """Create the missing monthly partitions from the month of `first` to the month of `last`."""
    created = []
    month = _month_start(first)
    while month <= last:
        name = partition_name(month)
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        if not (exists and exists[0]):
            conn.execute(
                f"CREATE TABLE {name} PARTITION OF {PARENT} FOR VALUES "
                f"FROM ('{month.isoformat()} 00:00:00+00') TO ('{_next_month(month).isoformat()} 00:00:00+00')"
            )
            created.append(name)
        month = _next_month(month)
    return created


def is_partitioned(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (PARENT,)).fetchone()
    return bool(row and row[0] == "p")


def partition_audit_log(dsn: str, *, months_ahead: int = 3, progress: Progress = no_progress) -> int:
    """Turn `audit_log` into a monthly partitioned table in one transaction; return the partition count.

    `progress` hears of the steps done: the copy of the rows, then each constraint, index and trigger.
    """
    with psycopg.connect(dsn) as conn:
        if is_partitioned(conn):
            return 0
        indexes = [
            definition
            for name, definition in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", (PARENT,)
            ).fetchall()
            if name not in ("audit_log_pkey", "uq_audit_log_tenant_chain_seq")
        ]
        triggers = [
            row[0]
            for row in conn.execute(
                "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal",
                (PARENT,),
            ).fetchall()
        ]
        bounds = conn.execute("SELECT min(timestamp), max(timestamp) FROM audit_log").fetchone()
        today = datetime.now(UTC).date()
        first = bounds[0].astimezone(UTC).date() if bounds and bounds[0] else today
        newest = bounds[1].astimezone(UTC).date() if bounds and bounds[1] else today
        last = months_ahead_of(max(today, newest), months_ahead)
        conn.execute(f"ALTER TABLE {PARENT} RENAME TO audit_log_flat")
        for definition in indexes:  # free the index names for the partitioned table
            name = definition.split(" INDEX ", 1)[1].split(" ON ", 1)[0]
            conn.execute(f"ALTER INDEX {name} RENAME TO {name}_flat")
        conn.execute("ALTER TABLE audit_log_flat RENAME CONSTRAINT audit_log_pkey TO audit_log_flat_pkey")
        conn.execute(
            "ALTER TABLE audit_log_flat RENAME CONSTRAINT uq_audit_log_tenant_chain_seq TO uq_audit_log_flat_chain"
        )
        conn.execute(
            f"CREATE TABLE {PARENT} (LIKE audit_log_flat INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
            'PARTITION BY RANGE ("timestamp")'
        )
        months = create_month_partitions(conn, first, last)
        conn.execute(f"CREATE TABLE audit_log_default PARTITION OF {PARENT} DEFAULT")
        steps = 5 + len(indexes) + len(triggers)  # copy, drop, two constraints, each index and trigger, analyze
        progress(PARTITIONING, 0, steps)
        conn.execute("INSERT INTO audit_log SELECT * FROM audit_log_flat")
        progress(PARTITIONING, 1, steps)
        conn.execute("DROP TABLE audit_log_flat")
        conn.execute(f'ALTER TABLE {PARENT} ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id, "timestamp")')
        conn.execute(
            f"ALTER TABLE {PARENT} ADD CONSTRAINT uq_audit_log_tenant_chain_seq "
            'UNIQUE (tenant_id, chain_seq, "timestamp")'
        )
        progress(PARTITIONING, 4, steps)
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for done, definition in enumerate([*indexes, *triggers], start=5):
            conn.execute(definition)
            progress(PARTITIONING, done, steps)
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ANALYZE {PARENT}")
    progress(PARTITIONING, steps, steps)
    return len(months) + 1


def months_ahead_of(today: date, months: int) -> date:
    """The first day of the month `months` months after the month of `today`."""
    month = _month_start(today)
    for _ in range(months):
        month = _next_month(month)
    return month


def add_months_ahead(dsn: str, *, months_ahead: int = 3) -> list[str]:
    """On a partitioned `audit_log`, create the missing partitions up to `months_ahead` months ahead."""
    with psycopg.connect(dsn) as conn:
        today = datetime.now(UTC).date()
        created = create_month_partitions(conn, today, months_ahead_of(today, months_ahead))
        conn.commit()
    return created
