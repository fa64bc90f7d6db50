"""Which address access events record: X-Forwarded-For only from AUDIT_TRUSTED_PROXIES, under both servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from audit_app.models import AuditLog
from audit_app.proxies import client_address, parse_networks
from audit_app.settings import Settings
from bench.cluster import free_port, wait_until_serving
from tests.api.helpers import LIST, World
from tests.helpers import TokenFactory

ROOT = Path(__file__).resolve().parents[2]
# `make run` serves through Reflex on granian; the stand-alone API on uvicorn.
SERVERS = {
    "granian": ["-m", "granian", "--interface", "asgi", "--factory", "audit_app.api:create_api"],
    "uvicorn": ["-m", "uvicorn", "audit_app.api:app"],
}


@contextmanager
def serving(settings: Settings, server: str, trusted: str | None) -> Iterator[str]:
    """The API served by `server` on a free loopback port, with AUDIT_TRUSTED_PROXIES = `trusted`."""
    env = dict(os.environ, AUDIT_DATABASE_URL=settings.database_url, AUDIT_JWT_SECRET=settings.jwt_secret or "")
    env.pop("AUDIT_TRUSTED_PROXIES", None)
    env.pop("FORWARDED_ALLOW_IPS", None)  # uvicorn's own default (127.0.0.1) applies
    if trusted is not None:
        env["AUDIT_TRUSTED_PROXIES"] = trusted
    port = free_port()
    command = [sys.executable, *SERVERS[server], "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, [process])
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def recorded_addresses(session: Session, event_id: str) -> list[str | None]:
    session.expire_all()
    stmt = select(col(AuditLog.ip_address)).where(
        col(AuditLog.action) == "audit.view", col(AuditLog.resource_id) == event_id
    )
    return list(session.execute(stmt).scalars())


@pytest.mark.parametrize("server", list(SERVERS))
@pytest.mark.parametrize(
    ("trusted", "expected"),
    [(None, "127.0.0.1"), ("10.9.9.9", "127.0.0.1"), ("127.0.0.1", "203.0.113.9"), ("127.0.0.0/8", "203.0.113.9")],
)
def test_forwarded_for_counts_only_from_trusted_proxies(
    settings: Settings,
    session: Session,
    world: World,
    make_token: TokenFactory,
    server: str,
    trusted: str | None,
    expected: str,
) -> None:
    event_id = sorted(world.all)[0]
    headers = {"Authorization": f"Bearer {make_token('super_admin')}", "X-Forwarded-For": "203.0.113.9"}
    with serving(settings, server, trusted) as base:
        response = httpx.get(f"{base}{LIST}{event_id}", headers=headers, timeout=30)
        assert response.status_code == 200, response.text
    assert recorded_addresses(session, event_id) == [expected]


def test_client_address_walks_the_trusted_hops_from_the_right() -> None:
    proxies = parse_networks("10.0.0.0/8, 192.0.2.1")
    assert client_address("192.0.2.1", ["198.51.100.7, 10.1.1.1"], proxies) == "198.51.100.7"
    # A client cannot slip an address in front: the rightmost untrusted hop is the client.
    assert client_address("192.0.2.1", ["6.6.6.6, 198.51.100.7, 10.1.1.1"], proxies) == "198.51.100.7"
    assert client_address("198.51.100.7", ["6.6.6.6"], proxies) == "198.51.100.7"  # untrusted peer
    assert client_address("192.0.2.1", ["not-an-ip"], proxies) == "192.0.2.1"
    assert client_address("192.0.2.1", ["10.1.1.1"], proxies) == "10.1.1.1"  # every hop a proxy
    assert client_address("192.0.2.1", ["6.6.6.6"], []) == "192.0.2.1"
    with pytest.raises(ValueError, match="'nope' is not an IP address"):
        parse_networks("10.0.0.1, nope")
