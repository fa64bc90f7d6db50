"""Long commands show their progress: plain lines on standard error when it is not a terminal, none with --quiet;
the `audit-app` console script installs and runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from audit_app.__main__ import main
from audit_app.audit.bundle import bundle_export
from audit_app.audit.filters import AuditFilters
from audit_app.audit.signing import ExportKeys
from audit_app.audit.streams import SPEC, create_stream, stream_lag
from audit_app.auth import Principal
from audit_app.cli_progress import BarProgress, LineProgress, progress_line, reporting
from audit_app.db import engine_for
from audit_app.migrations import upgrade
from audit_app.models import LogStream
from audit_app.progress import no_progress
from audit_app.seed import seed
from tests.streams.helpers import ROOT as STREAM_ROOT
from tests.streams.helpers import STREAM_KEY, TARGETS, running
from tests.streams.receivers import wait_until
from tests.syslog_ng import running_syslog_ng

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 10_000
AS_OF = "2026-03-02T12:00:00Z"
# e.g. "writing events: 15,000/20,000 (75%), 4,812/s, elapsed 0:00:03, remaining 0:00:01"
LINE = r"{what}: [\d,]+/{total} \(\d+%\), [\d,]+/s, elapsed \d+:\d\d:\d\d(, remaining \d+:\d\d:\d\d)?$"


def run_cli(*args: str, database_url: str, cwd: Path, interval: str) -> subprocess.CompletedProcess[str]:
    """`python -m audit_app ...` with its output piped (not a terminal), a line at most every `interval` s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")}
    env |= {
        "AUDIT_DATABASE_URL": database_url,
        "AUDIT_JWT_SECRET": "s",
        "AUDIT_PROGRESS_INTERVAL": interval,
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "audit_app", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=240)


def lines(text: str, what: str, total: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(LINE.format(what=re.escape(what), total=total), line)]


def test_long_runs_print_plain_progress_lines_and_quiet_prints_only_the_result(
    database_url: str, tmp_path: Path
) -> None:
    seeded = run_cli(
        "seed", "--events", str(EVENTS), "--as-of", AS_OF, database_url=database_url, cwd=tmp_path, interval="0.2"
    )
    assert seeded.returncode == 0, seeded.stderr
    assert seeded.stdout.startswith(f"Seeded {EVENTS:,} demo events")
    assert lines(seeded.stderr, "writing events", f"{EVENTS:,}"), seeded.stderr  # a run of seconds: lines appear
    assert f"Seeded {EVENTS:,}" not in seeded.stderr  # the result stays on standard output

    verified = run_cli("verify", database_url=database_url, cwd=tmp_path, interval="0")
    assert verified.returncode == 0, verified.stderr
    assert "OK: every chain is intact." in verified.stdout
    progress = lines(verified.stderr, "verifying chains", r"[\d,]+")
    assert progress, verified.stderr
    assert progress[-1].startswith(f"verifying chains: {EVENTS:,}/{EVENTS:,} (100%)")  # the links in the chains
    quiet_verified = run_cli("verify", "--quiet", database_url=database_url, cwd=tmp_path, interval="0")
    assert (quiet_verified.returncode, quiet_verified.stderr) == (0, "")
    assert quiet_verified.stdout.splitlines()[-1] == verified.stdout.splitlines()[-1]

    purged = run_cli("purge", database_url=database_url, cwd=tmp_path, interval="0")
    assert purged.returncode == 0, purged.stderr
    assert lines(purged.stderr, "purging tenants", r"[\d,]+"), purged.stderr

    # a purge after a purge (the first may find expired events: the seed's dates are fixed, the clock moves on)
    seed_more = ["seed", "--events", "10", "--force", "--seed"]  # another seed each time: other event ids
    for loud_args, quiet_args in ((["purge"],) * 2, ([*seed_more, "1"], [*seed_more, "2"])):
        loud = run_cli(*loud_args, database_url=database_url, cwd=tmp_path, interval="0")
        quiet = run_cli(*quiet_args, "--quiet", database_url=database_url, cwd=tmp_path, interval="0")
        assert quiet.returncode == loud.returncode == 0, quiet.stderr
        assert quiet.stderr == ""
        assert loud.stderr != ""
        assert quiet.stdout.splitlines()[-1] == loud.stdout.splitlines()[-1]


def test_verify_answers_the_same_with_and_without_progress(database_url: str, tmp_path: Path) -> None:
    seeded = run_cli("seed", "--events", "500", "--as-of", AS_OF, database_url=database_url, cwd=tmp_path, interval="0")
    assert seeded.returncode == 0, seeded.stderr
    missing = run_cli("verify", "--tenant", "no-such-tenant", database_url=database_url, cwd=tmp_path, interval="0")
    quiet = run_cli(
        "verify", "--tenant", "no-such-tenant", "--quiet", database_url=database_url, cwd=tmp_path, interval="0"
    )
    assert missing.returncode == quiet.returncode
    assert missing.stdout == quiet.stdout
    assert quiet.stderr == ""


def test_progress_line_names_what_done_total_rate_elapsed_and_remaining() -> None:
    assert progress_line("writing events", 15_000, 20_000, 3.0) == (
        "writing events: 15,000/20,000 (75%), 5,000/s, elapsed 0:00:03, remaining 0:00:01"
    )
    assert progress_line("purging", 7, None, 2.0) == "purging: 7, 4/s, elapsed 0:00:02"


def test_reporting_picks_bar_on_a_terminal_lines_otherwise_and_nothing_when_quiet(tmp_path: Path) -> None:
    with (tmp_path / "out").open("w") as piped, reporting(stream=piped) as progress:
        assert isinstance(progress, LineProgress)
    with reporting(quiet=True) as progress:
        assert progress is no_progress

    class Terminal:  # what rich writes to, claiming to be a terminal
        def __init__(self) -> None:
            self.text: list[str] = []

        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            self.text.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    terminal = Terminal()
    with reporting(stream=terminal) as progress:  # type: ignore[arg-type]
        assert isinstance(progress, BarProgress)
        progress("writing events", 5_000, 20_000)
    shown = "".join(terminal.text)
    assert "writing events" in shown
    assert "5,000/20,000" in shown or "5000/20000" in shown


def test_the_console_script_installs_and_runs(tmp_path: Path) -> None:
    """`pip install .` (what the Makefile's set-up does, editable) gives an `audit-app` that runs the commands."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "audit_app", source / "audit_app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", source)
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip first uninstalls the project's own (editable) install from .venv
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed"]
    install += ["--prefix", str(prefix), str(source)]
    subprocess.run(install, check=True, capture_output=True, timeout=240)
    site = next(prefix.glob("lib/python*/site-packages"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")} | {"PYTHONPATH": str(site)}
    script = prefix / "bin" / "audit-app"
    listed = subprocess.run([script, "--help"], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "seed" in listed.stdout
    assert "verify" in listed.stdout
    seed_help = subprocess.run([script, "seed", "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert seed_help.returncode == 0
    assert "example: audit-app seed --events" in seed_help.stdout
    assert "--quiet" in seed_help.stdout
    token = subprocess.run(
        [script, "token", "--role", "super_admin"],
        env=env | {"AUDIT_JWT_SECRET": "s"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert token.returncode == 0, token.stderr
    assert token.stdout.count(".") == 2  # a signed JWT


@pytest.mark.parametrize(
    "command",
    [
        "migrate",
        "check",
        "seed",
        "token",
        "verify",
        "purge",
        "retention",
        "partition",
        "verify-export",
        "stream replay",
    ],
)
def test_every_command_help_shows_one_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    # in-process: argparse's help is the same text (test_the_console_script_installs_and_runs runs the real script)
    with pytest.raises(SystemExit) as exited:
        main([*command.split(), "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.count("example: audit-app ") == 1


def test_verify_export_prints_progress_lines_and_quiet_prints_only_the_result(tmp_path: Path) -> None:
    """verify-export reports the bytes digested and the rows checked, then its verdict (unchanged by --quiet)."""
    url = f"sqlite:///{tmp_path / 'bundle.db'}"
    upgrade(url)
    with Session(engine_for(url)) as session:
        seed(session, 3_000, as_of=datetime(2026, 3, 2, 12, tzinfo=UTC))
        key = Ed25519PrivateKey.generate()
        keys = ExportKeys(signing=key, published=(key.public_key(),))
        operator = Principal(sub="cli:test", email="", role="super_admin")
        chunks = bundle_export(
            session, operator, AuditFilters(), keys=keys, exported_at=datetime(2026, 3, 2, tzinfo=UTC)
        )
        bundle = tmp_path / "evidence.zip"
        bundle.write_bytes(b"".join(chunks))
    engine_for(url).dispose()
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    loud = run_cli("verify-export", str(bundle), "--key", str(pem), database_url=url, cwd=tmp_path, interval="0")
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout.splitlines()[-1] == "VERIFIED: the bundle is intact."
    assert lines(loud.stderr, "hashing events.csv (bytes)", r"[\d,]+"), loud.stderr
    checked = lines(loud.stderr, "checking rows", "3,000")
    assert checked, loud.stderr
    assert checked[-1].startswith("checking rows: 3,000/3,000 (100%)")
    assert "VERIFIED" not in loud.stderr  # the verdict stays on standard output

    quiet = run_cli(
        "verify-export", str(bundle), "--key", str(pem), "--quiet", database_url=url, cwd=tmp_path, interval="0"
    )
    assert quiet.returncode == 0
    assert quiet.stderr == ""
    assert quiet.stdout == loud.stdout

    broken = run_cli(
        "verify-export", str(tmp_path / "missing.zip"), "--key", str(pem), database_url=url, cwd=tmp_path, interval="0"
    )
    assert broken.returncode == 2  # exit codes as before
    assert broken.stderr.startswith("error: ")


def test_stream_replay_counts_with_progress_and_waits_for_the_delivery(tmp_path: Path) -> None:
    """`stream replay` reports counting (plain lines, none with --quiet), the total it set, and with
    --wait follows a running worker's delivery into syslog-ng until every replayed event is there."""
    url = f"sqlite:///{tmp_path / 'streams.db'}"
    upgrade(url)
    with Session(engine_for(url), expire_on_commit=False) as session:
        seed(session, 1_000, as_of=datetime(2026, 3, 2, 12, tzinfo=UTC))
        with running_syslog_ng(tmp_path / "syslog-ng") as receiver:
            spec = SPEC.validate_python({"name": "siem", "type": "syslog", "target": f"127.0.0.1:{receiver.port}"})
            stream = create_stream(session, STREAM_ROOT, spec, STREAM_KEY, TARGETS)
            since = "2000-01-01T00:00:00Z"  # before every event: all of them
            counted = run_cli(
                "stream", "replay", stream.id, "--since", since, database_url=url, cwd=tmp_path, interval="0"
            )
            assert counted.returncode == 0, counted.stderr
            session.expire_all()
            pending = stream_lag(session, session.get_one(LogStream, stream.id)).events
            assert pending >= 1_000
            assert (
                counted.stdout == f"Replaying 'siem' from 2000-01-01T00:00:00+00:00: {pending:,} events to deliver.\n"
            )
            assert re.search(rf"^counting events to replay: {pending:,}, ", counted.stderr, re.M), counted.stderr

            quiet = run_cli(
                "stream", "replay", stream.id, "--since", since, "--quiet", database_url=url, cwd=tmp_path, interval="0"
            )
            assert (quiet.returncode, quiet.stderr) == (0, "")
            assert re.fullmatch(
                r"Replaying 'siem' from 2000-01-01T00:00:00\+00:00: [\d,]+ events to deliver\.\n", quiet.stdout
            )

            with running(url):
                waited = run_cli(
                    "stream",
                    "replay",
                    stream.id,
                    "--since",
                    since,
                    "--wait",
                    database_url=url,
                    cwd=tmp_path,
                    interval="0",
                )
            assert waited.returncode == 0, waited.stderr
            total = waited.stdout.split(": ")[1].split()[0]  # each replay is itself an event of this platform stream
            assert waited.stdout.splitlines()[-1] == f"Delivered the {total} replayed events of 'siem'."
            assert lines(waited.stderr, "delivering replayed events", total)[-1].startswith(
                f"delivering replayed events: {total}/{total} (100%)"
            )
            wait_until(lambda: len({line[0] for line in receiver.lines()}) >= pending)

    missing = run_cli(
        "stream", "replay", "no-such-stream", "--since", since, database_url=url, cwd=tmp_path, interval="0"
    )
    assert missing.returncode == 2
    assert "no log stream" in missing.stderr
