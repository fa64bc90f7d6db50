"""The benchmark's bulk loader leaves what ingestion would: valid chains, tenants, heads, daily counts,
and a feed position per batch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from audit_app.audit.filters import AuditFilters
from audit_app.audit.integrity import verify_chain
from audit_app.audit.stats import compute_stats, compute_stats_scan
from audit_app.auth import Principal
from audit_app.db import engine_for
from audit_app.models import AuditLog, ChainHead, Tenant
from audit_app.seed import TENANT_PARTNER
from bench.generate import BATCH, create_postgres_database, load_postgres, load_sqlite
from tests.helpers import PG_ADMIN_URL, pg_unreachable

NOW = datetime(2026, 11, 27, 9, tzinfo=UTC)
EVENTS = 4000


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def loaded_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database bulk-loaded by the benchmark's generator."""
    if request.param == "sqlite":
        path = tmp_path / "bench.db"
        load_sqlite(str(path), EVENTS, now=NOW, log=lambda _: None)
        yield f"sqlite:///{path}"
        return
    name = f"audit_benchtest_{uuid.uuid4().hex[:8]}"
    try:
        url = create_postgres_database(PG_ADMIN_URL, name)
    except psycopg.OperationalError as exc:
        pg_unreachable(str(exc).splitlines()[0])
    load_postgres(url, EVENTS, now=NOW, log=lambda _: None)
    yield url
    engine_for(url).dispose()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_loaded_data_is_what_ingestion_would_leave(loaded_url: str) -> None:
    with Session(engine_for(loaded_url)) as session:
        assert session.execute(select(func.count()).select_from(AuditLog)).scalar_one() == EVENTS
        tenants = {t.id: t.partner_id for t in session.execute(select(Tenant)).scalars()}
        assert tenants == TENANT_PARTNER
        for tenant_id in tenants:
            report = verify_chain(session, tenant_id)
            assert report.ok, report.broken
            head = session.get(ChainHead, tenant_id)
            assert head is not None
            assert head.seq == report.events_checked > 0
        newest = session.execute(select(func.max(AuditLog.timestamp))).scalar_one()
        oldest = session.execute(select(func.min(AuditLog.timestamp))).scalar_one()
        assert NOW - timedelta(days=91) <= oldest < newest <= NOW
        everyone = Principal(sub="s", email="", role="super_admin")
        window = AuditFilters(start_time=NOW - timedelta(days=30, hours=5))
        assert compute_stats(session, everyone, window) == compute_stats_scan(session, everyone, window)
        # One position per batch, rising with the time order the batches were written in.
        batches = session.execute(
            select(col(AuditLog.feed_pos), func.count(), func.min(AuditLog.timestamp), func.max(AuditLog.timestamp))
            .group_by(col(AuditLog.feed_pos))
            .order_by(col(AuditLog.feed_pos))
        ).all()
        assert [count for _, count, _, _ in batches] == [BATCH] * (EVENTS // BATCH)
        assert all(before[3] <= after[2] for before, after in pairwise(batches))
