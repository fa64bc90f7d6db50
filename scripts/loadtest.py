"""Load and fault test: concurrent readers and writers against PostgreSQL through the HTTP API.

Starts a private PostgreSQL cluster (initdb in a temporary directory, loopback only, its own
port, so the shared server is never touched), migrates a fresh database, serves
`audit_app.api:app` with uvicorn on a free loopback port, then runs writers (batches of
events with Idempotency-Keys, retried until acknowledged) and readers (list, filters,
stats, single events) for a fixed time. Optionally restarts PostgreSQL mid-run. Afterwards
it checks that every acknowledged event is in the database and that every chain verifies.

    .venv/bin/python -m scripts.loadtest --duration 40 --restart-at 15

Exit status 0 when no acknowledged event was lost and every chain verifies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from audit_app.auth import issue_token
from audit_app.migrations import upgrade
from audit_app.settings import Settings
from bench.cluster import PrivateCluster, free_port

PROJECT = Path(__file__).resolve().parent.parent
TENANTS = [f"load-{n}" for n in range(8)]
ACTIONS = ["user.login", "user.logout", "role.assign", "apikey.revoke", "user.update"]


@dataclass
class Stats:
    """Latencies (seconds) of successful requests and error counts, by kind of request."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)
    acknowledged: list[str] = field(default_factory=list)
    last_error_at: float = 0.0
    first_error_at: float = 0.0
    restart: tuple[float, float] | None = None  # when the database restart began and ended

    def ok(self, kind: str, seconds: float) -> None:
        self.latencies.setdefault(kind, []).append(seconds)

    def fail(self, kind: str, what: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.error_kinds[what] = self.error_kinds.get(what, 0) + 1
        now = time.monotonic()
        self.first_error_at = self.first_error_at or now
        self.last_error_at = now


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _batch(size: int) -> list[dict[str, Any]]:
    tenant = random.choice(TENANTS)
    return [
        {
            "tenant_id": tenant,
            "partner_id": "load-partner",
            "actor_id": f"actor-{random.randrange(50)}",
            "action": random.choice(ACTIONS),
            "resource_type": "user",
            "resource_id": f"u-{random.randrange(1000)}",
            "result": random.choice(["success", "success", "failure"]),
            "ip_address": f"10.0.{random.randrange(256)}.{random.randrange(256)}",
            "details": {"n": random.random(), "note": "load"},
        }
        for _ in range(size)
    ]


async def writer(client: httpx.AsyncClient, headers: dict[str, str], stats: Stats, until: float, size: int) -> None:
    """Write batches; a batch is retried with its Idempotency-Key until the server acknowledges it."""
    while time.monotonic() < until:
        body, key = {"events": _batch(size)}, str(uuid.uuid4())
        while True:
            started = time.monotonic()
            try:
                response = await client.post(
                    "/api/v1/audit/events", json=body, headers=headers | {"Idempotency-Key": key}
                )
            except httpx.HTTPError as exc:
                stats.fail("write", type(exc).__name__)
            else:
                if response.status_code == 201:
                    stats.ok("write", time.monotonic() - started)
                    stats.acknowledged.extend(response.json()["ids"])
                    break
                stats.fail("write", f"HTTP {response.status_code}")
            if time.monotonic() > until + 30:  # give up on this batch: it was never acknowledged
                return
            await asyncio.sleep(0.2)


async def reader(client: httpx.AsyncClient, headers: dict[str, str], stats: Stats, until: float) -> None:
    """Read the way the console does: filtered pages, stats, single events."""
    seen: list[str] = []
    while time.monotonic() < until:
        choice = random.random()
        if choice < 0.5:
            kind, path = "list", "/api/v1/admin/audit/"
            params: dict[str, Any] = {"tenant_id": random.choice(TENANTS), "per_page": 50}
            if random.random() < 0.5:
                params["action"] = random.choice(ACTIONS)
        elif choice < 0.7:
            kind, path, params = "stats", "/api/v1/admin/audit/stats", {"tenant_id": random.choice(TENANTS)}
        elif seen:
            kind, path, params = "get", f"/api/v1/admin/audit/{random.choice(seen)}", {}
        else:
            kind, path, params = "list", "/api/v1/admin/audit/", {"per_page": 20}
        started = time.monotonic()
        try:
            response = await client.get(path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            stats.fail(kind, type(exc).__name__)
            await asyncio.sleep(0.2)
            continue
        if response.status_code == 200:
            stats.ok(kind, time.monotonic() - started)
            if kind == "list":
                seen = [item["id"] for item in response.json()["items"]][:20] or seen
        else:
            stats.fail(kind, f"HTTP {response.status_code}")
            await asyncio.sleep(0.2)


async def run_load(args: argparse.Namespace, base_url: str, token: str, cluster: PrivateCluster | None) -> Stats:
    stats = Stats()
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=args.writers + args.readers + 4)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        until = time.monotonic() + args.duration
        tasks = [writer(client, headers, stats, until, args.batch) for _ in range(args.writers)]
        tasks += [reader(client, headers, stats, until) for _ in range(args.readers)]

        async def fault() -> None:
            if cluster is None or args.restart_at <= 0:
                return
            await asyncio.sleep(args.restart_at)
            began = time.monotonic()
            await asyncio.to_thread(cluster.restart)
            stats.restart = (began, time.monotonic())

        await asyncio.gather(*tasks, fault())
    return stats


def wait_for_server(base_url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("error: the API server exited during start-up")
        try:
            if httpx.get(f"{base_url}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("error: the API server did not answer within 30 s")


def check_after(url: str, base_url: str, token: str, acknowledged: list[str]) -> dict[str, Any]:
    """Every acknowledged event is stored, and every chain verifies (through the API)."""
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain) as conn:
        stored = conn.execute("SELECT count(*) FROM audit_log WHERE id = ANY(%s)", (acknowledged,)).fetchone()
        total = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    verify = httpx.get(
        f"{base_url}/api/v1/admin/audit/verify", headers={"Authorization": f"Bearer {token}"}, timeout=120
    ).json()
    return {
        "acknowledged_events": len(set(acknowledged)),
        "acknowledged_events_stored": stored[0] if stored else 0,
        "events_in_database": total[0] if total else 0,
        "verify_ok": verify["ok"],
        "verify_events_checked": verify["events_checked"],
        "verify_first_broken": verify["first_broken"],
    }


def report(args: argparse.Namespace, stats: Stats, after: dict[str, Any], elapsed: float) -> dict[str, Any]:
    kinds = sorted(set(stats.latencies) | set(stats.errors))
    summary: dict[str, Any] = {
        "duration_s": round(elapsed, 1),
        "writers": args.writers,
        "readers": args.readers,
        "batch_size": args.batch,
        "requests": sum(len(v) for v in stats.latencies.values()) + sum(stats.errors.values()),
        "errors": sum(stats.errors.values()),
        "error_kinds": stats.error_kinds,
        "by_kind": {
            kind: {
                "ok": len(stats.latencies.get(kind, [])),
                "errors": stats.errors.get(kind, 0),
                "p50_ms": round(percentile(stats.latencies.get(kind, []), 0.50) * 1000, 1),
                "p99_ms": round(percentile(stats.latencies.get(kind, []), 0.99) * 1000, 1),
            }
            for kind in kinds
        },
        "events_per_s": round(len(stats.acknowledged) / elapsed, 1),
    }
    restart = stats.restart
    if restart:
        summary["restart_s"] = round(restart[1] - restart[0], 2)
        summary["errors_span_s"] = round(stats.last_error_at - stats.first_error_at, 2) if stats.errors else 0.0
        summary["recovered_s_after_restart"] = round(max(0.0, stats.last_error_at - restart[1]), 2)
    return summary | after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.loadtest", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=40, help="seconds of load (default 40)")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writers (default 4)")
    parser.add_argument("--readers", type=int, default=4, help="concurrent readers (default 4)")
    parser.add_argument("--batch", type=int, default=10, help="events per write request (default 10)")
    parser.add_argument("--restart-at", type=float, default=15, help="restart PostgreSQL after N s (0 = never)")
    parser.add_argument("--pg-port", type=int, default=0, help="port of the private cluster (default: a free one)")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON to this file")
    parser.add_argument("--server-log", type=Path, help="write the API server's output to this file")
    args = parser.parse_args(argv)
    if args.duration > 600:
        parser.error("--duration is capped at 600 s")

    root = Path(tempfile.mkdtemp(prefix="audit-loadtest-pg-"))
    cluster = PrivateCluster(root, args.pg_port or free_port(), tuned=False)
    server: subprocess.Popen[bytes] | None = None
    try:
        cluster.start()
        with psycopg.connect(cluster.admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE DATABASE audit_load")
        url = cluster.url("audit_load")
        upgrade(url)
        secret = secrets.token_urlsafe(32)
        port = free_port()
        log = args.server_log.open("wb") if args.server_log else subprocess.DEVNULL
        env = os.environ | {"AUDIT_DATABASE_URL": url, "AUDIT_JWT_SECRET": secret, "AUDIT_DEMO": "0"}
        server = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "uvicorn", "audit_app.api:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        wait_for_server(base_url, server)
        token = issue_token(Settings(database_url=url, jwt_secret=secret), role="super_admin", ttl=3600)
        started = time.monotonic()
        stats = asyncio.run(run_load(args, base_url, token, cluster))
        elapsed = time.monotonic() - started
        after = check_after(url, base_url, token, stats.acknowledged)
        summary = report(args, stats, after, elapsed)
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    lost = summary["acknowledged_events"] - summary["acknowledged_events_stored"]
    print(
        f"\n{summary['requests']:,} requests, {summary['errors']:,} errors, {lost} acknowledged events lost, ", end=""
    )
    print(f"chains {'verify' if summary['verify_ok'] else 'BROKEN'}.")
    return 0 if lost == 0 and summary["verify_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
