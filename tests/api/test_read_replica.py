"""AUDIT_READ_DATABASE_URL: reads go to a real streaming replica, writes to the primary.

Two private PostgreSQL clusters are started for this module (bench/cluster.py): a primary and
a hot standby made from it with `pg_basebackup -R`. A standby refuses every write, so any read
path that wrote (an access record, a session left in a transaction) would fail here. Pausing
the standby's replay shows which database each endpoint reads.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from audit_app.api import create_api
from audit_app.auth import ALL_SCOPES, issue_token
from audit_app.db import engine_for
from audit_app.migrations import upgrade
from audit_app.settings import get_settings
from audit_app.ui.session import in_thread
from bench.cluster import PrivateCluster, free_port, pg_bin
from tests.api.helpers import LIST, bearer
from tests.helpers import TEST_SECRET

pytestmark = pytest.mark.postgres
AUDIT = "/api/v1/admin/audit"


class Replication:
    """A primary and its hot standby, both running."""

    def __init__(self, primary: PrivateCluster, standby: PrivateCluster) -> None:
        self.primary = primary
        self.standby = standby

    def wait_replayed(self, timeout: float = 30) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary.admin_url, autocommit=True) as conn:
            target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.standby.admin_url, autocommit=True) as conn:
            while not conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0]:  # type: ignore[index]
                if time.monotonic() > deadline:
                    raise AssertionError("the standby did not catch up")
                time.sleep(0.05)

    def pause(self) -> None:
        with psycopg.connect(self.standby.admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        with psycopg.connect(self.standby.admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")


@pytest.fixture(scope="module")
def replication() -> Iterator[Replication]:
    try:
        pg_bin("pg_basebackup")
    except SystemExit:
        pytest.skip("PostgreSQL server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="audit-replica-test-"))
    root.chmod(0o755)
    primary = PrivateCluster(root / "primary", free_port(), tuned=False)
    standby = PrivateCluster(root / "standby", free_port(), tuned=False, standby_of=primary)
    try:
        primary.start()
        upgrade(primary.url())
        standby.start()
        pair = Replication(primary, standby)
        pair.wait_replayed()
        yield pair
    finally:
        for cluster in (standby, primary):
            engine_for(cluster.url()).dispose()
            engine_for(cluster.url(), True).dispose()
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def client(replication: Replication, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[TestClient]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIT_DATABASE_URL", replication.primary.url())
    monkeypatch.setenv("AUDIT_READ_DATABASE_URL", replication.standby.url())
    monkeypatch.setenv("AUDIT_JWT_SECRET", TEST_SECRET)
    monkeypatch.delenv("AUDIT_DEMO", raising=False)
    get_settings.cache_clear()
    with TestClient(create_api()) as test_client:
        yield test_client
    get_settings.cache_clear()


def _token(role: str = "super_admin", **claims: str) -> dict[str, str]:
    return bearer(issue_token(get_settings(), role=role, scope=ALL_SCOPES, ttl=600, **claims))


def _event(n: int, tenant: str = "acme") -> dict[str, object]:
    return {
        "tenant_id": tenant,
        "actor_id": f"replica-actor-{n}",
        "action": "replica.test",
        "resource_type": "widget",
        "resource_id": f"w-{n}",
    }


def _primary_count(replication: Replication, action: str) -> int:
    with psycopg.connect(replication.primary.admin_url) as conn:
        return conn.execute("SELECT count(*) FROM audit_log WHERE action = %s", (action,)).fetchone()[0]  # type: ignore[index,no-any-return]


def test_every_read_endpoint_answers_from_the_standby_and_records_go_to_the_primary(
    client: TestClient, replication: Replication
) -> None:
    headers = _token()
    written = client.post("/api/v1/audit/events", json={"events": [_event(n) for n in range(3)]}, headers=headers)
    assert written.status_code == 201, written.text
    replication.wait_replayed()

    listed = client.get(LIST, params={"action": "replica.test"}, headers=headers)
    assert listed.status_code == 200, listed.text
    assert {item["id"] for item in listed.json()["items"]} == set(written.json()["ids"])
    stats = client.get(f"{AUDIT}/stats", params={"tenant_id": "acme"}, headers=headers)
    assert stats.status_code == 200
    assert stats.json()["by_action"]["replica.test"] == 3
    assert "replica.test" in client.get(f"{AUDIT}/actions", headers=headers).json()["actions"]
    assert "widget" in client.get(f"{AUDIT}/resource-types", headers=headers).json()["resource_types"]
    tenant_admin = client.get(LIST, params={"action": "replica.test"}, headers=_token("tenant_admin", tenant_id="acme"))
    assert tenant_admin.json()["total"] == 3

    views, exports = _primary_count(replication, "audit.view"), _primary_count(replication, "audit.export")
    one = client.get(f"{AUDIT}/{written.json()['ids'][0]}", headers=headers)
    assert one.status_code == 200
    assert one.json()["actor_id"] == "replica-actor-0"
    exported = client.get(f"{AUDIT}/export", params={"action": "replica.test", "format": "csv"}, headers=headers)
    assert exported.status_code == 200
    assert len(exported.text.strip().splitlines()) == 1 + 3
    # The reads ran on a server that refuses writes; their access records reached the primary.
    assert _primary_count(replication, "audit.view") == views + 1
    assert _primary_count(replication, "audit.export") == exports + 1


def test_reads_lag_with_the_standby_while_verification_reads_the_primary(
    client: TestClient, replication: Replication
) -> None:
    headers = _token()
    client.post("/api/v1/audit/events", json={"events": [_event(10, "globex")]}, headers=headers)
    replication.wait_replayed()
    before = client.get(LIST, params={"tenant_id": "globex", "action": "replica.test"}, headers=headers).json()
    replication.pause()
    try:
        written = client.post("/api/v1/audit/events", json={"events": [_event(11, "globex")]}, headers=headers)
        assert written.status_code == 201
        lagging = client.get(LIST, params={"tenant_id": "globex", "action": "replica.test"}, headers=headers)
        assert lagging.json()["total"] == before["total"]  # the standby has not replayed it yet
        with psycopg.connect(replication.primary.admin_url) as conn:
            head = conn.execute("SELECT seq FROM chain_head WHERE tenant_id = 'globex'").fetchone()
        assert head is not None
        verified = client.get(f"{AUDIT}/verify", params={"tenant_id": "globex"}, headers=headers)
        assert verified.status_code == 200
        assert verified.json()["ok"] is True
        assert verified.json()["chains"][0]["head_seq"] == head[0]  # the primary's chain, with the unreplayed event
    finally:
        replication.resume()
    replication.wait_replayed()
    caught_up = client.get(LIST, params={"tenant_id": "globex", "action": "replica.test"}, headers=headers)
    assert caught_up.json()["total"] == before["total"] + 1


def test_the_console_reads_from_the_standby_and_writes_on_the_primary(
    client: TestClient, replication: Replication
) -> None:
    """`in_thread` runs every console query; only work that `writes` gets the primary."""

    def in_recovery(session: Session) -> bool:
        return bool(session.execute(text("SELECT pg_is_in_recovery()")).scalar_one())

    assert asyncio.run(in_thread(in_recovery)) is True
    assert asyncio.run(in_thread(in_recovery, writes=True)) is False
