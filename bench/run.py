"""`make bench`: build a database of N events, serve the API on it, and time every case.

For each read case it prints p50/p95 of the HTTP endpoint next to the very SQL statements the
endpoint's domain function issues (captured once in-process, then replayed directly through
the driver), and their ratio. It also times CSV exports (rows/s, peak server memory) and
ingestion (events/s in 1,000-event batches), and writes bench/results/<backend>-<N>.json.

    python -m bench.run                          # PostgreSQL, 1,000,000 events, then SQLite
    python -m bench.run --backend postgres --events 10000000 --reuse
    python -m bench.run --backend postgres --private-cluster   # own tuned server (bench/cluster.py)
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
import psutil
import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from audit_app.audit.feed import FeedCursor, read_feed
from audit_app.audit.filters import AuditFilters
from audit_app.audit.query import list_actions, list_events, list_resource_types
from audit_app.audit.stats import compute_stats
from audit_app.auth import ALL_SCOPES, Principal, issue_token
from audit_app.db import engine_for, ip_in_network, psycopg_url
from audit_app.migrations import upgrade
from audit_app.models import AuditLog
from audit_app.partitioning import partition_audit_log
from audit_app.seed import TENANT_PARTNER, generate_events
from audit_app.settings import Settings
from bench.cluster import DEFAULT_DIR, DEFAULT_PORT, free_port, private_cluster, wait_until_serving
from bench.datasette import datasette_server, export_rows_per_s, stored_time, table_path
from bench.datasette import list_params as datasette_list_params
from bench.generate import BATCH, create_postgres_database, load_postgres

RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = os.environ.get("AUDIT_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "bench-secret-" + "b" * 40
AUDIT = "/api/v1/admin/audit"
SUPER = Principal(sub="bench-super", email="", role="super_admin")
PARTNER = Principal(sub="bench-partner", email="", role="partner_admin", partner_id="northwind")
TENANT = Principal(sub="bench-tenant", email="", role="tenant_admin", tenant_id="acme")
EXPORT_KEY = (
    Ed25519PrivateKey.generate()
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)
EXPORT_FORMATS = ("csv", "jsonl", "bundle")  # each format timed right after the others on the same rows


@dataclass
class Case:
    """One read case: an HTTP request and the domain call that answers it (for the direct SQL)."""

    name: str
    path: str
    params: dict[str, Any]
    principal: Principal
    call: Callable[[Session], Any]
    check: Callable[[Any, Any], bool]
    datasette: dict[str, Any] | None = None  # the same list asked of Datasette (SQLite)


@dataclass
class Measured:
    """Latencies of one case, in milliseconds."""

    name: str
    http: list[float] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)
    datasette: list[float] = field(default_factory=list)
    same_result: bool = False

    def row(self) -> dict[str, Any]:
        http50, direct50 = _pct(self.http, 50), _pct(self.direct, 50)
        extra = {"datasette_p50_ms": round(_pct(self.datasette, 50), 2)} if self.datasette else {}
        return {
            "case": self.name,
            "http_p50_ms": round(http50, 2),
            "http_p95_ms": round(_pct(self.http, 95), 2),
            "sql_p50_ms": round(direct50, 2),
            "sql_p95_ms": round(_pct(self.direct, 95), 2),
            "ratio_p50": round(http50 / direct50, 2) if direct50 else None,
            "same_result": self.same_result,
            "samples": len(self.http),
            **extra,
        }


def _pct(values: list[float], pct: int) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def log(message: str) -> None:
    print(message, flush=True)


def machine_info(admin_url: str = PG_ADMIN_URL) -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        with psycopg.connect(admin_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            pg_version = str(row[0]) if row else "unknown"
    except psycopg.Error:
        pg_version = "unreachable"
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------- database


def prepare_postgres(
    events: int, reuse: bool, partitioned: bool = False, admin_url: str = PG_ADMIN_URL, name: str | None = None
) -> str:
    """A PostgreSQL database holding `events` generated events (reused when asked and present).

    `name` overrides the database's name (default `audit_bench_<events>`, `_monthly` if partitioned).
    """
    name = name or f"audit_bench_{events}" + ("_monthly" if partitioned else "")
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    if reuse:
        try:
            with Session(engine_for(url)) as session:
                count = session.execute(select(func.count()).select_from(AuditLog)).scalar_one()
                first = select(func.min(col(AuditLog.feed_pos))).scalar_subquery()
                batch = session.execute(select(func.count()).where(col(AuditLog.feed_pos) == first)).scalar_one()
            if batch > BATCH:  # loaded in one transaction before 1 Dec: one feed position for every event
                log(f"not reusing {name}: its first feed position holds {batch:,} events, not one batch")
            elif events <= count <= events * 1.3:  # earlier runs ingested batches (60,000 events a run)
                log(f"reusing {name} ({count:,} events); applying any newer migrations")
                upgrade(url)
                return url
        except Exception as exc:
            log(f"cannot reuse {name}: {str(exc).splitlines()[0]}")
        engine_for(url).dispose()
    log(f"generating {events:,} events into PostgreSQL database {name} ...")
    url = create_postgres_database(admin_url, name)
    seconds = load_postgres(url, events, now=_now(), log=log)
    log(f"generated in {seconds:.0f} s ({events / seconds:,.0f} events/s)")
    if partitioned:
        started = time.perf_counter()
        count = partition_audit_log(psycopg_url(url))
        log(f"partitioned audit_log into {count} monthly partitions in {time.perf_counter() - started:.0f} s")
    return url


def prepare_sqlite(events: int, reuse: bool) -> str:
    """An SQLite file holding `events` generated events, filled through the ingestion API.

    As a deployment fills its file: 1,000-event batches posted to a served API, oldest first,
    and nothing run on the file afterwards (no ANALYZE), so the planner sees what it would see.
    """
    path = RESULTS.parent / "data" / f"audit_bench_ingested_{events}.db"
    path.parent.mkdir(exist_ok=True)
    url = f"sqlite:///{path}"
    if reuse and path.exists():
        with Session(engine_for(url)) as session:
            count = session.execute(select(func.count()).select_from(AuditLog)).scalar_one()
        if events <= count <= events * 1.3:  # earlier runs ingested batches (60,000 events a run)
            log(f"reusing {path} ({count:,} events); applying any newer migrations")
            upgrade(url)
            return url
        engine_for(url).dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    log(f"filling SQLite {path} with {events:,} events through POST /api/v1/audit/events ...")
    upgrade(url)
    settings = Settings(database_url=url, jwt_secret=SECRET)
    generated = sorted(generate_events(events, seed=11, now=_now(), days=90), key=lambda e: e.timestamp or _now())
    headers = {"Authorization": f"Bearer {token(settings, SUPER)}"}
    with api_server(url) as (base, _server), httpx.Client(base_url=base, timeout=120) as client:
        started = time.perf_counter()
        for offset in range(0, len(generated), 1000):
            batch = [e.model_dump(mode="json", exclude_none=True) for e in generated[offset : offset + 1000]]
            client.post("/api/v1/audit/events", json={"events": batch}, headers=headers).raise_for_status()
            if (offset + 1000) % 50_000 == 0:
                log(f"  ingested {offset + 1000:,} events ({time.perf_counter() - started:.0f} s)")
        seconds = time.perf_counter() - started
    log(f"ingested in {seconds:.0f} s ({events / seconds:,.0f} events/s)")
    engine_for(url).dispose()
    return url


def _now() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


# ---------------------------------------------------------------- server


@contextmanager
def api_server(url: str) -> Iterator[tuple[str, psutil.Process]]:
    """uvicorn serving `audit_app.api:app` on a free loopback port against `url`."""
    port = free_port()
    env = dict(os.environ, AUDIT_DATABASE_URL=url, AUDIT_JWT_SECRET=SECRET, AUDIT_DEMO="0")
    env["AUDIT_EXPORT_SIGNING_KEY"] = EXPORT_KEY
    cmd = [sys.executable, "-m", "uvicorn", "audit_app.api:app", "--host", "127.0.0.1", "--port", str(port)]
    # The client keeps one connection across cases, and preparing a case (its domain call) can take
    # longer than uvicorn's default 5 s keep-alive on a loaded machine: the server would close it.
    cmd += ["--log-level", "warning", "--no-access-log", "--timeout-keep-alive", "600"]
    proc = subprocess.Popen(cmd, env=env, cwd=RESULTS.parent.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, [proc], timeout=300)  # a busy shared machine can take minutes to start it
        yield base, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def token(settings: Settings, principal: Principal) -> str:
    claims = {k: v for k, v in (("tenant_id", principal.tenant_id), ("partner_id", principal.partner_id)) if v}
    return issue_token(settings, role=principal.role, sub=principal.sub, scope=ALL_SCOPES, ttl=86_400, **claims)


# ---------------------------------------------------------------- direct SQL


class StatementRecorder:
    """Records the SQL an engine executes, to replay it directly through the driver."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[tuple[str, Any]] = []
        self.active = False
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if self.active:
            self.statements.append((statement, parameters))

    @contextmanager
    def recording(self) -> Iterator[list[tuple[str, Any]]]:
        self.statements = []
        self.active = True
        try:
            yield self.statements
        finally:
            self.active = False


def replay(url: str) -> Callable[[list[tuple[str, Any]]], float]:
    """A function timing (ms) the statements run directly on one raw driver connection."""
    if url.startswith("sqlite"):
        conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.create_function("audit_ip_in_network", 2, ip_in_network, deterministic=True)  # as the app does
    else:
        conn = psycopg.connect(psycopg_url(url), autocommit=True)

    def run(statements: list[tuple[str, Any]]) -> float:
        started = time.perf_counter()
        cursor = conn.cursor()
        for statement, parameters in statements:
            cursor.execute(statement, parameters)
            if cursor.description is not None:
                cursor.fetchall()
        return (time.perf_counter() - started) * 1000

    return run


# ---------------------------------------------------------------- cases


def _ids(http: Any, domain: Any) -> bool:
    return bool(
        [item["id"] for item in http["items"]] == [e.id for e in domain.items] and http["total"] == domain.total
    )


def read_cases(session: Session, now: datetime) -> list[Case]:
    """The issue's read cases, with filter values taken from the data."""
    total = session.execute(select(func.count()).select_from(AuditLog)).scalar_one()
    # A person's event (services have no email): the search cases take a surname from its email.
    sample = session.execute(
        select(AuditLog)
        .where(col(AuditLog.actor_email).is_not(None))
        .order_by(AuditLog.timestamp.desc())  # type: ignore[attr-defined]
        .offset(min(5000, total // 4))
        .limit(1)
    ).scalar_one()
    start, end = now - timedelta(days=30), now - timedelta(days=20)
    single: dict[str, Any] = {
        "tenant_id": "acme",
        "partner_id": "northwind",
        "actor_id": sample.actor_id,
        "actor_email": sample.actor_email,
        "action": "user.delete",
        "resource_type": "role",
        "resource_id": sample.resource_id,
        "result": "denied",
        "ip_address": sample.ip_address,
        "start_time": now - timedelta(days=3),
    }
    cases: list[Case] = []

    def listing(name: str, principal: Principal, filters: AuditFilters, page: int = 1) -> None:
        params: dict[str, Any] = {k: _param(v) for k, v in filters.active().items()}
        if page != 1:
            params["page"] = page
        cases.append(
            Case(
                name,
                f"{AUDIT}/",
                params,
                principal,
                lambda s: list_events(s, principal, filters, page=page),
                _ids,
                datasette_list_params(filters, principal) if page == 1 else None,
            )
        )

    listing("list page 1, no filter", SUPER, AuditFilters())
    for key, value in single.items():
        listing(f"list {key}", SUPER, AuditFilters(**{key: value}))
    listing(
        "list tenant+time+action",
        SUPER,
        AuditFilters(tenant_id="globex", action="role.assign", start_time=start, end_time=end),
    )
    surname = (sample.actor_email or "x.y@z").split("@")[0].split(".")[-1].rstrip("0123456789")
    address = ipaddress.ip_address(sample.ip_address or "10.0.0.1")
    network = ipaddress.ip_network(f"{address}/{16 if address.version == 4 else 32}", strict=False)
    for name, filters in (
        ("search q one word", AuditFilters(q=surname)),
        ("search q two words", AuditFilters(q=f"{surname} {sample.resource_type}")),
        ("search q rare word", AuditFilters(q=sample.request_id)),
        ("search prefix resource_id", AuditFilters(resource_id=f"{(sample.resource_id or 'usr_0')[:6]}*")),
        ("search CIDR", AuditFilters(ip_address=str(network))),
        ("search multi-value action", AuditFilters(action="user.delete,role.assign,api_key.revoke")),
        ("search exclusion", AuditFilters(not_action="user.login,session.refresh", not_result="success")),
        ("search actor_email any case", AuditFilters(actor_email=(sample.actor_email or "").upper())),
    ):
        listing(name, SUPER, filters)
    listing("list as tenant admin", TENANT, AuditFilters())
    listing("list as partner admin", PARTNER, AuditFilters())
    listing("list deep page 2000", SUPER, AuditFilters(), page=2000)
    for days in (7, 90):
        for label, tenant in (("all", None), ("tenant", "acme")):
            filters = AuditFilters(tenant_id=tenant, start_time=now - timedelta(days=days), end_time=now)
            cases.append(
                Case(
                    f"stats {days}d {label}",
                    f"{AUDIT}/stats",
                    {k: _param(v) for k, v in filters.active().items()},
                    SUPER,
                    lambda s, f=filters: compute_stats(s, SUPER, f),  # type: ignore[misc]
                    lambda http, domain: http["total"] == domain["total"] and http["by_action"] == domain["by_action"],
                )
            )
    for principal in (SUPER, TENANT):
        who = "super" if principal is SUPER else "tenant"
        cases.append(
            Case(
                f"actions ({who})",
                f"{AUDIT}/actions",
                {},
                principal,
                lambda s, p=principal: list_actions(s, p),  # type: ignore[misc]
                lambda http, domain: http["actions"] == domain,
            )
        )
        cases.append(
            Case(
                f"resource-types ({who})",
                f"{AUDIT}/resource-types",
                {},
                principal,
                lambda s, p=principal: list_resource_types(s, p),  # type: ignore[misc]
                lambda http, domain: http["resource_types"] == domain,
            )
        )
    return cases


def _param(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class KeepAliveClient:
    """GET requests over one kept-alive connection with the standard library's http.client.

    The read cases time the server, so the client adds as little as it can: httpx spends about
    0.5-1 ms of Python per request on its own, more than some of the queries take.
    """

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)

    def get(self, path: str, params: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
        """Status and body of GET path?params; asked again once on a new connection if the server had
        closed the idle one (Datasette's uvicorn keeps a connection 5 s, and preparing a case can take longer)."""
        target = f"{path}?{urlencode(params)}" if params else path
        try:
            self.conn.request("GET", target, headers=headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.conn.close()
            self.conn.request("GET", target, headers=headers)
            response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def measure_reads(
    base: str,
    url: str,
    cases: list[Case],
    settings: Settings,
    samples: int,
    warmup: int,
    datasette: tuple[str, str] | None = None,
) -> tuple[list[Measured], float]:
    """p50/p95 over `samples` sequential requests per case, next to the replayed SQL.

    Each request is followed by one replay of its SQL, so a burst of load on this shared
    machine weighs on both columns alike.

    With `datasette` (its base URL and the table's JSON path), each list case is also asked of
    Datasette serving the same file, right after, over a kept-alive connection of its own.

    Also returns the p50 of `GET /api/v1/health` (no database, no token): the floor that the
    HTTP round trip, uvicorn and FastAPI put under every case.
    """
    engine = engine_for(url)
    recorder = StatementRecorder(engine)
    direct = replay(url)
    out: list[Measured] = []
    client = KeepAliveClient(base)
    browser = KeepAliveClient(datasette[0]) if datasette else None
    try:
        floor: list[float] = []
        for _ in range(warmup + samples):
            started = time.perf_counter()
            client.get("/api/v1/health", {}, {})
            floor.append((time.perf_counter() - started) * 1000)
        for case in cases:
            headers = {"Authorization": f"Bearer {token(settings, case.principal)}"}
            with Session(engine) as session, recorder.recording() as statements:
                domain = case.call(session)
            measured = Measured(case.name)
            for n in range(warmup + samples):  # alternating, so both sides see the same machine load
                started = time.perf_counter()
                status, body = client.get(case.path, case.params, headers)
                elapsed = (time.perf_counter() - started) * 1000
                if status != 200:
                    raise RuntimeError(f"{case.name}: HTTP {status}: {body[:200]!r}")
                if n == 0:
                    measured.same_result = case.check(json.loads(body), domain)
                sql_elapsed = direct(statements)
                if browser and datasette and case.datasette is not None:
                    started = time.perf_counter()
                    status, body = browser.get(datasette[1], case.datasette, {})
                    if status != 200:
                        raise RuntimeError(f"{case.name}: Datasette answered {status}: {body[:200]!r}")
                    if n >= warmup:
                        measured.datasette.append((time.perf_counter() - started) * 1000)
                if n >= warmup:
                    measured.http.append(elapsed)
                    measured.direct.append(sql_elapsed)
            out.append(measured)
            row = measured.row()
            log(
                f"  {case.name:28s} http p50 {row['http_p50_ms']:8.1f} p95 {row['http_p95_ms']:8.1f} | "
                f"sql p50 {row['sql_p50_ms']:8.1f} | x{row['ratio_p50']} | same={row['same_result']}"
                + (f" | datasette p50 {row['datasette_p50_ms']:.1f}" if "datasette_p50_ms" in row else "")
            )
    finally:
        client.close()
        if browser:
            browser.close()
    event.remove(engine, "before_cursor_execute", recorder._record)
    health = _pct(floor[warmup:], 50)
    log(f"  {'GET /api/v1/health (floor)':28s} http p50 {health:8.2f}")
    return out, health


class PeakRss:
    """Samples a process's resident memory every 20 ms in a thread; `peak` in MiB."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss / 2**20)
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def export_case(fmt: str, rows: int, total: int) -> str:
    """The name of an export case: "export csv 100,000 rows", "export bundle all"."""
    return f"export {fmt} {rows:,} rows" if rows < total else f"export {fmt} all"


def measure_export(
    base: str, url: str, settings: Settings, server: psutil.Process, rows: int, total: int, fmt: str = "csv"
) -> dict[str, Any]:
    """Stream an export (CSV, JSON Lines or an evidence bundle) of `rows` newest events (all when rows >= total).

    A bundle is written to a temporary file as it arrives and its row count read from its manifest.
    """
    params: dict[str, Any] = {"format": fmt}
    if rows < total:
        with Session(engine_for(url)) as session:
            start = session.execute(
                select(col(AuditLog.timestamp)).order_by(AuditLog.timestamp.desc()).offset(rows - 1).limit(1)  # type: ignore[attr-defined]
            ).scalar_one()
        params["start_time"] = start.isoformat()
    headers = {"Authorization": f"Bearer {token(settings, SUPER)}"}
    rss_before = server.memory_info().rss / 2**20
    lines = 0
    size = 0
    with (
        tempfile.TemporaryFile() as saved,
        PeakRss(server) as rss,
        httpx.Client(base_url=base, timeout=httpx.Timeout(600.0)) as client,
    ):
        started = time.perf_counter()
        with client.stream("GET", f"{AUDIT}/export", params=params, headers=headers) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                size += len(chunk)
                if fmt == "csv":
                    lines += chunk.count(b"\r\n")
                elif fmt == "jsonl":
                    lines += chunk.count(b"\n")  # JSON escapes every line break inside a value
                else:
                    saved.write(chunk)
        seconds = time.perf_counter() - started
        if fmt == "csv":
            exported = lines - 1  # the header; seeded fields hold no line breaks
        elif fmt == "jsonl":
            exported = lines
        else:
            with zipfile.ZipFile(saved) as bundle:
                exported = json.loads(bundle.read("manifest.json"))["events"]["rows"]
    name = export_case(fmt, rows, total)
    result = {
        "case": name if rows < total else f"{name} ({exported:,} rows)",
        "rows": exported,
        "seconds": round(seconds, 2),
        "rows_per_s": round(exported / seconds),
        "mb": round(size / 2**20, 1),
        "server_rss_before_mib": round(rss_before, 1),
        "server_rss_peak_mib": round(rss.peak, 1),
    }
    log(
        f"  {result['case']:28s} {result['rows_per_s']:>9,} rows/s  {seconds:6.1f} s  {size / 2**20:7.1f} MB  "
        f"RSS {rss_before:.0f} -> peak {rss.peak:.0f} MiB"
    )
    return result


def measure_exports(
    base: str,
    url: str,
    settings: Settings,
    server: psutil.Process,
    total: int,
    cases: list[str] | None,
    repeats: int = 1,
) -> list[dict[str, Any]]:
    """Each export size in each format, the formats alternating `repeats` times; the run of median rows/s is kept.

    A bundle's row also gives its median rows/s as a share of the CSV's (alternating keeps a
    busy machine's load from favouring one format).
    """
    results: list[dict[str, Any]] = []
    for rows in sorted({min(100_000, total), total}):
        runs: dict[str, list[dict[str, Any]]] = {}
        for _ in range(repeats):
            for fmt in EXPORT_FORMATS:
                if _selected(export_case(fmt, rows, total), cases):
                    runs.setdefault(fmt, []).append(measure_export(base, url, settings, server, rows, total, fmt))
        median = {fmt: sorted(done, key=lambda r: r["rows_per_s"])[len(done) // 2] for fmt, done in runs.items()}
        if "csv" in median and "bundle" in median:
            share = round(median["bundle"]["rows_per_s"] / median["csv"]["rows_per_s"], 2)
            median["bundle"]["share_of_csv_rate"] = share
            log(f"  {'':28s} bundle / csv rows/s (medians of {repeats}) = {share:.2f}")
        results += [median[fmt] for fmt in EXPORT_FORMATS if fmt in median]
    return results


def measure_datasette_export(base: str, url: str, path: Path, total: int, rows: int = 100_000) -> dict[str, Any]:
    """Datasette's streamed CSV of the `rows` newest events (all when fewer), as the API's export case."""
    params: dict[str, Any] = {"_sort_desc": "timestamp"}
    if rows < total:
        with Session(engine_for(url)) as session:
            start = session.execute(
                select(col(AuditLog.timestamp)).order_by(AuditLog.timestamp.desc()).offset(rows - 1).limit(1)  # type: ignore[attr-defined]
            ).scalar_one()
        params["timestamp__gte"] = stored_time(start)
    exported, rate = export_rows_per_s(base, path, params)
    name = f"export datasette csv {rows:,} rows" if rows < total else f"export datasette csv all ({exported:,} rows)"
    result = {"case": name, "rows": exported, "rows_per_s": round(rate)}
    log(f"  {result['case']:28s} {result['rows_per_s']:>9,} rows/s ({exported:,} rows)")
    return result


INGEST_WARMUP = 3
"""Batches sent before each ingestion case is timed."""


def measure_ingest(base: str, settings: Settings, batches: int, clients: int = 1) -> dict[str, Any]:
    """events/s writing `batches` batches of 1,000 chained events through POST /api/v1/audit/events.

    Events are from the last day (as producers send them). One client sends batches mixing all
    tenants; several clients are producers of different tenants (each batch holds one tenant's
    events, each tenant is sent by one client), sending concurrently; events/s is over the
    wall-clock time. The request bodies are encoded before the clock starts (a producer's JSON
    encoding is not the server's work), and `INGEST_WARMUP` batches go first, untimed: the first
    batches after the server starts read the indexes' pages into its cache, as a running server
    has them.
    """
    events = generate_events((batches + INGEST_WARMUP) * 1000, seed=99 + clients, now=datetime.now(UTC), days=1)
    if clients > 1:
        events.sort(key=lambda e: (sorted(TENANT_PARTNER).index(e.tenant_id) % clients, e.tenant_id))
    batched = [events[i : i + 1000] for i in range(0, len(events), 1000)]
    bodies = [orjson.dumps({"events": [e.model_dump(mode="json", exclude_none=True) for e in b]}) for b in batched]
    firsts = [batch[0].tenant_id for batch in batched[INGEST_WARMUP:]]  # each timed batch's first tenant
    headers = {"Authorization": f"Bearer {token(settings, SUPER)}", "Content-Type": "application/json"}
    times: list[float] = []

    def post(client: httpx.Client, body: bytes) -> httpx.Response:
        return client.post("/api/v1/audit/events", content=body, headers=headers).raise_for_status()

    with httpx.Client(base_url=base, timeout=120) as client:
        for body in bodies[:INGEST_WARMUP]:
            post(client, body)
    bodies = bodies[INGEST_WARMUP:]

    def send(share: list[bytes]) -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            for body in share:
                started = time.perf_counter()
                post(client, body)
                times.append(time.perf_counter() - started)

    shares: list[list[bytes]] = [[] for _ in range(clients)]
    for body, first in zip(bodies, firsts, strict=True):  # by the tenant of the batch's first event
        shares[sorted(TENANT_PARTNER).index(first) % clients].append(body)
    started = time.perf_counter()
    threads = [threading.Thread(target=send, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if len(times) != len(bodies):
        raise RuntimeError("an ingestion request failed")
    result = {
        "case": "ingest 1000-event batches, 1 client"
        if clients == 1
        else f"ingest 1000-event batches, {clients} clients (separate tenants)",
        "batches": len(bodies),
        "events_per_s": round(1000 * len(bodies) / wall),
        "batch_p50_ms": round(_pct([t * 1000 for t in times], 50), 1),
        "batch_p95_ms": round(_pct([t * 1000 for t in times], 95), 1),
        "batch_max_ms": round(max(times) * 1000, 1),
    }
    log(
        f"  {result['case']:28s} {result['events_per_s']:>9,} events/s  batch p50 {result['batch_p50_ms']} ms"
        f"  max {result['batch_max_ms']} ms"
    )
    if os.environ.get("AUDIT_BENCH_BATCH_TIMES"):
        log("    batches (ms, in order): " + " ".join(str(round(t * 1000)) for t in times))
    return result


# ---------------------------------------------------------------- main


# ---------------------------------------------------------------- feed

FEED_LIMIT = 1000
FEED_PATH = "/api/v1/admin/audit/feed"


def measure_feed(base: str, url: str, settings: Settings, limit: int = FEED_LIMIT) -> dict[str, Any]:
    """A collector draining the whole feed with `limit`=1000 over HTTP, next to the same SQL run directly.

    The SQL column replays, page by page, the very statements `read_feed` issues for the JSON answer
    (recorded in process first, untimed) on one raw driver connection. The HTTP column is a collector on
    one kept-alive connection that parses each answer (with orjson, as a Python collector that
    cares would; `json.loads` took 1.2-1.8 times as long) and asks for its `next`, as a SIEM would.
    """
    principal = Principal(
        sub="bench-collector", email="collector@bench.example", role="super_admin", scopes=frozenset(ALL_SCOPES.split())
    )
    engine = engine_for(url)
    recorder = StatementRecorder(engine)
    pages: list[list[tuple[str, Any]]] = []
    cursor, recorded = FeedCursor(), 0
    with Session(engine) as session:
        while True:
            with recorder.recording() as statements:
                page = read_feed(session, principal, AuditFilters(), cursor, limit, details_as_json_text=True)
            if not page.items:
                break
            pages.append(list(statements))
            recorded += len(page.items)
            cursor = page.next
    run = replay(url)
    direct_seconds = sum(run(statements) for statements in pages) / 1000
    client = KeepAliveClient(base)
    headers = {"Authorization": f"Bearer {token(settings, principal)}"}
    params: dict[str, Any] = {"limit": limit}
    received = 0
    started = time.perf_counter()
    while True:
        status, body = client.get(FEED_PATH, params, headers)
        if status != 200:
            raise RuntimeError(f"feed answered {status}: {body[:200]!r}")
        answer = orjson.loads(body)
        if not answer["items"]:
            break
        received += len(answer["items"])
        params = {"limit": limit, "after": answer["next"]}
    http_seconds = time.perf_counter() - started
    client.close()
    return {
        "case": f"feed drain, limit={limit}",
        "collector": "http.client, one kept-alive connection, orjson.loads",
        "events": received,
        "http_events_per_s": round(received / http_seconds),
        "http_seconds": round(http_seconds, 1),
        "sql_events_per_s": round(recorded / direct_seconds) if direct_seconds else None,
        "sql_seconds": round(direct_seconds, 1),
        "pages": len(pages),
    }


def run_backend(backend: str, events: int, args: argparse.Namespace, admin_url: str = PG_ADMIN_URL) -> dict[str, Any]:
    """Build (or reuse) the database, serve it, measure everything, write the JSON."""
    private = backend == "postgres" and admin_url != PG_ADMIN_URL
    if backend == "postgres":
        url = prepare_postgres(events, args.reuse, args.partitioned, admin_url, args.pg_database)
    else:
        url = prepare_sqlite(events, args.reuse)
    settings = Settings(database_url=url, jwt_secret=SECRET)
    engine = engine_for(url)
    with Session(engine) as session:
        total = session.execute(select(func.count()).select_from(AuditLog)).scalar_one()
        newest = session.execute(select(func.max(AuditLog.timestamp))).scalar_one()
        cases = read_cases(session, newest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
    if args.cases:
        cases = [case for case in cases if _selected(case.name, args.cases)]
    log(f"{backend}: {total:,} events; measuring {len(cases)} read cases ({args.samples} samples each)")
    label = " (monthly partitions)" if args.partitioned and backend == "postgres" else ""
    label += " (private tuned cluster)" if private else ""
    report: dict[str, Any] = {
        "backend": backend + label,
        "events": total,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(admin_url),
        "samples": args.samples,
    }
    with ExitStack() as stack:
        base, server = stack.enter_context(api_server(url))
        browser: tuple[str, str] | None = None
        sqlite_path = Path(url.removeprefix("sqlite:///"))
        if backend == "sqlite" and not args.no_datasette:
            browser = (stack.enter_context(datasette_server(sqlite_path, log)), table_path(sqlite_path))
        reads, health = measure_reads(base, url, cases, settings, args.samples, args.warmup, browser)
        report["reads"] = [m.row() for m in reads]
        report["health_p50_ms"] = round(health, 2)
        report["http_client"] = "http.client, one kept-alive connection"
        # Ingestion before the exports: streaming every row of a 10M-event table through the
        # caches right before would measure that churn, not the cost of writing a batch.
        report["ingest"] = [
            measure_ingest(base, settings, args.ingest_batches, clients)
            for clients in (1, 2)
            if args.ingest_batches and _selected(INGEST_CASES[clients], args.cases)
        ]
        if _selected(f"feed drain, limit={FEED_LIMIT}", args.cases):
            report["feed"] = measure_feed(base, url, settings)
        report["exports"] = measure_exports(base, url, settings, server, total, args.cases, args.export_repeats)
        if browser and _selected("export datasette csv", args.cases):
            report["exports"].append(measure_datasette_export(browser[0], url, sqlite_path, total))
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    if private:
        report["server_settings"] = server_settings_in_use(admin_url)
    suffix = ("-private" if private else "") + ("-monthly" if args.partitioned and backend == "postgres" else "")
    out = RESULTS / f"{backend}{suffix}-{events}.json"
    if args.cases and out.exists():
        report = merge_partial(json.loads(out.read_text()), report)
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {out.relative_to(RESULTS.parent.parent)}")
    print_table(report)
    return report


def server_settings_in_use(admin_url: str) -> dict[str, str]:
    """The settings the private cluster actually runs with (recorded next to its results)."""
    names = ["shared_buffers", "effective_cache_size", "maintenance_work_mem", "work_mem", "wal_buffers"]
    names += ["max_wal_size", "checkpoint_timeout", "wal_compression", "random_page_cost", "fsync"]
    names += ["synchronous_commit"]
    with psycopg.connect(admin_url) as conn:
        return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names}  # type: ignore[index]


INGEST_CASES = {1: "ingest 1000-event batches, 1 client", 2: "ingest 1000-event batches, 2 clients"}


def _selected(name: str, patterns: list[str] | None) -> bool:
    """Whether a case runs: every case without --cases, else those whose name contains a pattern."""
    return not patterns or any(pattern in name for pattern in patterns)


def _case_key(name: str) -> str:
    """A case's name without what varies from run to run ("export csv all (1,158,015 rows)")."""
    return name.split(" (")[0]


def merge_partial(earlier: dict[str, Any], partial: dict[str, Any]) -> dict[str, Any]:
    """An earlier full results file with the cases of a --cases run replaced by their new rows.

    The file keeps its machine and time; `updates` records when which cases were re-measured,
    on how many events, and the load average around that run.
    """
    merged = dict(earlier)
    for section in ("reads", "exports", "ingest"):
        fresh = {_case_key(row["case"]): row for row in partial.get(section) or []}
        rows = [fresh.pop(_case_key(row["case"]), row) for row in earlier.get(section) or []]
        merged[section] = rows + list(fresh.values())
    if partial.get("feed"):
        merged["feed"] = partial["feed"]
    merged["updates"] = [
        *earlier.get("updates", []),
        {
            "measured_at": partial["measured_at"],
            "events": partial["events"],
            "samples": partial["samples"],
            "cases": [row["case"] for section in ("reads", "exports", "ingest") for row in partial.get(section) or []]
            + ([partial["feed"]["case"]] if partial.get("feed") else []),
            "load_average_at_start": partial["machine"]["load_average_at_start"],
            "load_average_at_end": partial["machine"]["load_average_at_end"],
        },
    ]
    return merged


def print_table(report: dict[str, Any]) -> None:
    """The results as a Markdown table (pasted into the README)."""
    print(f"\n{report['backend']}, {report['events']:,} events\n")
    print("| case | HTTP p50 ms | HTTP p95 ms | SQL p50 ms | ratio | same result |")
    print("|---|---:|---:|---:|---:|:-:|")
    for row in report["reads"]:
        same = "yes" if row["same_result"] else "NO"
        print(
            f"| {row['case']} | {row['http_p50_ms']:.1f} | {row['http_p95_ms']:.1f} | "
            f"{row['sql_p50_ms']:.1f} | {row['ratio_p50']} | {same} |"
        )
    print("\n| export / ingest | rate | time | server RSS before -> peak |")
    print("|---|---:|---:|---:|")
    for row in report["exports"]:
        if "server_rss_peak_mib" not in row:  # Datasette's export: in the comparison below
            continue
        print(
            f"| {row['case']} | {row['rows_per_s']:,} rows/s"
            + (f" ({row['share_of_csv_rate']:.2f} of CSV)" if "share_of_csv_rate" in row else "")
            + f" | {row['seconds']} s | {row['server_rss_before_mib']} -> {row['server_rss_peak_mib']} MiB |"
        )
    for ingest in report.get("ingest") or []:
        print(f"| {ingest['case']} | {ingest['events_per_s']:,} events/s | batch p50 {ingest['batch_p50_ms']} ms | |")
    feed = report.get("feed")
    if feed:
        print("\n| feed | HTTP events/s | SQL events/s | events | pages |\n|---|---:|---:|---:|---:|")
        print(
            f"| {feed['case']} | {feed['http_events_per_s']:,} | {feed['sql_events_per_s']:,} | "
            f"{feed['events']:,} | {feed['pages']:,} |"
        )
    if any("datasette_p50_ms" in row for row in report["reads"]):
        print(issue18_table(report))
    print()


def issue18_table(report: dict[str, Any]) -> str:
    """The SQLite comparison of issue 18: API, the same SQL run directly, and Datasette on the same file."""
    lines = [
        "",
        f"| SQLite, {report['events']:,} events | API p50 | raw SQL p50 | Datasette p50 | API - SQL "
        "| API <= Datasette |",
        "|---|---:|---:|---:|---:|:-:|",
    ]
    for row in report["reads"]:
        if "datasette_p50_ms" in row:
            api, sql, browser = row["http_p50_ms"], row["sql_p50_ms"], row["datasette_p50_ms"]
            lines.append(
                f"| {row['case']} | {api:.1f} ms | {sql:.1f} ms | {browser:.1f} ms | {api - sql:+.1f} ms | "
                f"{'yes' if api <= browser else 'NO'} |"
            )
    exports = {_case_key(row["case"]): row for row in report["exports"]}
    api_csv = exports.get("export csv 100,000 rows") or next(
        (row for key, row in exports.items() if key.startswith("export csv")), None
    )
    browser_csv = next((row for key, row in exports.items() if key.startswith("export datasette")), None)
    if api_csv or browser_csv:
        rows = (api_csv or browser_csv or {}).get("rows", 0)
        lines.append(
            f"| export CSV ({rows:,} newest rows) | "
            + (f"{api_csv['rows_per_s']:,} rows/s" if api_csv else "-")
            + " | - | "
            + (f"{browser_csv['rows_per_s']:,} rows/s" if browser_csv else "-")
            + " | | |"
        )
    for ingest in report.get("ingest") or []:
        lines.append(f"| {ingest['case']} | {ingest['events_per_s']:,} events/s | - | - | | |")
    return "\n".join(lines)


def combined_table(reports: list[dict[str, Any]]) -> str:
    """One Markdown table comparing several results files (first one in full, others by HTTP p50)."""
    first, rest = reports[0], reports[1:]
    head = f"| case | {first['backend']} {first['events']:,}: HTTP p50 / p95 ms | SQL p50 ms | ratio |"
    head += "".join(f" {r['backend']} {r['events']:,}: HTTP p50 / SQL p50 ms |" for r in rest)
    lines = [head, "|---|---:|---:|---:|" + "---:|" * len(rest)]
    others = [{row["case"]: row for row in r["reads"]} for r in rest]
    for row in first["reads"]:
        line = f"| {row['case']} | {row['http_p50_ms']:.1f} / {row['http_p95_ms']:.1f} | {row['sql_p50_ms']:.1f} |"
        line += f" {row['ratio_p50']} |"
        for other in others:
            match = other.get(row["case"])
            line += f" {match['http_p50_ms']:.1f} / {match['sql_p50_ms']:.1f} |" if match else " - |"
        lines.append(line)
    lines += ["", "| export / ingestion | " + " | ".join(f"{r['backend']} {r['events']:,}" for r in reports) + " |"]
    lines.append("|---|" + "---:|" * len(reports))
    served = [[e for e in r["exports"] if "server_rss_peak_mib" in e] for r in reports]
    for index in range(len(served[0])):
        cells = []
        for exports in served:
            e = exports[index] if index < len(exports) else None
            cells.append(
                f"{e['rows_per_s']:,} rows/s ({e['rows']:,} rows), RSS {e['server_rss_before_mib']:.0f} -> "
                f"{e['server_rss_peak_mib']:.0f} MiB"
                if e
                else "-"
            )
        label = _case_key(served[0][index]["case"])
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for index, ingest in enumerate(first.get("ingest") or []):
        cells = []
        for r in reports:
            runs = r.get("ingest") or []
            i = runs[index] if index < len(runs) else None
            cells.append(f"{i['events_per_s']:,} events/s (batch p50 {i['batch_p50_ms']:.0f} ms)" if i else "-")
        lines.append(f"| {ingest['case']} | " + " | ".join(cells) + " |")
    machines = {json.dumps({k: v for k, v in r["machine"].items() if not k.startswith("load")}) for r in reports}
    for machine in machines:
        m = json.loads(machine)
        lines += [
            "",
            f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, PostgreSQL {m['postgresql']}, "
            f"SQLite {m['sqlite']}, Python {m['python']}. Load average during the runs: "
            + ", ".join(
                f"{r['backend']} {r['events']:,}: {r['machine']['load_average_at_start'][0]} -> "
                f"{r['machine'].get('load_average_at_end', ['?'])[0]}"
                for r in reports
            )
            + ".",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the PostgreSQL database")
    parser.add_argument(
        "--sqlite-events", type=int, default=200_000, help="events in the SQLite database (smaller: slower load)"
    )
    parser.add_argument("--backend", choices=("postgres", "sqlite", "both"), default="both")
    parser.add_argument("--reuse", action="store_true", help="reuse a database of that size built earlier")
    parser.add_argument(
        "--pg-database",
        metavar="NAME",
        help="PostgreSQL: this database instead of audit_bench_<events> (e.g. a copy made WITH TEMPLATE)",
    )
    parser.add_argument(
        "--partitioned",
        action="store_true",
        help="PostgreSQL: partition audit_log by month (python -m audit_app partition)",
    )
    parser.add_argument(
        "--private-cluster",
        action="store_true",
        help="PostgreSQL: run on a cluster of the benchmark's own with production-like settings (bench/cluster.py)",
    )
    parser.add_argument("--cluster-dir", type=Path, default=DEFAULT_DIR, help="its directory (outside the git tree)")
    parser.add_argument("--cluster-port", type=int, default=DEFAULT_PORT, help="its loopback port")
    parser.add_argument(
        "--export-repeats", type=int, default=3, help="runs of each export, CSV and bundle alternating (median kept)"
    )
    parser.add_argument("--samples", type=int, default=60, help="timed requests per read case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests per read case")
    parser.add_argument("--ingest-batches", type=int, default=30, help="1,000-event batches to ingest (0: skip)")
    parser.add_argument(
        "--cases",
        nargs="+",
        metavar="TEXT",
        help="only the cases whose name contains one of these (e.g. 'list tenant_id' 'ingest'); "
        "their rows replace the same cases in the existing results file",
    )
    parser.add_argument(
        "--no-datasette", action="store_true", help="SQLite: do not compare with Datasette serving the same file"
    )
    parser.add_argument("--show", type=Path, nargs="+", metavar="JSON", help="only print the tables of results files")
    args = parser.parse_args(argv)
    if args.show:
        print(combined_table([json.loads(path.read_text()) for path in args.show]))
        return 0
    backends = ("postgres", "sqlite") if args.backend == "both" else (args.backend,)
    for backend in backends:
        events = args.events if backend == "postgres" else args.sqlite_events
        if backend == "postgres" and args.private_cluster:
            with private_cluster(args.cluster_dir, args.cluster_port) as cluster:
                log(f"private cluster on 127.0.0.1:{cluster.port}, data in {cluster.data}")
                run_backend(backend, events, args, cluster.admin_url)
        else:
            run_backend(backend, events, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
