"""`--private-cluster`: the benchmark's own PostgreSQL server with production-like settings.

The shared development server runs with PostgreSQL's defaults (128 MB `shared_buffers`) and
hosts other databases, so at 10M events it measures the disk rather than the code. This
starts a cluster of its own (initdb into a directory outside the git tree, loopback only,
trust auth, its own port), sized for this machine as docs/scaling.md advises, and stops it
afterwards. Durability stays on: `fsync` and `synchronous_commit` keep their defaults.
The data directory is kept so that `--reuse` finds the databases of an earlier run; delete it
to free the disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

import httpx
import psutil

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "bench-data" / "postgres"
DEFAULT_PORT = 5440
TIMEOUT = 180  # seconds for initdb, start and stop each


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(base: str, processes: Sequence[subprocess.Popen[bytes]], *, timeout: float = 60) -> None:
    """Wait until the API at `base` answers /api/v1/health; RuntimeError when a process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if any(process.poll() is not None for process in processes):
            raise RuntimeError(f"the API server for {base} exited")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API server for {base} did not start within {timeout:.0f} s")
        time.sleep(0.2)


def pg_bin(name: str) -> str:
    """The path of a PostgreSQL server binary (Debian keeps them outside PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise SystemExit(f"error: {name} not found; install the PostgreSQL server package.")


def server_settings(memory_bytes: int, port: int, socket_dir: Path) -> dict[str, str]:
    """postgresql.conf settings for a dedicated server with `memory_bytes` of RAM."""
    gib = max(1, memory_bytes // 2**30)
    return {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{socket_dir}'",
        "shared_buffers": f"{max(1, min(gib // 4, 8))}GB",  # a quarter of RAM, at most 8 GB
        "effective_cache_size": f"{max(1, gib // 2)}GB",
        "maintenance_work_mem": "1GB" if gib >= 8 else "256MB",
        "work_mem": "32MB",
        "wal_buffers": "64MB",
        "max_wal_size": "8GB",
        "min_wal_size": "1GB",
        "checkpoint_timeout": "15min",
        "checkpoint_completion_target": "0.9",
        "wal_compression": "lz4",  # full-page images compressed at a fraction of pglz's CPU (PostgreSQL 15+)
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
        "fsync": "on",  # an audit log is durable: never off
        "synchronous_commit": "on",
        "full_page_writes": "on",
    }


class PrivateCluster:
    """A PostgreSQL cluster in `root`/data on 127.0.0.1:`port`, created on first start.

    `tuned=False` keeps PostgreSQL's default sizes (a small cluster for tests). With
    `standby_of`, the cluster is created as a streaming replica of that running cluster
    (`pg_basebackup -R`): read-only, replaying everything the primary writes.
    """

    def __init__(
        self,
        root: Path = DEFAULT_DIR,
        port: int = DEFAULT_PORT,
        *,
        tuned: bool = True,
        standby_of: PrivateCluster | None = None,
    ) -> None:
        self.root = root
        self.port = port
        self.tuned = tuned
        self.standby_of = standby_of
        self.data = root / "data"
        self.as_owner: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            self.as_owner = ["runuser", "-u", "postgres", "--"]

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of `database` on this cluster."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_owner, *args], check=True, capture_output=True, timeout=TIMEOUT + 30)

    def _pg_ctl(self, *args: str) -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-t", str(TIMEOUT), "-w", *args)

    def start(self) -> None:
        """initdb (first time only), write the settings, start; a server left running is stopped first."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_owner:
            shutil.chown(self.root, "postgres", "postgres")
        if (self.data / "PG_VERSION").exists():
            if (self.data / "postmaster.pid").exists():
                self.stop()
        elif self.standby_of is not None:
            source = ["-h", "127.0.0.1", "-p", str(self.standby_of.port), "-U", "postgres"]
            # --checkpoint=fast: the backup starts after an immediate checkpoint, not the default spread
            # one paced over checkpoint_timeout (tests/api/test_read_replica.py: 23.6 s -> 7.7 s)
            backup = ["-R", "-X", "stream", "--checkpoint=fast"]
            self._run(pg_bin("pg_basebackup"), "-D", str(self.data), *source, *backup)
        else:
            self._run(pg_bin("initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8")
        settings = server_settings(psutil.virtual_memory().total, self.port, self.root)
        if not self.tuned:
            settings = {key: settings[key] for key in ("listen_addresses", "port", "unix_socket_directories")}
        conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        (self.data / "bench.conf").write_text(conf)
        main_conf = self.data / "postgresql.conf"
        if "include_if_exists = 'bench.conf'" not in main_conf.read_text():
            with main_conf.open("a") as f:
                f.write("\ninclude_if_exists = 'bench.conf'\n")
        self._pg_ctl("-l", str(self.root / "server.log"), "start")

    def restart(self) -> None:
        """A fast restart: every connection is cut, in-flight transactions roll back."""
        self._pg_ctl("-l", str(self.root / "server.log"), "-m", "fast", "restart")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._pg_ctl("-m", "fast", "stop")


@contextlib.contextmanager
def private_cluster(root: Path = DEFAULT_DIR, port: int = DEFAULT_PORT) -> Iterator[PrivateCluster]:
    """A started cluster, stopped on exit, on errors and on SIGTERM."""
    cluster = PrivateCluster(root, port)

    def terminate(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(143)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        signal.signal(signal.SIGTERM, previous)
