"""The events filters as they travel in the URL query, under the API's parameter names.

A view is bookmarkable: `?action=role.assign&result=failure&range=7d&page=2`. Times are UTC.
`range` is a relative window (last hour, 24 h, 7 days, 30 days) resolved when the page loads,
so a bookmarked "last 24 h" stays the last 24 hours; explicit windows use `start_time`/`end_time`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from audit_app.audit.filters import TEXT_FILTERS, TIME_FILTERS, AuditFilters

FORM_FIELDS: tuple[str, ...] = (*TEXT_FILTERS, *TIME_FILTERS)
PRESETS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
PRESET_LABELS: dict[str, str] = {
    "": "Any time",
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "custom": "Custom range",
}
PAGE_SIZES: tuple[int, ...] = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
MAX_TEXT = 320


class FilterError(ValueError):
    """A filter value that cannot be used (the message says which and why)."""


def parse_time(value: str, label: str) -> datetime | None:
    """An ISO date or date-time as aware UTC; naive values (datetime-local inputs) are UTC."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise FilterError(f"{label} is not a date and time (expected e.g. 2026-05-01T09:30).") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def input_time(value: str) -> str:
    """An ISO time as the `YYYY-MM-DDTHH:MM` text a datetime-local input shows (UTC)."""
    parsed = parse_time(value, "time")
    return parsed.strftime("%Y-%m-%dT%H:%M") if parsed else ""


def preset_window(preset: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    """The (start, end) of a relative time preset ending at `now`; (None, None) for none."""
    if preset not in PRESETS:
        return None, None
    return now - PRESETS[preset], None


@dataclass
class ViewQuery:
    """What the URL says: the filters as typed, the time preset, and the page."""

    values: dict[str, str] = field(default_factory=lambda: dict.fromkeys(FORM_FIELDS, ""))
    preset: str = ""
    page: int = 1
    per_page: int = DEFAULT_PAGE_SIZE

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ViewQuery:
        """Read a URL query; unknown keys are ignored and bad page numbers fall back."""
        values = {name: str(params.get(name, "") or "").strip()[:MAX_TEXT] for name in FORM_FIELDS}
        preset = str(params.get("range", "") or "")
        if preset not in PRESETS:
            preset = "custom" if values["start_time"] or values["end_time"] else ""
        else:
            values["start_time"] = values["end_time"] = ""
        return cls(
            values=values,
            preset=preset,
            page=_positive(params.get("page"), 1, 1_000_000),
            per_page=_page_size(params.get("per_page")),
        )

    def to_params(self) -> dict[str, str]:
        """The URL query of this view: only what is set, page 1 and default size left out."""
        params = {name: self.values[name] for name in TEXT_FILTERS if self.values.get(name)}
        if self.preset in PRESETS:
            params["range"] = self.preset
        else:
            params.update({name: self.values[name] for name in TIME_FILTERS if self.values.get(name)})
        if self.page > 1:
            params["page"] = str(self.page)
        if self.per_page != DEFAULT_PAGE_SIZE:
            params["per_page"] = str(self.per_page)
        return params

    def query_string(self) -> str:
        """`to_params` as an encoded query string (no leading `?`)."""
        return urlencode(self.to_params())

    def filters(self, now: datetime) -> AuditFilters:
        """The domain filters of this view, with the preset resolved against `now`."""
        text = {name: self.values[name] or None for name in TEXT_FILTERS}
        if self.preset in PRESETS:
            start, end = preset_window(self.preset, now)
        else:
            start = parse_time(self.values["start_time"], "From")
            end = parse_time(self.values["end_time"], "To")
        if start and end and end <= start:
            raise FilterError("To must be later than From.")
        return AuditFilters(start_time=start, end_time=end, **text)


def filters_params(filters: AuditFilters) -> dict[str, str]:
    """Resolved domain filters as API query parameters (the export URL, related links)."""
    return {key: str(value) for key, value in filters.active().items()}


def events_href(**params: str | None) -> str:
    """A link to the events page filtered on `params` (empty values dropped)."""
    clean = {key: value for key, value in params.items() if value}
    return "/events?" + urlencode(clean) if clean else "/events"


def _positive(value: str | None, default: int, ceiling: int) -> int:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return default
    return min(max(number, 1), ceiling)


def _page_size(value: str | None) -> int:
    size = _positive(value, DEFAULT_PAGE_SIZE, max(PAGE_SIZES))
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE
