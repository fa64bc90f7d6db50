"""Benchmark data: millions of realistic, correctly chained events, bulk-loaded fast.

Events are generated day by day in time order (memory stays flat at any N), chained per
tenant with the project's own `event_hash`, and loaded with COPY (PostgreSQL) or multi-row
inserts (SQLite) while the secondary indexes are dropped; the indexes, the tenant table, the
chain heads and the daily counts are rebuilt afterwards, so the result is what ingestion
would have produced.
"""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlmodel import Session

from audit_app.audit.chain import event_hash
from audit_app.audit.daily import rebuild_daily_counts
from audit_app.audit.search_index import FILL
from audit_app.db import engine_for, psycopg_url
from audit_app.migrations import upgrade
from audit_app.models import EVENT_FIELDS
from audit_app.seed import ACTIONS, RESULT_ON_FAILURE, SERVICE_AGENTS, TENANT_PARTNER, _actors, _details, _ip

COLUMNS: tuple[str, ...] = (*EVENT_FIELDS, "ingested_at", "chain_seq", "prev_hash", "hash")
BATCH = 1000
"""Events per ingested batch: each batch is one transaction, with one feed position."""
ACTOR_COUNT = 2000
DAYS = 90


def _day_counts(total: int, days: list[datetime]) -> list[int]:
    """Split `total` over `days`: weekdays busy, weekends at 30 %, exact sum."""
    weights = [0.3 if day.weekday() >= 5 else 1.0 for day in days]
    scale = total / sum(weights)
    counts: list[int] = []
    carried = 0.0
    for weight in weights:
        carried += weight * scale
        counts.append(round(carried) - sum(counts))
    return counts


def iter_events(total: int, *, now: datetime, seed: int = 11) -> Iterator[dict[str, Any]]:
    """`total` events over 90 days up to `now`, in time order, with per-tenant hash chains."""
    rng = random.Random(seed)
    actors = _actors(rng, ACTOR_COUNT)
    weights = [1 / (rank + 1) ** 0.6 for rank in range(len(actors))]
    rng.shuffle(weights)
    actor_cum = list(itertools.accumulate(weights))
    names = list(ACTIONS)
    action_cum = list(itertools.accumulate(ACTIONS[name][1] for name in names))
    start = (now - timedelta(days=DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [start + timedelta(days=n) for n in range((now - start).days + 1)]
    heads: dict[str, tuple[int, str]] = {}
    burst_share = 0.008
    for day, count in zip(days, _day_counts(total, days), strict=True):
        horizon = min(86_400_000_000, int((now - day).total_seconds() * 1_000_000))
        events: list[tuple[datetime, dict[str, Any]]] = []
        burst = int(count * burst_share) if count > 500 else 0
        if burst:  # one brute-force run from one address against one user
            victim = actors[rng.randrange(len(actors))]
            latest = max(1, horizon - burst * 4_000_000)
            attacker_ip, base = _ip(rng), day + timedelta(microseconds=rng.randrange(latest))
            for n in range(burst):
                when = base + timedelta(seconds=n * 3, microseconds=rng.randrange(1_000_000))
                events.append((when, _event(rng, victim, "user.login", "failure", when, attacker_ip)))
        for _ in range(count - burst):
            actor = rng.choices(actors, cum_weights=actor_cum)[0]
            action = rng.choices(names, cum_weights=action_cum)[0]
            share = ACTIONS[action][2] * (3 if rng.random() < 0.05 else 1)
            result = rng.choice(RESULT_ON_FAILURE) if rng.random() < share else "success"
            while True:
                offset = int(rng.gauss(13.5, 3.5) * 3_600_000_000)
                if 0 <= offset < horizon:
                    break
            when = day + timedelta(microseconds=offset)
            events.append((when, _event(rng, actor, action, result, when, None)))
        events.sort(key=lambda item: item[0])
        for _, row in events:
            seq, prev = heads.get(row["tenant_id"], (0, ""))
            row["chain_seq"], row["prev_hash"] = seq + 1, prev
            row["hash"] = event_hash(row)
            heads[row["tenant_id"]] = (seq + 1, row["hash"])
            yield row


def _event(rng: random.Random, actor: Any, action: str, result: str, when: datetime, ip: str | None) -> dict[str, Any]:
    resource_type = ACTIONS[action][0]
    prefix = resource_type.split("_")[0][:4]
    details = _details(rng, action, result)
    if ip is not None:
        details = {"reason": "invalid_credentials", "method": "password"}
    return {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": when,
        "tenant_id": actor.tenant_id,
        "partner_id": TENANT_PARTNER[actor.tenant_id],
        "actor_id": actor.id,
        "actor_email": actor.email,
        "actor_type": actor.type,
        "action": action,
        "resource_type": resource_type,
        "resource_id": actor.id if action == "user.login" else f"{prefix}_{rng.randint(1, 4000):05d}",
        "result": result,
        "ip_address": ip or actor.ip,
        "user_agent": SERVICE_AGENTS[0] if ip else actor.agent,
        "request_id": f"req_{rng.getrandbits(64):016x}",
        "session_id": f"ses_{rng.getrandbits(48):012x}" if actor.type == "user" else None,
        "details": details,
        "ingested_at": when + timedelta(milliseconds=rng.randrange(20, 3000)),
    }


def _finish(session: Session, heads: dict[str, tuple[int, str]]) -> None:
    """Tenants, chain heads and daily counts as ingestion would have left them."""
    from sqlalchemy import text

    now: Any = datetime.now(UTC)
    if session.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None).isoformat(sep=" ")
    for tenant, (seq, last_hash) in heads.items():
        session.execute(
            text("INSERT INTO tenant (id, partner_id, created_at) VALUES (:t, :p, :now)"),
            {"t": tenant, "p": TENANT_PARTNER.get(tenant), "now": now},
        )
        session.execute(
            text("INSERT INTO chain_head (tenant_id, seq, hash) VALUES (:t, :s, :h)"),
            {"t": tenant, "s": seq, "h": last_hash},
        )
    rebuild_daily_counts(session)
    session.commit()


def create_postgres_database(admin_url: str, name: str) -> str:
    """Drop and create database `name` on the server of `admin_url`; return its SQLAlchemy URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def load_postgres(url: str, total: int, *, now: datetime, log: Any = print) -> float:
    """Migrate the empty database at `url` and bulk-load `total` events; return seconds taken."""
    started = time.perf_counter()
    upgrade(url)
    dsn = psycopg_url(url)
    heads: dict[str, tuple[int, str]] = {}
    with psycopg.connect(dsn) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_log' "
            "AND indexname NOT IN ('audit_log_pkey', 'uq_audit_log_tenant_chain_seq')"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.commit()
        # One transaction per batch, as ingestion commits them: each batch gets its own feed
        # position (the transaction's id), so the feed reads a page's rows from a few heap pages.
        conn.execute("SET synchronous_commit TO OFF")
        events = enumerate(iter_events(total, now=now), start=1)
        while batch := list(itertools.islice(events, BATCH)):
            with conn.cursor() as cur, cur.copy(f"COPY audit_log ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for n, row in batch:
                    heads[row["tenant_id"]] = (row["chain_seq"], row["hash"])
                    copy.write_row([json.dumps(row["details"]) if col == "details" else row[col] for col in COLUMNS])
                    if n % 250_000 == 0:
                        log(f"  copied {n:,} events ({time.perf_counter() - started:.0f} s)")
            conn.commit()
        log(f"  rebuilding {len(indexes)} indexes ({time.perf_counter() - started:.0f} s)")
        conn.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            conn.execute(definition)
        conn.commit()
    with Session(engine_for(url)) as session:
        _finish(session, heads)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) audit_log")
        conn.execute("VACUUM (ANALYZE) audit_daily_count")
        conn.execute("VACUUM (ANALYZE) audit_daily_actor")
    return time.perf_counter() - started


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def load_sqlite(path: str, total: int, *, now: datetime, log: Any = print) -> float:
    """Create and migrate the SQLite file `path` and load `total` events; return seconds taken."""
    started = time.perf_counter()
    url = f"sqlite:///{path}"
    upgrade(url)
    heads: dict[str, tuple[int, str]] = {}
    conn = sqlite3.connect(path)
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_log' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    placeholders = ", ".join("?" for _ in (*COLUMNS, "feed_pos"))
    insert = f"INSERT INTO audit_log ({', '.join(COLUMNS)}, feed_pos) VALUES ({placeholders})"
    batch: list[tuple[Any, ...]] = []
    for n, row in enumerate(iter_events(total, now=now), start=1):
        heads[row["tenant_id"]] = (row["chain_seq"], row["hash"])
        position = (n - 1) // BATCH + 1  # as ingestion numbers batches on SQLite: the last position + 1
        batch.append((*(_sqlite_value(row[col]) for col in COLUMNS), position))
        if len(batch) == 5000:
            conn.executemany(insert, batch)
            batch.clear()
        if n % 250_000 == 0:
            log(f"  inserted {n:,} events ({time.perf_counter() - started:.0f} s)")
    conn.executemany(insert, batch)
    conn.commit()
    log(f"  rebuilding {len(indexes)} indexes ({time.perf_counter() - started:.0f} s)")
    for _, definition in indexes:
        conn.execute(definition)
    conn.execute(str(FILL), {"mark": 0})  # the free-text index, as each ingested batch fills it
    conn.commit()
    conn.close()
    with Session(engine_for(url)) as session:
        _finish(session, heads)
    conn = sqlite3.connect(path)
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started
