"""The browser tests' consoles: the first start of a test run builds the frontend, later ones reuse that build."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import reflex_server
from tests.reflex_server import console_command


@pytest.fixture
def web(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root of its own (no build yet) and no build made by this test run."""
    monkeypatch.setattr(reflex_server, "ROOT", tmp_path)
    monkeypatch.setattr(reflex_server, "_run_build", None)
    return tmp_path / ".web" / "build" / "client"


def _build(web: Path, text: str) -> None:
    """What a frontend build leaves behind: a new index.html file (written beside the old one, then
    put in its place, so it cannot reuse the old one's inode within a timestamp tick)."""
    web.mkdir(parents=True, exist_ok=True)
    (web / "index.html.new").write_text(text)
    (web / "index.html.new").replace(web / "index.html")


def test_the_first_console_builds_and_later_ones_serve_that_build(web: Path) -> None:
    _build(web, "a build of an earlier run")  # never reused: it may come from other source
    command, built = console_command(4100)
    assert command[:5] == ["reflex", "run", "--env", "prod", "--frontend-port"]
    assert command[5] == "4100"
    _build(web, "this run's build")
    assert built is not None
    built()  # the console answered: its build is this run's

    command, built = console_command(4200)
    assert command[1:5] == ["-m", "tests.reflex_backend", "--backend-port", "4200"]
    assert built is None


def test_a_build_replaced_meanwhile_is_built_again(web: Path) -> None:
    _build(web, "this run's build")
    _command, built = console_command(4100)
    assert built is not None
    built()
    _build(web, "another start's build")  # e.g. someone's `reflex run` from the same tree
    command, built = console_command(4200)
    assert command[:2] == ["reflex", "run"]
    assert built is not None
