"""Database faults answer a JSON 503 with Retry-After, and writes recover without a restart.

PostgreSQL faults are made on the real server: a chain head held `FOR UPDATE` by another
session, a database switched to `default_transaction_read_only`, a pool with every connection
checked out. (The full disk is in test_disk_full.py, on a private cluster.)
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, make_url

from audit_app.api import create_api
from audit_app.api.app import FastAPI
from audit_app.db import get_engine, psycopg_url
from audit_app.settings import Settings, get_settings
from tests.helpers import PG_ADMIN_URL

EVENTS = "/api/v1/audit/events"


def ev(tenant: str) -> dict[str, Any]:
    return {"tenant_id": tenant, "actor_id": "svc-1", "action": "user.login"}


@pytest.fixture
def fast_faults(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Short lock and pool timeouts, so a fault shows in well under a second."""
    monkeypatch.setenv("AUDIT_LOCK_TIMEOUT", "0.3")
    monkeypatch.setenv("AUDIT_POOL_TIMEOUT", "0.3")
    get_settings.cache_clear()
    yield get_settings()
    get_engine().dispose()
    get_settings.cache_clear()


def assert_outage(response: Any, words: str) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert words in response.json()["detail"]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_held_chain_lock_is_a_bounded_wait_and_a_503(fast_faults: Settings, as_super: dict[str, str]) -> None:
    with TestClient(create_api()) as client:
        assert client.post(EVENTS, json={"events": [ev("acme"), ev("globex")]}, headers=as_super).status_code == 201
        with psycopg.connect(psycopg_url(fast_faults.database_url)) as holder:
            holder.execute("SELECT * FROM chain_head WHERE tenant_id = 'acme' FOR UPDATE")
            started = time.monotonic()
            blocked = client.post(EVENTS, json={"events": [ev("acme")]}, headers=as_super)
            waited = time.monotonic() - started
            assert_outage(blocked, "chain is busy")
            assert waited < 3, waited
            other = client.post(EVENTS, json={"events": [ev("globex")]}, headers=as_super)
            assert other.status_code == 201, other.text  # another tenant is not held up
        assert client.post(EVENTS, json={"events": [ev("acme")]}, headers=as_super).status_code == 201


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_read_only_database_is_a_503_and_writes_recover_by_themselves(
    fast_faults: Settings, as_super: dict[str, str]
) -> None:
    name = make_url(fast_faults.database_url).database
    admin = PG_ADMIN_URL  # another database: a session on the read-only one could not reset it
    with TestClient(create_api()) as client:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        try:
            get_engine().dispose()  # connections opened from now on are read-only
            assert_outage(client.post(EVENTS, json={"events": [ev("acme")]}, headers=as_super), "read-only")
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        # No dispose: the read-only connection was dropped when it refused the write.
        assert client.post(EVENTS, json={"events": [ev("acme")]}, headers=as_super).status_code == 201


def test_an_exhausted_pool_is_a_503(fast_faults: Settings, as_super: dict[str, str]) -> None:
    engine = get_engine()
    held: list[Connection] = []
    with TestClient(create_api()) as client:
        try:
            while len(held) < engine.pool.size() + engine.pool._max_overflow:  # type: ignore[attr-defined]
                held.append(engine.connect())
            assert_outage(client.post(EVENTS, json={"events": [ev("acme")]}, headers=as_super), "busy")
        finally:
            for conn in held:
                conn.close()
        assert client.post(EVENTS, json={"events": [ev("acme")]}, headers=as_super).status_code == 201


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_writers_waiting_for_one_chain_are_limited_per_tenant(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, as_super: dict[str, str]
) -> None:
    monkeypatch.setenv("AUDIT_LOCK_TIMEOUT", "3")
    monkeypatch.setenv("AUDIT_TENANT_WRITERS", "2")
    get_settings.cache_clear()
    with TestClient(create_api()) as client:
        assert client.post(EVENTS, json={"events": [ev("acme")]}, headers=as_super).status_code == 201
        with psycopg.connect(psycopg_url(settings.database_url)) as holder:
            holder.execute("SELECT * FROM chain_head WHERE tenant_id = 'acme' FOR UPDATE")
            waiting = [
                threading.Thread(
                    target=client.post, args=(EVENTS,), kwargs={"json": {"events": [ev("acme")]}, "headers": as_super}
                )
                for _ in range(2)
            ]
            for thread in waiting:
                thread.start()
            time.sleep(0.5)  # both are waiting for the chain lock now
            started = time.monotonic()
            assert_outage(client.post(EVENTS, json={"events": [ev("acme")]}, headers=as_super), "tenant 'acme'")
            assert time.monotonic() - started < 1  # refused without waiting
            assert client.post(EVENTS, json={"events": [ev("globex")]}, headers=as_super).status_code == 201
            holder.rollback()
            for thread in waiting:
                thread.join()
    get_engine().dispose()
    get_settings.cache_clear()


async def post_and_leave(app: FastAPI, body: bytes, headers: dict[str, str], leave_after: float) -> list[Any]:
    """POST `body` to `app` as a client that disconnects `leave_after` seconds later; what was sent back."""
    gone_at = time.monotonic() + leave_after
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        if time.monotonic() < gone_at:  # as a server does: nothing to receive until the client goes
            await asyncio.sleep(gone_at - time.monotonic())
        return {"type": "http.disconnect"}

    sent: list[Any] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    raw += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": EVENTS,
        "raw_path": EVENTS.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_database_work_of_a_gone_client_is_cancelled(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, as_super: dict[str, str]
) -> None:
    monkeypatch.setenv("AUDIT_LOCK_TIMEOUT", "60")  # only the disconnect can end the wait
    get_settings.cache_clear()
    app = create_api()
    with TestClient(app) as client:
        assert client.post(EVENTS, json={"events": [ev("acme")]}, headers=as_super).status_code == 201
    name = make_url(settings.database_url).database
    body = json.dumps({"events": [ev("acme")]}).encode()
    with psycopg.connect(psycopg_url(settings.database_url), autocommit=True) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT * FROM chain_head WHERE tenant_id = 'acme' FOR UPDATE")
        started = time.monotonic()
        asyncio.run(post_and_leave(app, body, as_super, leave_after=0.5))
        assert time.monotonic() - started < 3
        waiting = holder.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", (name,)
        ).fetchone()
        assert waiting == (0,)  # the lock is still held, and nobody waits for it any more
        holder.execute("ROLLBACK")
    get_engine().dispose()
    get_settings.cache_clear()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reads_do_not_queue_behind_blocked_writers(
    fast_faults: Settings, monkeypatch: pytest.MonkeyPatch, as_super: dict[str, str]
) -> None:
    """SQLite's write lock held by another connection, 50 writers blocked: a list answers at once."""
    monkeypatch.setenv("AUDIT_POOL_TIMEOUT", "3")
    get_settings.cache_clear()
    path = make_url(fast_faults.database_url).database
    assert path is not None
    with TestClient(create_api()) as client:
        assert client.post(EVENTS, json={"events": [ev("acme")]}, headers=as_super).status_code == 201
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the write lock, as a long write elsewhere holds it
        answers: list[int] = []
        try:
            writers = [
                threading.Thread(
                    target=lambda: answers.append(
                        client.post(EVENTS, json={"events": [ev("acme")]}, headers=as_super).status_code
                    )
                )
                for _ in range(50)
            ]
            for thread in writers:
                thread.start()
            time.sleep(0.5)
            started = time.monotonic()
            listed = client.get("/api/v1/admin/audit/", headers=as_super)
            assert listed.status_code == 200
            assert time.monotonic() - started < 1.5
        finally:
            holder.rollback()
            holder.close()
        for thread in writers:
            thread.join()
        assert len(answers) == 50
        assert set(answers) <= {201, 503}  # written once the lock went, or turned away: never a 500
