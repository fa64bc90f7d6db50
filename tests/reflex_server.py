"""Start and stop `reflex run` for tests: one place for the build lock and the shutdown."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFLEX_LOCK = Path("/tmp/audit_app_reflex.lock")  # noqa: S108 (the lock every checkout of this project agreed on)


@contextmanager
def reflex_server(
    arguments: list[str], env: dict[str, str], log: Path, ready: Callable[[], bool], timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `reflex run <arguments>` in the project until `ready()`; stop it (SIGTERM, then SIGKILL) on exit.

    The start holds REFLEX_LOCK: `.web` and the state folders are shared by everyone starting the
    app from this tree, and `reflex run` rewrites them while it starts.
    """
    with REFLEX_LOCK.open("w") as lock, log.open("w") as out:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            server = subprocess.Popen(
                ["reflex", "run", *arguments],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            deadline = time.monotonic() + timeout
            while not ready():
                if server.poll() is not None or time.monotonic() > deadline:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
                    pytest.fail(f"`reflex run` did not start:\n{log_tail(log)}")
                time.sleep(0.3)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    try:
        yield server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def log_tail(log: Path, lines: int = 80) -> str:
    """The last lines of a server log."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])
