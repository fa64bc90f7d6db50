"""Every SQLite connection the app opens is set up the same way (db._sqlite_pragmas)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from audit_app import wal_checkpoints
from audit_app.db import SQLITE_CACHE_KIB, SQLITE_WAL_AUTOCHECKPOINT_PAGES, engine_for, unpooled_engine
from audit_app.wal_checkpoints import CHECKPOINTER, WalCheckpointer, checkpoint, restarts


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


@pytest.mark.parametrize(
    ("busy", "frames", "copied", "restart"),
    [
        (0, 40_000, 40_000, True),  # a long WAL, all copied: start it over
        (0, 40_000, 39_000, False),  # a reader still reads an older snapshot: never wait for it holding writers off
        (1, 40_000, 40_000, False),  # the pass could not run
        (0, 1_000, 1_000, False),  # short enough to keep
        (0, 140_000, 100_000, True),  # past 512 MiB: restart anyway (waiting at most RESTART_WAIT_MS)
    ],
)
def test_the_wal_is_restarted_only_when_the_passive_pass_copied_it_whole(
    busy: int, frames: int, copied: int, restart: bool
) -> None:
    assert restarts(busy, frames, copied) is restart


def test_a_reader_of_an_older_snapshot_never_makes_the_checkpointer_hold_writers_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long WAL while an export (here: an open read transaction) reads an older snapshot: the
    checkpointer copies what it can and leaves the WAL be, so a writer that will not wait at all
    still writes while the checkpoint runs. (A restart waited for that reader holding the write
    lock: writers stood still 5 s, once a second, for as long as the export ran.)"""
    monkeypatch.setattr(wal_checkpoints, "RESTART_FRAMES", 10)
    path = tmp_path / "reader.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (x)")
    for n in range(50):
        writer.execute("INSERT INTO t VALUES (?)", (n,))
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (50,)  # its snapshot: 50 rows
    writer.execute("INSERT INTO t VALUES (50)")  # a frame past the reader's snapshot
    writer.execute("PRAGMA busy_timeout=0")
    done = threading.Event()

    def run_checkpoint() -> None:
        checkpoint(str(path))
        done.set()

    checkpointing = threading.Thread(target=run_checkpoint)
    checkpointing.start()
    written = 0
    while not done.is_set() or written == 0:
        writer.execute("INSERT INTO t VALUES (-1)")  # "database is locked" if the write lock were held
        written += 1
    checkpointing.join()
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (50,)
    reader.execute("COMMIT")
    assert writer.execute("SELECT count(*) FROM t").fetchone() == (51 + written,)
