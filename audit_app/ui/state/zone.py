"""The time zone the console shows times in: UTC or the browser's own, remembered per browser."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import reflex as rx
from reflex.event import EventSpec

UTC_NAME = "UTC"
BROWSER_ZONE = "Intl.DateTimeFormat().resolvedOptions().timeZone"


def zone_named(name: str) -> ZoneInfo:
    """The zone called `name`, or UTC for anything unknown (the value comes from the browser)."""
    try:
        return ZoneInfo(name) if name and name != UTC_NAME and len(name) < 64 else ZoneInfo(UTC_NAME)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(UTC_NAME)


class ZoneState(rx.State):
    """UTC or the browser's zone (its IANA name), kept in the browser's local storage."""

    zone: str = rx.LocalStorage(UTC_NAME, name="audit_console_zone", sync=True)

    @rx.var
    def zone_label(self) -> str:
        """The zone as shown next to times."""
        return zone_named(self.zone).key

    @rx.var
    def is_utc(self) -> bool:
        """Times are shown in UTC."""
        return self.zone_label == UTC_NAME

    @rx.event
    def use_utc(self) -> EventSpec:
        """Show times in UTC (the page reloads in it)."""
        self.zone = UTC_NAME
        return rx.call_script("window.location.reload()")

    @rx.event
    def use_local(self) -> EventSpec:
        """Show times in the browser's zone: ask the browser which one it is."""
        return rx.call_script(BROWSER_ZONE, callback=ZoneState.set_browser_zone)

    @rx.event
    def set_browser_zone(self, name: str) -> EventSpec:
        """Keep the browser's zone (unknown names mean UTC) and reload the page in it."""
        self.zone = zone_named(str(name)).key
        return rx.call_script("window.location.reload()")


async def zone_of(state: rx.State) -> ZoneInfo:
    """The zone the browser behind `state` shows times in."""
    return zone_named((await state.get_state(ZoneState)).zone)
