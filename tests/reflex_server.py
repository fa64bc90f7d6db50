"""Start and stop `reflex run` for tests: one place for the build lock and the shutdown."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFLEX_LOCK = Path("/tmp/audit_app_reflex.lock")  # noqa: S108 (the lock every checkout of this project agreed on)


def console_environment(database_url: str, *, jwt_secret: str, export_key: str, stream_key: str) -> dict[str, str]:
    """The environment of a demo console (`reflex run`) on `database_url`, with the given keys.

    The project's tools come first on PATH; no settings of the caller's shell that would change
    the app are passed on (token issuer and keys, CORS origins: the defaults follow the port).
    """
    env = dict(os.environ)
    tools = f"{ROOT / '.tools' / 'node_modules' / '.bin'}:{ROOT / '.venv' / 'bin'}"
    env.update(
        PATH=f"{tools}:{env.get('PATH', '')}",
        REFLEX_USE_SYSTEM_BUN="1",
        REFLEX_TELEMETRY_ENABLED="false",
        REFLEX_CHECK_LATEST_VERSION="false",
        AUDIT_DATABASE_URL=database_url,
        AUDIT_DEMO="1",  # the one-click persona sign-in
        AUDIT_JWT_SECRET=jwt_secret,
        AUDIT_EXPORT_SIGNING_KEY=export_key,
        AUDIT_SECRET_KEY=stream_key,
        PYTHONUNBUFFERED="1",
    )
    for name in ("AUDIT_JWT_PUBLIC_KEY", "AUDIT_JWT_ISSUER", "AUDIT_JWT_AUDIENCE", "AUDIT_CORS_ORIGINS", "PORT"):
        env.pop(name, None)
    return env


def console_serving(base_url: str) -> bool:
    """Whether the console at `base_url` answers both its backend (`/ping`) and its pages."""
    return _answers(f"{base_url}/ping") and _answers(f"{base_url}/")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (a local test server)
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def reflex_server(
    arguments: list[str], env: dict[str, str], log: Path, ready: Callable[[], bool], timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `reflex run <arguments>` in the project until `ready()`; stop it (SIGTERM, then SIGKILL) on exit.

    The start holds REFLEX_LOCK: `.web` and the state folders are shared by everyone starting the
    app from this tree, and `reflex run` rewrites them while it starts.
    """
    with _server(lambda: (["reflex", "run", *arguments], None), env, log, ready, timeout) as server:
        yield server


_run_build: tuple[int, int] | None = None
"""The frontend build this test run made: the inode and modification time of its index.html."""


def _build_stamp() -> tuple[int, int] | None:
    """Which build of the frontend `.web` holds now (each build writes a new index.html); None: none."""
    try:
        index = (ROOT / ".web" / "build" / "client" / "index.html").stat()
    except FileNotFoundError:
        return None
    return index.st_ino, index.st_mtime_ns


@contextmanager
def prod_console(
    port: int, env: dict[str, str], log: Path, ready: Callable[[], bool], timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    """The console in prod mode on `port` alone (pages, websocket and API) until `ready()`; stopped on exit.

    The first start of a test run builds the frontend (`reflex run --env prod`: the pages compiled
    and bundled by bun/vite, some 25 s on a 2-core machine). Later starts serve that same build
    from a backend-only start (tests/reflex_backend.py, a few seconds) while `.web` still holds
    it; when another start from this tree rebuilt it meanwhile, they build again. The build does
    not depend on the console's settings: SSO, demo personas, export pace, Redis and workers
    are all decided by the backend at runtime. Browser tests pin the backend port in the
    build's endpoint table (tests/e2e/conftest.py `_pin_backend_port`), which names the port of
    the start that built it.
    """

    with _server(lambda: console_command(port), env, log, ready, timeout) as server:
        yield server


def console_command(port: int) -> tuple[list[str], Callable[[], None] | None]:
    """The command starting a prod console on `port` now, and what to call once it answers.

    Backend-only while `.web` holds the build this test run made; otherwise a full `reflex run`
    that builds, remembered once it serves.
    """
    options = ["--loglevel", "info"]
    if _run_build is not None and _build_stamp() == _run_build:
        return [sys.executable, "-m", "tests.reflex_backend", "--backend-port", str(port), *options], None
    return ["reflex", "run", "--env", "prod", "--frontend-port", str(port), *options], _built


def _built() -> None:
    """Remember the build just made (called under REFLEX_LOCK, once its server answers)."""
    global _run_build  # one build per test run, shared by every console it starts
    _run_build = _build_stamp()


@contextmanager
def _server(
    command: Callable[[], tuple[list[str], Callable[[], None] | None]],
    env: dict[str, str],
    log: Path,
    ready: Callable[[], bool],
    timeout: float,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command()` (chosen, started and awaited under REFLEX_LOCK) and its `when_ready` hook; stop it on exit."""
    with REFLEX_LOCK.open("w") as lock, log.open("w") as out:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            arguments, when_ready = command()
            out.write(f"$ {' '.join(arguments)}\n")  # which start this was: a build, or the backend serving one
            out.flush()
            server = subprocess.Popen(
                arguments,
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
                    pytest.fail(f"`{' '.join(arguments)}` did not start:\n{log_tail(log)}")
                time.sleep(0.3)
            if when_ready is not None:
                when_ready()
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
