"""Every SQLite connection the app opens is set up the same way (db._sqlite_pragmas)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit_app.db import SQLITE_CACHE_KIB, engine_for, unpooled_engine


@pytest.mark.parametrize("make", [engine_for, unpooled_engine], ids=["pooled", "unpooled"])
def test_connections_use_wal_a_busy_timeout_and_the_larger_page_cache(tmp_path: Path, make: object) -> None:
    engine = make(f"sqlite:///{tmp_path / 'pragmas.db'}")  # type: ignore[operator]
    with engine.connect() as connection:
        pragma = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar_one()
            for name in ("journal_mode", "synchronous", "busy_timeout", "cache_size")
        }
    engine.dispose()
    assert pragma == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 30000, "cache_size": -SQLITE_CACHE_KIB}
