"""The console with two backend workers sharing state through Redis (REFLEX_REDIS_URL)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import psutil
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import (
    ENV_ASSET,
    Console,
    _pin_backend_port,
    result_count,
    running_console,
    sign_in,
)
from tests.reflex_server import log_tail

pytestmark = pytest.mark.e2e
REDIS = ("127.0.0.1", 6379)
REDIS_DB = 13  # the console's state for this test only


def _redis(*commands: tuple[str, ...]) -> list[str]:
    """Send RESP commands to the local Redis on one connection; the reply lines (no client library needed)."""
    payload = ""
    for command in commands:
        payload += f"*{len(command)}\r\n" + "".join(f"${len(part.encode())}\r\n{part}\r\n" for part in command)
    with socket.create_connection(REDIS, timeout=5) as sock:
        sock.sendall(payload.encode())
        reply = b""
        while reply.count(b"\r\n") < len(commands):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode(errors="replace").splitlines()


def _state_keys() -> int:
    """How many keys the console keeps in its Redis database."""
    return int(_redis(("SELECT", str(REDIS_DB)), ("DBSIZE",))[-1].lstrip(":"))


@pytest.fixture(scope="module")
def redis_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Console, int]]:
    """The console served with REFLEX_REDIS_URL and GRANIAN_WORKERS=2."""
    try:
        assert _redis(("PING",)) == ["+PONG"]
    except OSError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required under CI but unreachable at {REDIS}: {exc}")
        pytest.skip(f"Redis unreachable at {REDIS}: {exc}")
    extra_env = {"REFLEX_REDIS_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{REDIS_DB}", "GRANIAN_WORKERS": "2"}
    with running_console(tmp_path_factory.mktemp("redis_console"), seed_events=500, extra_env=extra_env) as running:
        yield running


def _workers(pid: int) -> list[psutil.Process]:
    """The backend workers: Granian forks them from the server process (`reflex run` or tests.reflex_backend)."""
    return [child for child in psutil.Process(pid).children(recursive=True) if "reflex" in " ".join(child.cmdline())]


def test_console_works_with_two_workers_and_redis(redis_console: tuple[Console, int], browser: Browser) -> None:
    console, pid = redis_console
    assert len(_workers(pid)) == 2, log_tail(console.log)
    keys_before = _state_keys()
    for attempt in range(3):  # fresh browsers: each new websocket may land on either worker
        context = browser.new_context(base_url=console.base_url)
        context.set_default_timeout(20_000)
        context.route(ENV_ASSET, lambda route: _pin_backend_port(route, console.base_url))
        page = context.new_page()
        sign_in(page, "tenant")
        expect(result_count(page)).to_contain_text("events")
        page.reload()  # the state must come back from Redis, whichever worker answers
        expect(result_count(page)).to_be_visible(timeout=20_000)  # hydrating can take a while on a busy machine
        expect(page.get_by_text("tenant acme").first).to_be_visible()
        context.close()
        assert _state_keys() > keys_before, f"no console state in Redis db {REDIS_DB} (attempt {attempt})"
