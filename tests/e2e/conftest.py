"""The real console for browser tests: a seeded SQLite database, `reflex run --env prod`, headless Chromium."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import Browser, Locator, Page, Playwright, Route, expect, sync_playwright
from sqlmodel import Session

from audit_app.auth import Principal, issue_token
from audit_app.db import engine_for
from audit_app.demo import DEMO_PERSONAS
from audit_app.settings import Settings
from bench.cluster import free_port
from tests.reflex_server import console_environment, console_serving, log_tail, prod_console

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
E2E_SECRET = "e2e-secret-" + "y" * 32
SEED_EVENTS = 3000
# The seeded data is generated as of this instant and moved to end at the current hour: the same
# events relative to "now" on any day, so the presets (last 7 / 30 days) always hold the same rows.
SEED_AS_OF = "2026-03-02T12:00:00Z"
START_TIMEOUT = 180

pytestmark = pytest.mark.e2e
# A loaded 2-core machine renders Plotly's lazily loaded charts in more than expect()'s 5 s default.
expect.set_options(timeout=15_000)


@dataclass
class Console:
    """The running app: where it listens and the database behind it."""

    base_url: str
    database_url: str
    settings: Settings
    log: Path

    def session(self) -> Session:
        """A session on the app's database (for comparing with what the browser shows)."""
        return Session(engine_for(self.database_url), expire_on_commit=False)

    def principal(self, key: str) -> Principal:
        """The Principal of a demo persona."""
        persona = next(p for p in DEMO_PERSONAS if p.key == key)
        return Principal(
            sub=persona.sub,
            email=persona.email,
            role=persona.role,  # type: ignore[arg-type]
            scopes=frozenset({"audit:read", "audit:export", "audit:write"}),
            tenant_id=persona.tenant_id,
            partner_id=persona.partner_id,
        )

    def token(self, ttl: int = 600, **claims: str) -> str:
        """A token signed with the app's secret."""
        role = claims.pop("role", "super_admin")
        return issue_token(self.settings, role=role, ttl=ttl, **claims)  # type: ignore[arg-type]


E2E_EXPORT_KEY = (
    Ed25519PrivateKey.generate()
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode()
)
"""The console's export-signing key (given, so demo mode writes no key file into the project)."""
E2E_STREAM_KEY = "e2e-stream-key-" + "s" * 32
"""The key of log stream credentials (given, for the same reason; tests create streams with it too)."""


@contextmanager
def running_console(
    workdir: Path, *, seed_events: int, extra_env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[tuple[Console, int]]:
    """Migrate and seed a database, start the app on `port` (default: a free one); stop it on exit.

    The first console of a test run builds the frontend; the others serve that build
    (tests/reflex_server.py `prod_console`). Yields the console and the pid of its server process.
    """
    database_url = f"sqlite:///{workdir / 'audit.db'}"
    port = port or free_port()
    env = console_environment(
        database_url, jwt_secret=E2E_SECRET, export_key=E2E_EXPORT_KEY, stream_key=E2E_STREAM_KEY
    ) | (extra_env or {})
    for command in (["migrate"], ["seed", "--events", str(seed_events), "--as-of", SEED_AS_OF]):
        subprocess.run(
            [sys.executable, "-m", "audit_app", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )
    log = workdir / "server.log"
    base_url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        return console_serving(base_url)

    settings = Settings(database_url=database_url, jwt_secret=E2E_SECRET, demo=True, secret_key=E2E_STREAM_KEY)
    try:
        with prod_console(port, env, log, ready, START_TIMEOUT) as server:
            yield Console(base_url=base_url, database_url=database_url, settings=settings, log=log), server.pid
    finally:
        engine_for(database_url).dispose()


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Console]:
    """The app, seeded with SEED_EVENTS events, for the session's browser tests."""
    with running_console(tmp_path_factory.mktemp("console"), seed_events=SEED_EVENTS) as (console, _pid):
        yield console
        if request.session.testsfailed:
            print(f"\n--- console server log ({console.log}) ---\n{log_tail(console.log, 200)}")


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    """The Playwright driver."""
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium."""
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    """A fresh browser profile (empty local storage) per test."""
    context = browser.new_context(
        base_url=console.base_url, viewport={"width": 1440, "height": 1000}, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    context.route(ENV_ASSET, lambda route: _pin_backend_port(route, console.base_url))
    page = context.new_page()
    yield page
    context.close()


# The compiled frontend carries the backend port of the last build of the shared .web folder;
# another helper's build while this server runs would point the browser at their server.
ENV_ASSET = re.compile(r"/assets/reflex-env-[^/]*\.js$")


def _pin_backend_port(route: Route, base_url: str) -> None:
    """Serve the frontend's endpoint table with this server's port, whoever built last."""
    response = route.fetch()
    port = urlsplit(base_url).port
    body = re.sub(r"//(localhost|127\.0\.0\.1|0\.0\.0\.0):\d+", rf"//\1:{port}", response.text())
    route.fulfill(response=response, body=body)


PERSONA_BUTTONS = {persona.key: f"Sign in as {persona.label}" for persona in DEMO_PERSONAS}


def sign_in(page: Page, key: str) -> None:
    """Sign in with a demo persona's one-click button and wait for the events page."""
    page.goto("/")
    page.get_by_role("button", name=PERSONA_BUTTONS[key]).click()
    page.wait_for_url(re.compile(r"/events"))
    expect(result_count(page)).to_be_visible()


def result_count(page: Page) -> Locator:
    """The status line with the number of matching events."""
    return page.get_by_role("status").filter(has_text=re.compile(r"[\d,]+ events?\b"))
