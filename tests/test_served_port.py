"""The console's allowed origins follow the port it is served on (`PORT=3700 make run` works)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit_app.settings import Settings, load_settings
from bench.cluster import free_port
from tests.reflex_server import reflex_server

ROOT = Path(__file__).resolve().parent.parent
PORT_VARIABLES = ("AUDIT_CORS_ORIGINS", "REFLEX_FRONTEND_PORT", "REFLEX_BACKEND_PORT", "PORT")


@pytest.fixture
def no_port_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No origins, port or .env file of the developer's environment."""
    monkeypatch.chdir(tmp_path)
    for name in PORT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_port_settings")
def test_default_origins_follow_the_served_port(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.cors_origin_list == ["http://localhost:3000", "http://127.0.0.1:3000"]
    monkeypatch.setenv("PORT", "3700")
    assert settings.cors_origin_list == ["http://localhost:3700", "http://127.0.0.1:3700"]
    monkeypatch.setenv("REFLEX_FRONTEND_PORT", "3811")  # what `reflex run --frontend-port` publishes wins
    assert settings.cors_origin_list == ["http://localhost:3811", "http://127.0.0.1:3811"]
    monkeypatch.setenv("REFLEX_FRONTEND_PORT", "not-a-port")
    assert settings.cors_origin_list == ["http://localhost:3700", "http://127.0.0.1:3700"]


@pytest.mark.usefixtures("no_port_settings")
def test_configured_origins_win_over_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "3700")
    monkeypatch.setenv("AUDIT_CORS_ORIGINS", " https://audit.example.com , http://localhost:8080,")
    assert load_settings().cors_origin_list == ["https://audit.example.com", "http://localhost:8080"]
    assert Settings(cors_origins="").cors_origin_list == []


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[int]:
    """`reflex run --env prod --backend-only` on a free port, with AUDIT_CORS_ORIGINS unset."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_") and k not in PORT_VARIABLES}
    env.update(
        PATH=f"{ROOT / '.tools' / 'node_modules' / '.bin'}:{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}",
        REFLEX_USE_SYSTEM_BUN="1",
        REFLEX_TELEMETRY_ENABLED="false",
        REFLEX_CHECK_LATEST_VERSION="false",
        AUDIT_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.db'}",
        AUDIT_JWT_SECRET="served-port-" + "z" * 32,
    )
    subprocess.run([sys.executable, "-m", "audit_app", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    arguments = ["--env", "prod", "--backend-only", "--backend-port", str(port)]
    with reflex_server(arguments, env, tmp_path / "server.log", lambda: _status(port, "/ping") == 200, 120):
        yield port


def _status(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    """The status of one request to the local server (0 when nothing answers)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def _websocket_handshake(port: int, origin: str) -> int:
    """The status answering the console's websocket upgrade from a page at `origin`."""
    return _status(
        port,
        "/_event/?EIO=4&transport=websocket",
        {
            "Origin": origin,
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )


def test_the_websocket_accepts_the_origin_of_the_served_port(backend: int) -> None:
    assert _websocket_handshake(backend, f"http://localhost:{backend}") == 101
    assert _websocket_handshake(backend, f"http://127.0.0.1:{backend}") == 101
    assert _websocket_handshake(backend, "http://localhost:3000") == 403  # the old fixed default
    assert _websocket_handshake(backend, "https://evil.example") == 403
