"""The feed's guarantee under load: 8 writers commit late into several tenants while a collector
follows the feed through real API workers; it ends with exactly the acknowledged ids, none twice.

Variants: one worker; the collector restarting from its last cursor; two uvicorn workers
answering alternate polls. On both databases.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlmodel import Session

from audit_app.audit.ingest import ingest_events
from audit_app.db import engine_for
from audit_app.models import AuditEventIn
from audit_app.settings import Settings
from bench.cluster import free_port, wait_until_serving
from tests.helpers import TokenFactory

WRITERS = 8
BATCHES = 8
TENANTS = ("t-a", "t-b", "t-c", "t-d")
FEED = "/api/v1/admin/audit/feed"
ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def api_workers(settings: Settings, count: int) -> Iterator[list[str]]:
    """`count` uvicorn processes serving the API on the test database, each on its own free port."""
    env = dict(os.environ, AUDIT_DATABASE_URL=settings.database_url, AUDIT_JWT_SECRET=settings.jwt_secret or "")
    ports = [free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "audit_app.api:app", "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=ROOT,
        )
        for port in ports
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base in bases:
            wait_until_serving(base, processes)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


class Writers:
    """8 threads writing batches into random tenants, each transaction held open a random time."""

    def __init__(self, url: str, seed: int) -> None:
        self.url = url
        self.rng = random.Random(seed)
        self.acknowledged: set[str] = set()
        self.commits: list[int] = []  # feed positions in commit order
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def write(self, writer: int) -> None:
        rng = random.Random(self.rng.random())
        try:
            for _ in range(BATCHES):
                tenants = rng.sample(TENANTS, rng.randint(1, 2))
                events = [
                    AuditEventIn(tenant_id=rng.choice(tenants), actor_id=f"w{writer}", action="user.update")
                    for _ in range(rng.randint(1, 5))
                ]
                with Session(engine_for(self.url)) as session:
                    ids = ingest_events(session, events, ids=None)
                    time.sleep(rng.uniform(0, 0.1))  # late commit: others commit around this one
                    position = (
                        session.connection()
                        .exec_driver_sql(
                            "SELECT feed_pos FROM audit_log WHERE id = ?"
                            if self.url.startswith("sqlite")
                            else "SELECT feed_pos FROM audit_log WHERE id = %s",
                            (ids[0],),
                        )
                        .scalar_one()
                    )
                    with self.lock:  # commit order recorded as it happens
                        session.commit()
                        self.commits.append(int(position))
                        self.acknowledged.update(ids)
                time.sleep(rng.uniform(0, 0.02))
        except BaseException as exc:
            self.errors.append(exc)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.write, args=(n,)) for n in range(WRITERS)]
        for thread in threads:
            thread.start()
        return threads


class Collector:
    """Follows the feed's Link header, alternating between API workers; keeps every id it receives."""

    def __init__(self, bases: list[str], token: str) -> None:
        self.bases = bases
        self.headers = {"Authorization": f"Bearer {token}"}
        self.received: list[str] = []
        self.next_url = f"{bases[0]}{FEED}?limit=7"
        self.polls = 0

    def poll(self) -> int:
        """One request; returns how many events it brought."""
        base = urlsplit(self.bases[self.polls % len(self.bases)])
        url = urlunsplit(urlsplit(self.next_url)._replace(netloc=base.netloc))
        self.polls += 1
        response = httpx.get(url, headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        link = response.headers["link"]
        self.next_url = link[1 : link.index(">")]
        items = response.json()["items"]
        self.received += [item["id"] for item in items if item["action"] != "audit.feed"]
        return len(items)


def _follow_until_done(collectors: list[Collector], writers: Writers, threads: list[threading.Thread]) -> Collector:
    """Poll while the writers write (switching to the next collector, from the same cursor, halfway
    when there are several), then until the acknowledged ids have arrived (a minute at most)."""
    current = collectors[0]
    switched = False
    while any(thread.is_alive() for thread in threads):
        current.poll()
        if len(collectors) > 1 and not switched and len(writers.acknowledged) > WRITERS * BATCHES:
            collectors[1].next_url, collectors[1].received = current.next_url, current.received  # a restart
            current, switched = collectors[1], True
        time.sleep(0.01)
    deadline = time.monotonic() + 60
    while len(set(current.received)) < len(writers.acknowledged) and time.monotonic() < deadline:
        if current.poll() == 0:
            time.sleep(0.2)
    while current.poll():  # and nothing more than that
        pass
    return current


@pytest.mark.parametrize("variant", ["one worker", "restart from last cursor", "two workers"])
def test_the_collector_receives_exactly_the_acknowledged_events(
    settings: Settings, make_token: TokenFactory, variant: str
) -> None:
    token = make_token("super_admin", scope="audit:read")
    with api_workers(settings, 2 if variant == "two workers" else 1) as bases:
        collectors = [Collector(bases, token)]
        if variant == "restart from last cursor":
            collectors.append(Collector(bases, token))  # a new process would start from the saved cursor
        writers = Writers(settings.database_url, seed=len(variant))
        threads = writers.start()
        collector = _follow_until_done(collectors, writers, threads)
        for thread in threads:
            thread.join()
    assert writers.errors == []
    assert len(collector.received) == len(set(collector.received)), "an event was delivered twice"
    assert set(collector.received) == writers.acknowledged
    assert len(writers.acknowledged) >= WRITERS * BATCHES
    if settings.database_url.startswith("postgresql"):
        # The writers did commit out of position order: a naive cursor would have skipped events.
        assert any(later < earlier for earlier, later in zip(writers.commits, writers.commits[1:], strict=False))
