"""Every SQLite connection the app opens is set up the same way (db._sqlite_pragmas)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from audit_app.db import SQLITE_CACHE_KIB, SQLITE_WAL_AUTOCHECKPOINT_PAGES, engine_for, unpooled_engine
from audit_app.wal_checkpoints import CHECKPOINTER, WalCheckpointer, checkpoint


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


def _rows_in_file(path: Path) -> int:
    """The rows of table t in the database file alone, its WAL ignored (`immutable`): what was checkpointed."""
    connection = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 't'").fetchone():
            return 0
        return int(connection.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        connection.close()


def test_the_checkpointer_copies_what_an_open_writer_wrote(tmp_path: Path) -> None:
    """A writer that never checkpoints itself (a plain connection, not one of the app's, which the
    process's own checkpointer would also look after); the checkpointer is asked by hand."""
    path = tmp_path / "written.db"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    checkpointer = WalCheckpointer(interval=3600)
    checkpointer.watch(str(path))
    writer.execute("CREATE TABLE t (x TEXT)")
    writer.execute("INSERT INTO t SELECT hex(randomblob(5000)) FROM (SELECT 1 UNION SELECT 2 UNION SELECT 3)")
    writer.commit()
    assert _rows_in_file(path) == 0  # in the WAL only
    checkpointer.checkpoint_written()
    assert _rows_in_file(path) == 3
    writer.execute("INSERT INTO t VALUES ('more')")
    writer.commit()
    assert _rows_in_file(path) == 3
    checkpointer.checkpoint_written()
    assert _rows_in_file(path) == 4
    assert writer.execute("SELECT count(*) FROM t").fetchone() == (4,)
    writer.close()


def test_the_checkpointer_forgets_files_that_are_gone_and_creates_none(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    engine = engine_for(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x TEXT)")
        connection.commit()
    engine.dispose()
    checkpointer = WalCheckpointer(interval=3600)
    checkpointer.watch(str(path))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    checkpointer.checkpoint_written()
    assert checkpointer.watched() == []
    assert not path.exists()
    assert checkpoint(str(path)) is False


def test_every_sqlite_file_the_app_opens_is_watched(tmp_path: Path) -> None:
    path = tmp_path / "opened.db"
    engine = unpooled_engine(f"sqlite:///{path}")
    with engine.connect():
        pass
    assert str(path) in CHECKPOINTER.watched()


def test_a_forked_worker_checkpoints_with_a_thread_of_its_own(tmp_path: Path) -> None:
    checkpointer = WalCheckpointer(interval=3600)
    checkpointer.watch(str(tmp_path / "parent.db"))
    child = os.fork()
    if child == 0:  # the child: its parent's thread did not come along; watching starts one here
        checkpointer.watch(str(tmp_path / "child.db"))
        thread = checkpointer._thread
        os._exit(0 if thread is not None and thread.is_alive() else 1)
    _pid, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
