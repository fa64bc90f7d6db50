"""A panel showing long work's progress: an icon, what is done so far, and a bar (a live status region)."""

from __future__ import annotations

from typing import Any

import reflex as rx


def progress_panel(
    icon: str, text: Any, percent: Any, bar_label: str, *actions: rx.Component, id: str, class_name: str
) -> rx.Component:
    """The panel `id` (its text is `{id}-text`), with `actions` (buttons) at its end."""
    return rx.hstack(
        rx.icon(icon, size=16),
        rx.vstack(
            rx.text(text, size="2", id=f"{id}-text"),
            rx.progress(value=percent, max=100, width="100%", aria_label=bar_label),
            spacing="1",
            width="100%",
        ),
        *actions,
        id=id,
        role="status",
        aria_live="polite",
        align="center",
        spacing="3",
        width="100%",
        class_name=class_name,
    )
