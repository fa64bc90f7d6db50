"""SQLite's write-ahead log copied into the database file by a thread of its own, off the request path.

With SQLite's automatic checkpoints the commit that crosses the threshold copies the whole WAL
into the file (pages read back, written, synced) before its request can answer: a 1,000-event
batch on a 200,000-event file took 2.6 s instead of about 0.12 s once every seven batches. Here
one daemon thread per process looks, every `INTERVAL_SECONDS`, at each SQLite file this process
opened, and runs a PASSIVE checkpoint when its WAL was written since the last look. A passive
checkpoint takes no lock that writers or readers wait for: a batch keeps committing while the
thread copies what earlier ones wrote. The connections' own automatic checkpoint stays as a
safety net at a larger threshold (`db.SQLITE_WAL_AUTOCHECKPOINT_PAGES`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import quote

INTERVAL_SECONDS = 1.0
"""How often the thread looks for written WALs: about seven 1,000-event batches at full speed, so a
page that several batches change (interior pages, the tenants' newest leaves, FTS5 segments) is
copied once."""


class WalCheckpointer:
    """Checkpoints the WAL of every SQLite file it is told of (`watch`), from one daemon thread."""

    def __init__(self, interval: float = INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._seen: dict[str, int | None] = {}  # path -> the WAL's modification time when last checkpointed
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        """A forked child (a server's worker) has no thread of its parent's: its next `watch` starts its own."""
        self._lock = threading.Lock()
        self._thread = None

    def watch(self, path: str) -> None:
        """Keep `path`'s WAL checkpointed (from now until the file is gone); starts the thread once."""
        with self._lock:
            self._seen.setdefault(path, None)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sqlite-wal-checkpoints", daemon=True)
                self._thread.start()

    def watched(self) -> list[str]:
        """The files being kept checkpointed."""
        with self._lock:
            return list(self._seen)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.checkpoint_written()

    def checkpoint_written(self) -> None:
        """One look: a PASSIVE checkpoint of each watched file whose WAL was written since the last one."""
        with self._lock:
            looks = list(self._seen.items())
        for path, seen in looks:
            try:
                written = os.stat(f"{path}-wal").st_mtime_ns
            except FileNotFoundError:  # no WAL (never written, or the last connection closed it)
                if not os.path.exists(path):
                    with self._lock:
                        self._seen.pop(path, None)
                continue
            if written != seen and checkpoint(path):
                with self._lock:
                    if path in self._seen:
                        self._seen[path] = written


RESTART_FRAMES = 32_768
"""WAL frames (128 MiB of 4 KiB pages) beyond which a checkpoint also restarts the WAL from its start."""
FORCED_RESTART_FRAMES = 4 * RESTART_FRAMES
"""WAL frames (512 MiB) beyond which the restart no longer waits for a pass that copied the WAL whole."""
RESTART_WAIT_MS = 500
"""How long a restarting checkpoint waits for the current writer and readers (then it tries again later)."""


def restarts(busy: int, frames: int, copied: int) -> bool:
    """Whether a passive pass that ended so (PRAGMA wal_checkpoint's three numbers) is followed by a restart.

    A long WAL that the pass copied whole: a frame left uncopied means a reader still reads an
    older snapshot (an export streaming its rows, say), and a restart would hold the write lock
    while it waits for that reader: every writer stood still for the whole wait (5 s, once a
    second, for as long as the export ran). Past FORCED_RESTART_FRAMES it restarts anyway, so
    readers that never all leave at once cannot let the WAL grow without end.
    """
    if busy or frames <= RESTART_FRAMES:
        return False
    return copied == frames or frames > FORCED_RESTART_FRAMES


def checkpoint(path: str) -> bool:
    """A PASSIVE checkpoint of the SQLite file at `path` (never created here); False when it could not run.

    A WAL longer than RESTART_FRAMES that the pass copied whole is then checkpointed again in
    RESTART mode (`restarts`). Passive checkpoints never restart the WAL, and a writer starts it
    over only when it finds it all copied and unread, which continuous writes never leave it: it
    would grow without end. The restart copies what was written since the passive pass, holding
    writers off meanwhile, and waits (at most RESTART_WAIT_MS) until no reader uses the WAL, so the
    next write starts it over.
    """
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=rw"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=0.1, check_same_thread=False)) as connection:
            busy, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if restarts(busy, frames, copied):
                connection.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
                busy, _frames, _copied = connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    except sqlite3.Error:
        return False
    return not busy


CHECKPOINTER = WalCheckpointer()
"""The process's checkpointer: `db` hands it each SQLite file a connection opens."""


def database_file(dbapi_connection: sqlite3.Connection) -> str | None:
    """The file of a connection's main database; None in memory or for a temporary database."""
    for _seq, name, file in dbapi_connection.execute("PRAGMA database_list"):
        if name == "main":
            return str(file) or None
    return None
