"""The optional monthly partitioning of audit_log (audit_app/partitioning.py) keeps every behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import ingest_events
from audit_app.audit.integrity import verify_chain
from audit_app.audit.query import get_event, list_events
from audit_app.audit.stats import compute_stats, compute_stats_scan
from audit_app.db import engine_for, psycopg_url
from audit_app.migrations import upgrade
from audit_app.models import AuditEventIn
from audit_app.partitioning import months_ahead_of, partition_audit_log, partition_name
from audit_app.seed import generate_events
from bench.generate import create_postgres_database
from tests.helpers import PG_ADMIN_URL, pg_unreachable
from tests.principals import SUPER

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def partitioned_url() -> Iterator[str]:
    name = f"audit_parttest_{uuid.uuid4().hex[:8]}"
    try:
        url = create_postgres_database(PG_ADMIN_URL, name)
    except psycopg.OperationalError as exc:
        pg_unreachable(str(exc).splitlines()[0])
    upgrade(url)
    yield url
    engine_for(url).dispose()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_partitioned_audit_log_keeps_reads_writes_chains_and_append_only(partitioned_url: str) -> None:
    now = datetime.now(UTC)
    engine = engine_for(partitioned_url)
    with Session(engine) as session:
        ingest_events(session, generate_events(600, seed=3, now=now), now=now)
        session.commit()
    dsn = psycopg_url(partitioned_url)
    assert partition_audit_log(dsn, months_ahead=2) >= 5
    assert partition_audit_log(dsn) == 0, "running it again changes nothing"
    engine.dispose()
    with Session(engine) as session:
        kinds = dict(
            session.execute(text("SELECT relname, relkind FROM pg_class WHERE relname LIKE 'audit_log%'")).all()
        )
        assert kinds["audit_log"] == "p"
        assert "audit_log_default" in kinds
        far = AuditEventIn(tenant_id="acme", actor_id="late", action="user.login", timestamp=now + timedelta(days=800))
        ids = ingest_events(session, [*generate_events(300, seed=4, now=now, days=2), far], now=now)
        session.commit()
        assert session.execute(text("SELECT count(*) FROM audit_log_default")).scalar_one() == 1
        page = list_events(session, SUPER, AuditFilters(), per_page=20)
        assert page.items[0].id == ids[-1]
        assert page.total == 901
        event = get_event(session, SUPER, ids[0])
        assert event is not None
        window = AuditFilters(start_time=now - timedelta(days=40, hours=3))
        assert compute_stats(session, SUPER, window) == compute_stats_scan(session, SUPER, window)
        for tenant_id in ("acme", "globex", "stark"):
            assert verify_chain(session, tenant_id).ok
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text("UPDATE audit_log SET action = 'x' WHERE id = :id"), {"id": ids[0]})
        session.rollback()


def test_the_partition_command_converts_once_then_keeps_months_ahead(partitioned_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    env |= {"AUDIT_DATABASE_URL": partitioned_url, "AUDIT_JWT_SECRET": "s", "PYTHONPATH": str(ROOT)}
    env["AUDIT_PROGRESS_INTERVAL"] = "0"  # a progress line for every step

    def partition(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "audit_app", "partition", *args]
        return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    first = partition("--months-ahead", "1")
    assert first.returncode == 0, first.stderr
    assert "now partitioned by month" in first.stdout
    assert "partitioning audit_log (steps): " in first.stderr  # progress on standard error, not a terminal
    later = partition("--months-ahead", "4")
    assert later.returncode == 0, later.stderr
    assert "added 3 month(s) ahead" in later.stdout
    assert "added 0 month(s) ahead" in partition("--months-ahead", "4").stdout
    with psycopg.connect(psycopg_url(partitioned_url)) as conn:
        month = months_ahead_of(datetime.now(UTC).date(), 4)
        assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (partition_name(month),)).fetchone() == (True,)
    sqlite = subprocess.run(
        [sys.executable, "-m", "audit_app", "partition"],
        env=env | {"AUDIT_DATABASE_URL": "sqlite:///a.db"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sqlite.returncode == 2
    assert "partitioning needs PostgreSQL" in sqlite.stderr
