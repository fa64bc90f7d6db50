"""Configuration: defaults, and one clear sentence for each kind of bad configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit_app.settings import ConfigError, load_settings
from tests.helpers import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "audit_app", *args], env=base | env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_defaults_are_sqlite_and_no_demo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("AUDIT_"):
            monkeypatch.delenv(name)
    settings = load_settings()
    assert settings.database_url == "sqlite:///audit.db"
    assert settings.demo is False
    with pytest.raises(ConfigError, match="AUDIT_JWT_SECRET"):
        settings.require_signing_key()


def test_env_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUDIT_JWT_SECRET", raising=False)
    (tmp_path / ".env").write_text("AUDIT_JWT_SECRET=from-dotenv\n")
    assert load_settings().jwt_secret == "from-dotenv"


def test_plain_postgresql_url_uses_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_DATABASE_URL", "postgresql://u@h:5432/db")
    assert load_settings().database_url == "postgresql+psycopg://u@h:5432/db"


@pytest.mark.parametrize("url", ["mysql://root@localhost/db", "not a url", "oracle://x"])
def test_unknown_database_scheme_is_refused(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("AUDIT_DATABASE_URL", url)
    with pytest.raises(ConfigError, match="AUDIT_DATABASE_URL"):
        load_settings()


def test_demo_mode_generates_and_keeps_a_local_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUDIT_JWT_SECRET", raising=False)
    monkeypatch.setenv("AUDIT_DEMO", "1")
    first = load_settings().jwt_secret
    assert first
    assert len(first) >= 32
    assert load_settings().jwt_secret == first
    assert (tmp_path / ".demo-secret").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"AUDIT_DATABASE_URL": "mysql://x/y", "AUDIT_JWT_SECRET": "s"}, "Invalid AUDIT_DATABASE_URL"),
        (
            {"AUDIT_STREAM_ALLOWED_NETWORKS": "10.20.0.0/16,10.0.0.0/33", "AUDIT_JWT_SECRET": "s"},
            "Invalid AUDIT_STREAM_ALLOWED_NETWORKS: '10.0.0.0/33' is not an IP address or network",
        ),
        ({"AUDIT_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/x", "AUDIT_JWT_SECRET": "s"}, "Cannot reach"),
        ({}, "No token key is configured"),
    ],
)
def test_cli_reports_bad_configuration_in_one_sentence(env: dict[str, str], expected: str, tmp_path: Path) -> None:
    proc = run_cli("check", env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"AUDIT_DATABASE_URL": "mysql://x/y", "AUDIT_JWT_SECRET": "s"}, "the driver 'mysql' is not supported"),
        ({"AUDIT_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/x", "AUDIT_JWT_SECRET": "s"}, "Cannot reach"),
        ({"AUDIT_DATABASE_URL": "sqlite:///audit.db"}, "No token key is configured"),
    ],
)
@pytest.mark.parametrize("module", ["audit_app.audit_app", "audit_app.api:app"])
def test_servers_stop_on_bad_configuration_in_one_sentence(
    env: dict[str, str], expected: str, module: str, tmp_path: Path
) -> None:
    """The Reflex app (`reflex run`) and the stand-alone API (`uvicorn audit_app.api:app`)."""
    name, _, attribute = module.partition(":")
    code = f"import rxconfig, {name}" + (f"; {name}.{attribute}" if attribute else "")
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=base | {"PYTHONPATH": str(ROOT)} | env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip().splitlines()[-1]]
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["check"], ["-c", "import audit_app.api; audit_app.api.app"]])
def test_an_unreachable_read_replica_stops_the_server_and_check(command: list[str], tmp_path: Path) -> None:
    env = {
        "AUDIT_DATABASE_URL": PG_ADMIN_URL,
        "AUDIT_READ_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/x",
        "AUDIT_JWT_SECRET": "s",
    }
    if command == ["check"]:
        proc = run_cli("check", env=env, cwd=tmp_path)
    else:
        base = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
        run = {"env": base | {"PYTHONPATH": str(ROOT)} | env, "cwd": tmp_path, "capture_output": True, "text": True}
        proc = subprocess.run([sys.executable, *command], **run, timeout=120)  # type: ignore[call-overload]
    assert proc.returncode == 2, proc.stderr
    assert "Check AUDIT_READ_DATABASE_URL" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_read_replica_needs_postgresql(tmp_path: Path) -> None:
    env = {
        "AUDIT_DATABASE_URL": "sqlite:///audit.db",
        "AUDIT_READ_DATABASE_URL": "sqlite:///r.db",
        "AUDIT_JWT_SECRET": "s",
    }
    proc = run_cli("check", env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "needs PostgreSQL" in proc.stderr


def test_token_command_refuses_without_secret(tmp_path: Path) -> None:
    proc = run_cli("token", "--role", "super_admin", env={"AUDIT_JWT_PUBLIC_KEY": "pem"}, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Only a public key is configured" in proc.stderr


def test_reflex_uses_the_same_database_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import rxconfig; print(rxconfig.config.db_url)"],
        env={k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
        | {"AUDIT_DATABASE_URL": "sqlite:///elsewhere.db", "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip().splitlines()[-1] == "sqlite:///elsewhere.db"
