"""The filter form the events and statistics pages share: values shown, time range, errors by field."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from audit_app.audit.filters import TIME_FILTERS
from audit_app.ui.state.zone import zone_named
from audit_app.ui.url_filters import PRESETS, ViewQuery, input_time, submitted_view, url_params
from audit_app.ui.url_filters import window_text as resolved_window


class FilterFormState(rx.State, mixin=True):
    """What the form shows; each page says which fields it has and where Apply goes."""

    form: dict[str, str] = {}
    form_version: int = 0  # a loaded view remounts every control with its values
    time_version: int = 0  # a chosen preset remounts (clears) From and To only
    preset: str = ""
    bounds: dict[str, str] = {"start_time": "", "end_time": ""}  # From/To as typed
    field_errors: dict[str, str] = {}
    zone: str = "UTC"  # the zone times are shown and typed in (ZoneState's, read on load)
    window_text: str = ""  # what the chosen preset resolves to, in `zone`

    def _form_fields(self) -> tuple[str, ...]:
        """The URL parameters the form edits."""
        raise NotImplementedError

    def _base_view(self) -> ViewQuery:
        """The loaded view the form edits (values it has no field for come from here)."""
        raise NotImplementedError

    def _go(self, view: ViewQuery) -> EventSpec:
        """Navigate to `view` on this page."""
        raise NotImplementedError

    def _url_params(self) -> dict[str, str]:
        """The page's URL query (a filter repeated in a pasted link reads as `a,b`, as in the API)."""
        return url_params(self.router.url.query)

    def _show_view(self, view: ViewQuery, zone: tzinfo) -> None:
        """Fill the form with a loaded view (times as the inputs show them, in `zone`)."""
        self.zone = str(zone)
        self.form = {name: view.values[name] for name in self._form_fields()}
        for name in TIME_FILTERS:
            self.form[name] = input_time(view.values[name], zone) if view.preset == "custom" else ""
        self.window_text = resolved_window(view.preset, datetime.now(UTC), zone)
        self.bounds = {name: self.form[name] for name in TIME_FILTERS}
        self.preset = view.preset
        self.field_errors = {}
        self.form_version += 1

    @rx.event
    def choose_preset(self, value: str) -> None:
        """Pick a time range: a preset clears From and To, so the form never shows two windows."""
        self.preset = value if value in PRESETS or value == "custom" else ""
        if self.preset != "custom":
            for name in TIME_FILTERS:
                self.form[name] = self.bounds[name] = ""
                self.field_errors.pop(name, None)
            self.time_version += 1
        self.window_text = resolved_window(self.preset, datetime.now(UTC), zone_named(self.zone))

    @rx.event
    def set_bound(self, name: str, value: str) -> None:
        """A typed From or To makes the range custom (the picker says which window applies)."""
        if name not in TIME_FILTERS:
            return
        self.bounds[name] = value[:40]
        self.form[name] = value[:40]
        self.field_errors.pop(name, None)
        if value:
            self.preset = "custom"
            self.window_text = ""
        elif not any(self.bounds.values()) and self.preset == "custom":
            self.preset = ""

    def _submitted(self, form_data: dict[str, Any] | None) -> ViewQuery:
        """The view the submitted form asks for (page 1)."""
        # the server's preset, not the submitted one: a date typed just before Enter has already
        # made it "custom" (set_bound runs first), while the select may not have re-rendered yet
        return submitted_view(
            self._base_view(), form_data or {}, self._form_fields(), self.preset, zone_named(self.zone)
        )

    @rx.event
    def apply(self, form_data: dict[str, Any] | None = None) -> EventSpec:
        """Put the form into the URL (page 1); the page loads from the navigation."""
        return self._go(self._submitted(form_data))
