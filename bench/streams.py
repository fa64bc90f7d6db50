"""Log stream benchmark (`make bench` runs it after bench.run): one `http` stream to a local receiver.

1. Throughput: a backlog of events delivered by one worker, events per second.
2. Lag: ingestion at a steady rate while the worker delivers; end-to-end lag per event
   (receiver's clock at arrival minus the event's `ingested_at`), p50/p95/max.

The receiver is a separate process (so it does not share the worker's interpreter lock): it
answers 200 to every NDJSON batch and keeps each event's lag, served at GET /stats.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
from sqlmodel import Session

from audit_app.audit.ingest import ingest_events
from audit_app.audit.stream_targets import TargetPolicy
from audit_app.audit.stream_worker import StreamWorker, Timing
from audit_app.audit.streams import SPEC, create_stream, replay_stream
from audit_app.auth import Principal
from audit_app.db import engine_for, unpooled_engine
from audit_app.migrations import upgrade
from audit_app.models import AuditEventIn, LogStream
from bench.cluster import free_port

PG_ADMIN_URL = os.environ.get("AUDIT_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
KEY = "bench-stream-key-" + "b" * 20
SECRET = "bench-secret-" + "s" * 20
ROOT = Principal(sub="bench", email="", role="super_admin", scopes=frozenset({"audit:admin"}))
TARGETS = TargetPolicy(allowed=(ipaddress.ip_network("127.0.0.1/32"),))
"""The local receiver's address, allowed as AUDIT_STREAM_ALLOWED_NETWORKS=127.0.0.1/32 would."""


def serve(port: int) -> None:
    """The receiver process: count events and keep their lags (seconds)."""
    lags: list[float] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The answer goes out as two writes (headers, then body): with Nagle's algorithm on, the
        # second waited for the client's delayed ACK, about 40 ms per batch, which capped the
        # benchmark, not the stream (a SIEM's receiver answers at once).
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            now = time.time()
            found = [
                now - datetime.fromisoformat(json.loads(line)["ingested_at"]).timestamp() for line in body.splitlines()
            ]
            with lock:
                lags.extend(found)
            self._answer(b'{"ok":true}')

        def do_GET(self) -> None:
            with lock:
                data = json.dumps({"count": len(lags), "lags": lags}).encode()
                if self.path == "/reset":
                    lags.clear()
            self._answer(data)

        def _answer(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def events(count: int, n: int = 0) -> list[AuditEventIn]:
    return [
        AuditEventIn(
            tenant_id=f"tenant-{(n + i) % 20}",
            actor_id=f"user-{(n + i) % 997}",
            actor_email=f"user{(n + i) % 997}@example.com",
            action=("user.login", "role.assign", "user.update")[(n + i) % 3],
            resource_type="user",
            resource_id=f"u-{n + i}",
            ip_address="10.1.2.3",
            details={"n": n + i, "reason": "benchmark"},
        )
        for i in range(count)
    ]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=200_000, help="events delivered for the throughput")
    parser.add_argument("--rate", type=int, default=1000, help="events/s ingested during the lag run")
    parser.add_argument("--seconds", type=int, default=30, help="length of the lag run")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    name = f"audit_bench_streams_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "bench.streams", "--serve", str(port)])
    try:
        upgrade(url)
        engine = engine_for(url)
        with Session(engine) as session:
            print(f"writing a backlog of {args.backlog:,} events ...", flush=True)
            for start in range(0, args.backlog, 1000):
                ingest_events(session, events(1000, start), register=True)
                session.commit()
            spec = SPEC.validate_python(
                {
                    "name": "bench",
                    "type": "http",
                    "target": f"http://127.0.0.1:{port}/",
                    "credentials": {"secret": SECRET},
                }
            )
            stream = create_stream(session, ROOT, spec, KEY, TARGETS)
            replay_stream(session, ROOT, stream.id, since=datetime(2000, 1, 1, tzinfo=UTC))
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/stats").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        worker = StreamWorker(unpooled_engine(url), KEY, Timing(batch_size=1000, claim_seconds=0.2), targets=TARGETS)
        thread = threading.Thread(target=worker.run, daemon=True)
        started = time.perf_counter()
        thread.start()
        with Session(engine) as session:
            while True:
                session.expire_all()
                delivered = session.get_one(LogStream, stream.id).delivered
                if delivered >= args.backlog:
                    break
                time.sleep(0.05)
        elapsed = time.perf_counter() - started
        throughput = delivered / elapsed
        print(f"throughput: {delivered:,} events in {elapsed:.2f} s = {throughput:,.0f} events/s (one http stream)")
        httpx.get(f"http://127.0.0.1:{port}/reset")
        print(f"lag: ingesting {args.rate:,} events/s for {args.seconds} s ...", flush=True)
        with Session(engine) as session:
            batch = max(1, args.rate // 10)
            begin = time.monotonic()
            written = 0
            while time.monotonic() - begin < args.seconds:
                ingest_events(session, events(batch, args.backlog + written), register=True)
                session.commit()
                written += batch
                pause = begin + written / args.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            ingest_seconds = time.monotonic() - begin
            deadline = time.monotonic() + 60
            while httpx.get(f"http://127.0.0.1:{port}/stats").json()["count"] < written:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        lags = httpx.get(f"http://127.0.0.1:{port}/stats").json()["lags"]
        print(
            f"ingested {written:,} events in {ingest_seconds:.1f} s = {written / ingest_seconds:,.0f} events/s achieved"
        )
        print(
            f"lag at {args.rate:,} events/s ingested ({len(lags):,} of {written:,} events received): "
            f"p50 {percentile(lags, 50):.3f} s, p95 {percentile(lags, 95):.3f} s, max {max(lags):.3f} s"
        )
        worker.stop.set()
        thread.join(30)
        engine.dispose()
    finally:
        receiver.terminate()
        receiver.wait(10)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
