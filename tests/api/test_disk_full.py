"""A full disk is a JSON 503 with Retry-After, and writes resume once space returns.

The disk is really full: a private PostgreSQL cluster keeps `audit_log` in a tablespace on a
2 MB tmpfs, so the COPY of a batch fails with the server's own `DiskFull` (ENOSPC). Growing the
tmpfs gives the space back. Mounting needs root; elsewhere the test is skipped, saying why.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from audit_app.api import create_api
from audit_app.auth import ALL_SCOPES, issue_token
from audit_app.db import engine_for
from audit_app.migrations import upgrade
from audit_app.settings import get_settings
from bench.cluster import PrivateCluster, free_port, pg_bin
from tests.api.helpers import bearer
from tests.helpers import TEST_SECRET

pytestmark = pytest.mark.postgres
EVENTS = "/api/v1/audit/events"


def mount_tmpfs(path: Path, size: str, *, remount: bool = False) -> None:
    options = f"remount,size={size}" if remount else f"size={size},mode=0700,uid=postgres,gid=postgres"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def small_disk_cluster() -> Iterator[tuple[PrivateCluster, Path]]:
    """A private cluster whose audit_log lives on a 2 MB tmpfs."""
    try:
        pg_bin("initdb")
    except SystemExit:
        pytest.skip("PostgreSQL server binaries are not installed")
    if os.geteuid() != 0:
        pytest.skip("mounting the small tmpfs that fills up needs root")
    root = Path(tempfile.mkdtemp(prefix="audit-diskfull-test-"))
    root.chmod(0o755)
    disk = root / "small"
    disk.mkdir()
    cluster = PrivateCluster(root / "cluster", free_port(), tuned=False)
    mounted = False
    try:
        mount_tmpfs(disk, "2m")
        mounted = True
        cluster.start()
        upgrade(cluster.url())
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE small LOCATION '{disk}'")
            conn.execute("ALTER TABLE audit_log SET TABLESPACE small")
        yield cluster, disk
    finally:
        engine_for(cluster.url()).dispose()
        cluster.stop()
        if mounted:
            subprocess.run(["umount", str(disk)], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def batch(size: int) -> dict[str, object]:
    """Events that do not compress: each carries 400 random hex characters."""
    events = [
        {"tenant_id": "acme", "actor_id": "svc-1", "action": "file.upload", "details": {"blob": secrets.token_hex(200)}}
        for _ in range(size)
    ]
    return {"events": events}


def test_a_full_disk_is_a_json_503_and_writes_resume_when_space_returns(
    small_disk_cluster: tuple[PrivateCluster, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cluster, disk = small_disk_cluster
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIT_DATABASE_URL", cluster.url())
    monkeypatch.setenv("AUDIT_JWT_SECRET", TEST_SECRET)
    monkeypatch.delenv("AUDIT_DEMO", raising=False)
    get_settings.cache_clear()
    headers = bearer(issue_token(get_settings(), role="super_admin", scope=ALL_SCOPES))
    with TestClient(create_api()) as client:
        for _ in range(20):  # 2 MB holds about 3,000 of these events
            response = client.post(EVENTS, json=batch(1000), headers=headers)
            if response.status_code != 201:
                break
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.headers["Retry-After"] == "30"
        assert "out of disk space" in response.json()["detail"]
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            stored = conn.execute("SELECT count(*) FROM audit_log WHERE action <> 'tenant.create'").fetchone()
        assert stored is not None
        assert stored[0] % 1000 == 0  # the refused batch wrote nothing

        mount_tmpfs(disk, "64m", remount=True)
        started = time.monotonic()
        assert client.post(EVENTS, json=batch(1000), headers=headers).status_code == 201
        assert time.monotonic() - started < 5
    get_settings.cache_clear()
