"""The console's Radix Themes: its accent colour, and only the parts of Radix's stylesheet its pages use.

Reflex's `RadixThemesPlugin` imports `@radix-ui/themes/styles.css` whole: 794 KB, with the
custom properties of all 31 colour scales on `:root` (and their dark and P3 variants), which
every element inherits. The package ships the same stylesheet split (its `styles.css` is
these files, in this order): a token file per colour, the base tokens (which map
`data-accent-color` and `data-gray-color` onto the scales), the components and the utilities.
The console imports the colour scales its pages name and the rest unchanged, so what it
draws is the same; `tests/ui/test_theme.py` checks that every colour the pages name is one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from reflex_base.components.component import Component
from reflex_components_radix import themes
from reflex_components_radix.plugin import RadixThemesPlugin

ACCENT = "blue"
GRAY = "slate"
"""The gray scale Radix pairs with the accent (what `gray_color="auto"` picks for blue)."""
COLORS = ("gray", GRAY, "amber", ACCENT, "green", "indigo", "orange", "purple", "red")
"""The colour scales the stylesheet defines: `gray` (outside the theme, e.g. the page's background),
the theme's gray and accent, and every `color_scheme` the pages name (badges, callouts, buttons)."""
STYLESHEETS = (
    *(f"@radix-ui/themes/tokens/colors/{color}.css" for color in COLORS),
    "@radix-ui/themes/tokens/base.css",
    "@radix-ui/themes/components.css",
    "@radix-ui/themes/utilities.css",
)


def _console_theme() -> Component:
    return themes.theme(accent_color=ACCENT, gray_color=GRAY)


@dataclasses.dataclass
class ConsoleThemes(RadixThemesPlugin):
    """Radix Themes with the console's theme and `STYLESHEETS` instead of the whole stylesheet."""

    theme: Component | None = dataclasses.field(default_factory=_console_theme)

    def get_stylesheet_paths(self, **context: Any) -> tuple[str, ...]:
        """The parts of Radix's stylesheet the console uses (none while Radix Themes is off)."""
        return STYLESHEETS if self.enabled else ()
