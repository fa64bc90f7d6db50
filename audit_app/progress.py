"""How long-running domain work reports its progress, free of any terminal code.

A domain function takes `progress: Progress = no_progress` and calls it as it goes with what it
is doing, how much is done and the total when it is known (None when not). The command line
renders these calls (audit_app/cli_progress.py); everything else passes nothing and pays nothing.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Called with (what, done, total) whenever a piece of long work moves on."""

    def __call__(self, what: str, done: int, total: int | None, /) -> None: ...


def no_progress(what: str, done: int, total: int | None, /) -> None:
    """The default: report nothing."""
