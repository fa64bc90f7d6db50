"""The console with two backend workers sharing state through Redis (REFLEX_REDIS_URL)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psutil
import pytest
import redis
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


def _redis() -> redis.Redis:
    """A client of the console's Redis database (redis-py: the client Reflex itself uses for it)."""
    return redis.Redis(host=REDIS[0], port=REDIS[1], db=REDIS_DB, socket_timeout=5, decode_responses=True)


def _state_keys(token: str) -> list[str]:
    """The keys the console keeps in its Redis database for one browser tab's client token."""
    with _redis() as client:
        return sorted(client.scan_iter(match=f"{token}_*"))


def _wait_for_state_keys(token: str, seconds: float) -> list[str]:
    """The tab's state keys once they appear: with the opportunistic lock, Reflex writes a token's
    state to Redis when it lets the lock go (by default half REFLEX_REDIS_LOCK_EXPIRATION later)."""
    deadline = time.monotonic() + seconds
    while not (keys := _state_keys(token)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return keys


@pytest.fixture(scope="module")
def redis_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Console, int]]:
    """The console served with REFLEX_REDIS_URL and GRANIAN_WORKERS=2."""
    try:
        with _redis() as client:
            client.ping()
    except redis.RedisError as exc:
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
        token = page.evaluate("window.sessionStorage.getItem('token')")
        context.close()
        # Counting all keys misled: a Redis that served earlier runs holds their keys, and those expire
        # (token_expiration) while new ones arrive. This tab's own keys are the evidence.
        assert token, "the page keeps no client token"
        keys = _wait_for_state_keys(token, seconds=30)
        assert keys, f"no console state in Redis db {REDIS_DB} for client token {token} (attempt {attempt})"
