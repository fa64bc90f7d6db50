"""Every SQLite connection the app opens is set up the same way (db._sqlite_pragmas)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit_app.db import SQLITE_CACHE_KIB, SQLITE_WAL_AUTOCHECKPOINT_PAGES, engine_for, unpooled_engine


@pytest.mark.parametrize("make", [engine_for, unpooled_engine], ids=["pooled", "unpooled"])
def test_connections_use_wal_full_sync_a_busy_timeout_a_larger_cache_and_later_checkpoints(
    tmp_path: Path, make: object
) -> None:
    engine = make(f"sqlite:///{tmp_path / 'pragmas.db'}")  # type: ignore[operator]
    with engine.connect() as connection:
        pragma = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar_one()
            for name in ("journal_mode", "synchronous", "busy_timeout", "cache_size", "wal_autocheckpoint")
        }
    engine.dispose()
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL: each commit syncs the WAL
        "busy_timeout": 30000,
        "cache_size": -SQLITE_CACHE_KIB,
        "wal_autocheckpoint": SQLITE_WAL_AUTOCHECKPOINT_PAGES,
    }
