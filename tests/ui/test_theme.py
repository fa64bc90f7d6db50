"""The console imports every Radix colour scale its pages and its stylesheet use (audit_app.ui.theme)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import reflex as rx
from reflex_components_radix.themes.base import LiteralAccentColor, LiteralGrayColor

from audit_app.ui.pages.events import events_page
from audit_app.ui.pages.sign_in import no_access_page, sign_in_page
from audit_app.ui.pages.statistics import statistics_page
from audit_app.ui.pages.streams import streams_page
from audit_app.ui.theme import COLORS

PAGES: tuple[Callable[[], rx.Component], ...] = (
    events_page,
    statistics_page,
    streams_page,
    sign_in_page,
    no_access_page,
)
CONSOLE_CSS = Path(__file__).resolve().parents[2] / "assets" / "console.css"
RADIX_COLORS = (frozenset(get_args(LiteralAccentColor)) | frozenset(get_args(LiteralGrayColor))) - {"auto"}


def named_colors() -> set[str]:
    """Every Radix colour scale named as a string in the compiled pages (`color_scheme` literals and matches)."""
    pattern = re.compile(r'"(' + "|".join(sorted(RADIX_COLORS)) + r')"')
    return {name for page in PAGES for name in pattern.findall(str(page()))}


def stylesheet_colors() -> set[str]:
    """Every Radix colour scale the console's own stylesheet reads (`var(--red-9)`)."""
    pattern = re.compile(r"var\(--(" + "|".join(sorted(RADIX_COLORS)) + r")-")
    return set(pattern.findall(CONSOLE_CSS.read_text()))


def test_every_colour_the_pages_name_is_imported() -> None:
    named = named_colors()
    assert {"red", "green", "orange", "purple"} <= named  # the result badges, at least
    assert named <= set(COLORS)


def test_every_colour_the_stylesheet_reads_is_imported() -> None:
    read = stylesheet_colors()
    assert {"gray", "red"} <= read
    assert read <= set(COLORS)
