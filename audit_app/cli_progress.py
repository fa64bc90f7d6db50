"""The command line's rendering of domain progress (audit_app/progress.py), on standard error.

On a terminal: a rich progress bar per step (what, done/total, rate, elapsed, remaining).
Otherwise (CI, cron, a pipe): one plain line every AUDIT_PROGRESS_INTERVAL seconds (default 5).
With --quiet: nothing. Results and errors are printed by the commands as before.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

from audit_app.progress import Progress, no_progress

INTERVAL_ENV = "AUDIT_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 5.0


class RateColumn(ProgressColumn):
    """Items per second since the step started."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")


class BarProgress:
    """A rich progress bar per step, on a terminal."""

    def __init__(self, bar: RichProgress) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, what: str, done: int, total: int | None, /) -> None:
        if what not in self.tasks:
            self.tasks[what] = self.bar.add_task(what, total=total)
        self.bar.update(self.tasks[what], completed=done, total=total)


class LineProgress:
    """A plain line at most every `interval` seconds, for output that is not a terminal."""

    def __init__(self, stream: TextIO, interval: float) -> None:
        self.stream = stream
        self.interval = interval
        self.started: dict[str, float] = {}  # at its report of 0 done, else at the report before its first
        self.last_call = self.last_line = time.monotonic()

    def __call__(self, what: str, done: int, total: int | None, /) -> None:
        now = time.monotonic()
        started = self.started.setdefault(what, now if done == 0 else self.last_call)
        self.last_call = now
        if done == 0 or now - self.last_line < self.interval:
            return
        self.last_line = now
        print(progress_line(what, done, total, now - started), file=self.stream, flush=True)


def progress_line(what: str, done: int, total: int | None, elapsed: float) -> str:
    """E.g. `writing events: 15,000/50,000 (30%), 4,812/s, elapsed 0:00:03, remaining 0:00:07`."""
    rate = done / elapsed if elapsed > 0 else 0.0
    parts = [f"{what}: {done:,}" + (f"/{total:,} ({done * 100 // total}%)" if total else "")]
    parts.append(f"{rate:,.0f}/s")
    parts.append(f"elapsed {timedelta(seconds=round(elapsed))}")
    if total and rate > 0:
        parts.append(f"remaining {timedelta(seconds=round((total - done) / rate))}")
    return ", ".join(parts)


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


@contextmanager
def reporting(*, quiet: bool = False, stream: TextIO | None = None) -> Iterator[Progress]:
    """The progress callback for one command: a bar on a terminal, plain lines otherwise, nothing when quiet."""
    out = stream or sys.stderr
    if quiet:
        yield no_progress
        return
    if not out.isatty():
        yield LineProgress(out, _interval())
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with RichProgress(*columns, console=Console(file=out), transient=False) as bar:
        yield BarProgress(bar)
