"""The export progress panel of the events page: rows sent of the total, a bar, and Cancel."""

from __future__ import annotations

import reflex as rx

from audit_app.ui.components.progress import progress_panel
from audit_app.ui.state.export_progress import ExportProgressState


def export_progress() -> rx.Component:
    """Shown from "Export started" on; Cancel while the server streams, then a close button."""
    return rx.cond(
        ExportProgressState.status != "",
        progress_panel(
            "download",
            ExportProgressState.message,
            ExportProgressState.percent,
            "Rows sent",
            rx.cond(
                ExportProgressState.active,
                rx.button(
                    "Cancel",
                    on_click=ExportProgressState.cancel,
                    loading=ExportProgressState.status == "cancelling",
                    color_scheme="red",
                    variant="soft",
                    size="2",
                ),
                rx.icon_button(
                    rx.icon("x", size=14),
                    on_click=ExportProgressState.dismiss,
                    aria_label="Close export progress",
                    variant="ghost",
                    size="2",
                ),
            ),
            id="export-progress",
            class_name="export-progress",
        ),
    )
