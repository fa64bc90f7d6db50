"""On an SQLite file filled by ingestion, a filtered list reads through the filter's own index.

The planner's choice depends on `sqlite_stat1`: a file filled by ingestion has none, and once
ANALYZE has run the planner walks the time index for a column of few values. The list names
the index per filter (`audit.query.sqlite_index`), so both states must plan the same.
"""

from __future__ import annotations

import ipaddress
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlmodel import Session

from audit_app.audit.daily import sqlite_count_statements
from audit_app.audit.filters import AuditFilters, where_clause
from audit_app.audit.ingest import ingest_events
from audit_app.audit.query import NEWEST_FIRST, list_events, sqlite_index
from audit_app.audit.search_index import FILL
from audit_app.auth import Principal
from audit_app.db import engine_for, ip_in_network
from audit_app.migrations import upgrade
from audit_app.models import AuditLog
from audit_app.seed import generate_events

NOW = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
SUPER = Principal(sub="s", email="", role="super_admin")
TENANT = Principal(sub="t", email="", role="tenant_admin", tenant_id="acme")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A migrated SQLite file filled only through ingestion (no ANALYZE ever ran on it)."""
    path = tmp_path_factory.mktemp("plans") / "ingested.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    events = sorted(generate_events(4000, seed=3, now=NOW), key=lambda e: e.timestamp or NOW)
    with Session(engine_for(url)) as session:
        for offset in range(0, len(events), 1000):
            ingest_events(session, events[offset : offset + 1000], now=NOW)
            session.commit()
    engine_for(url).dispose()
    yield path
    engine_for(url).dispose()


def _sample(path: Path, column: str) -> str:
    with sqlite3.connect(path) as conn:
        row = conn.execute(f"SELECT {column} FROM audit_log WHERE {column} IS NOT NULL LIMIT 1 OFFSET 777").fetchone()
    return str(row[0])


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("result", {"result": "failure"}, "ix_audit_log_result_time"),
    ("action", {"action": "user.login"}, "ix_audit_log_action_time"),
    ("resource_type", {"resource_type": "role"}, "ix_audit_log_resource_type_time"),
    ("ip_address", {"ip_address": "ip_address"}, "ix_audit_log_ip_time"),
    ("actor_id", {"actor_id": "actor_id"}, "ix_audit_log_actor_time"),
    ("resource_id", {"resource_id": "resource_id"}, "ix_audit_log_resource_id_time"),
    ("tenant", {"tenant_id": "acme"}, "ix_audit_log_tenant_time"),
    ("tenant+action+time", {"tenant_id": "globex", "action": "role.assign"}, "ix_audit_log_tenant_action_time"),
    ("result+time", {"result": "denied", "start_time": datetime(2026, 11, 1, tzinfo=UTC)}, "ix_audit_log_result_time"),
]


def _filters(path: Path, values: dict[str, Any]) -> AuditFilters:
    """The case's filters, with a value sampled from the data where the case names a column."""
    picked: dict[str, Any] = {
        k: _sample(path, v) if k in ("ip_address", "actor_id", "resource_id") else v for k, v in values.items()
    }
    return AuditFilters(**picked)


def _plan(path: Path, statement: str, parameters: Any) -> list[str]:
    with sqlite3.connect(path) as conn:
        conn.create_function("audit_ip_in_network", 2, ip_in_network, deterministic=True)  # as the app does
        return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, parameters)]


def _list_statement(path: Path, principal: Principal, filters: AuditFilters) -> tuple[str, Any, list[str]]:
    """The SQL the list runs for `filters`, its parameters, and the ids of the page it answered."""
    engine = engine_for(f"sqlite:///{path}")
    seen: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as session:
            page = list_events(session, principal, filters)
            plain = session.execute(
                select(AuditLog.id).where(*where_clause(session, principal, filters)).order_by(*NEWEST_FIRST).limit(50)  # type: ignore[call-overload]
            ).scalars()
            assert [item.id for item in page.items] == list(plain), "the hinted page differs from the plain query"
    finally:
        event.remove(engine, "before_cursor_execute", record)
    statement, parameters = next((s, p) for s, p in seen if "found" in s)
    return statement, parameters, [item.id for item in page.items]


@pytest.mark.parametrize("analyzed", [False, True], ids=["no statistics", "after ANALYZE"])
@pytest.mark.parametrize(("values", "index"), [(v, i) for _, v, i in CASES], ids=[n for n, _, _ in CASES])
def test_filtered_list_reads_through_the_filters_index(
    ingested: Path, tmp_path: Path, analyzed: bool, values: dict[str, Any], index: str
) -> None:
    path = ingested
    if analyzed:  # a copy, so the module's file keeps having no statistics
        path = tmp_path / "analyzed.db"
        with sqlite3.connect(ingested) as source, sqlite3.connect(path) as copy:
            source.backup(copy)
            copy.execute("ANALYZE")
    with sqlite3.connect(path) as conn:
        has_stats = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()[0]
    assert bool(has_stats) == analyzed
    filters = _filters(path, values)
    assert sqlite_index(filters) == index
    statement, parameters, ids = _list_statement(path, SUPER, filters)
    assert ids, "the case must match some events"
    plan = _plan(path, statement, parameters)
    # The page's ids and the capped count both search the filter's index; the count never
    # leaves it (it reads no table row), and nothing scans the whole time index.
    assert sum(line.startswith("SEARCH audit_log USING") and f"INDEX {index} (" in line for line in plan) == 2, plan
    assert any(f"USING COVERING INDEX {index} (" in line for line in plan), plan
    assert not any(line.startswith("SCAN audit_log") for line in plan), plan
    engine_for(f"sqlite:///{path}").dispose()


@pytest.mark.parametrize(
    "filters",
    [
        AuditFilters(),
        AuditFilters(partner_id="northwind"),
        AuditFilters(start_time=datetime(2026, 11, 20, tzinfo=UTC)),
        AuditFilters(actor_email="someone@example.com"),
        AuditFilters(ip_address="10.0.0.0/9"),
        AuditFilters(ip_address="2001:db8::/32"),
        AuditFilters(ip_address="10.1.0.0/16,10.2.0.0/16"),
    ],
    ids=["no filter", "partner", "time only", "actor_email", "broad network", "IPv6 network", "two networks"],
)
def test_filters_without_a_single_column_index_are_left_to_the_planner(filters: AuditFilters) -> None:
    assert sqlite_index(filters) is None


@pytest.mark.parametrize("prefix", [12, 16, 20, 30])
def test_an_ipv4_network_is_read_through_its_ranges_of_the_address_index(ingested: Path, prefix: int) -> None:
    """A /12 or narrower network: the page and the count read the network's text ranges of the
    address index (then sort by time), never the time index newest-first checking every row."""
    with sqlite3.connect(ingested) as conn:
        address = conn.execute(
            "SELECT ip_address FROM audit_log WHERE ip_address NOT LIKE '%:%' LIMIT 1 OFFSET 777"
        ).fetchone()[0]
    filters = AuditFilters(ip_address=str(ipaddress.ip_network(f"{address}/{prefix}", strict=False)))
    assert sqlite_index(filters) == "ix_audit_log_ip_time"
    statement, parameters, ids = _list_statement(ingested, SUPER, filters)  # the page equals the plain query's
    assert ids, "the network must hold some events"
    plan = _plan(ingested, statement, parameters)
    searches = [line for line in plan if line.startswith("SEARCH audit_log USING")]
    assert searches, plan
    assert all("INDEX ix_audit_log_ip_time (ip_address" in line for line in searches if "(id=?)" not in line), plan
    assert not any(line.startswith("SCAN audit_log") for line in plan), plan


def test_scoped_caller_with_a_filter_gets_the_same_page_as_the_plain_query(ingested: Path) -> None:
    filters = AuditFilters(result="failure")
    statement, parameters, ids = _list_statement(ingested, TENANT, filters)
    assert ids
    assert any("ix_audit_log_result_time" in line for line in _plan(ingested, statement, parameters))


@pytest.mark.parametrize("analyzed", [False, True], ids=["no statistics", "after ANALYZE"])
def test_each_batchs_derived_rows_read_only_the_rows_above_its_mark(
    ingested: Path, tmp_path: Path, analyzed: bool
) -> None:
    """The counts and the search index of a batch read its own rows by rowid range, never a whole index."""
    path = ingested
    if analyzed:
        path = tmp_path / "analyzed.db"
        with sqlite3.connect(ingested) as source, sqlite3.connect(path) as copy:
            source.backup(copy)
            copy.execute("ANALYZE")
    statements = [*sqlite_count_statements(), str(FILL)]
    for statement in statements:
        plan = _plan(path, statement.replace("\\:", ":"), {"mark": 3000})
        assert plan[0] == "SEARCH audit_log USING INTEGER PRIMARY KEY (rowid>?)", (statement, plan)
        assert not any(line.startswith("SCAN audit_log") for line in plan), (statement, plan)


def test_the_search_table_merges_its_segments_sixteen_at_a_time(ingested: Path) -> None:
    """Migration 0015: FTS5 merges 16 segments of a level (4 rewrote each entry twice as often);
    migration 0018: incrementally, never a whole level inside one batch (`crisismerge` above 16)."""
    with sqlite3.connect(ingested) as conn:
        config = dict(conn.execute("SELECT k, v FROM audit_log_search_config").fetchall())
    assert config.get("automerge") == 16, config
    assert config.get("crisismerge") == 64, config


def test_no_write_merges_a_whole_level_of_the_search_table(tmp_path: Path) -> None:
    """Migration 0018: FTS5 merges incrementally, a bounded amount after each write. With
    `crisismerge` at its default (16, equal to `automerge`), the 256th write merged a whole level
    of 256 segments in its own transaction (324 WAL pages here against 12 at the median; a
    1,000-event batch on a 200,000-event file then took 3.3 s)."""
    path = tmp_path / "merges.db"
    upgrade(f"sqlite:///{path}")
    rng = random.Random(5)
    written: list[int] = []
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # the WAL only grows: its growth is each commit's pages
        frame = conn.execute("PRAGMA page_size").fetchone()[0] + 24
        for _ in range(300):
            before = Path(f"{path}-wal").stat().st_size if Path(f"{path}-wal").exists() else 0
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO audit_log_search(body) VALUES (?)",
                [(f"usr_{rng.randrange(5000):04d} user.login req_{rng.getrandbits(48):012x}",) for _ in range(20)],
            )
            conn.execute("COMMIT")
            written.append((Path(f"{path}-wal").stat().st_size - before) // frame)
    assert max(written) < 150, (max(written), written.index(max(written)))
