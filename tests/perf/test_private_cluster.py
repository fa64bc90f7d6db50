"""`make bench --private-cluster`: the settings it writes, and that a cluster starts with them and stops."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from bench.cluster import PrivateCluster, free_port, pg_bin, server_settings

GIB = 2**30


def test_settings_are_sized_for_the_machine_and_keep_durability() -> None:
    here = server_settings(int(23.5 * GIB), 5440, Path("/x"))
    assert here["shared_buffers"] == "5GB"
    assert here["effective_cache_size"] == "11GB"
    assert here["maintenance_work_mem"] == "1GB"
    assert here["listen_addresses"] == "'127.0.0.1'"
    assert here["port"] == "5440"
    assert (here["fsync"], here["synchronous_commit"], here["full_page_writes"]) == ("on", "on", "on")
    assert here["wal_compression"] == "lz4"
    assert server_settings(128 * GIB, 5440, Path("/x"))["shared_buffers"] == "8GB"  # capped
    small = server_settings(2 * GIB, 5440, Path("/x"))
    assert (small["shared_buffers"], small["maintenance_work_mem"]) == ("1GB", "256MB")


def test_a_private_cluster_starts_with_the_settings_and_stops() -> None:
    try:
        pg_bin("initdb")
    except SystemExit:
        pytest.skip("PostgreSQL server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="audit-bench-cluster-test-"))
    cluster = PrivateCluster(root, free_port())
    try:
        cluster.start()
        with psycopg.connect(cluster.admin_url, connect_timeout=10) as conn:
            shown = {name: conn.execute(f"SHOW {name}").fetchone() for name in ("random_page_cost", "max_wal_size")}
            assert shown == {"random_page_cost": ("1.1",), "max_wal_size": ("8GB",)}
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
            assert conn.execute("SHOW wal_compression").fetchone() == ("lz4",)
        cluster.stop()
        assert not (cluster.data / "postmaster.pid").exists()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(cluster.admin_url, connect_timeout=2)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
