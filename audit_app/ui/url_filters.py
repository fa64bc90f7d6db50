"""The events filters as they travel in the URL query, under the API's parameter names.

A view is bookmarkable: `?action=role.assign&result=failure&range=7d&page=2`. Times are UTC.
`range` is a relative window (last hour, 24 h, 7 days, 30 days) resolved when the page loads,
so a bookmarked "last 24 h" stays the last 24 hours; explicit windows use `start_time`/`end_time`.
The filters take the API's syntax (`audit.filters`): `q`, several values, `*` prefixes, CIDRs,
`not_*` exclusions; a filter repeated in a pasted link (`action=a&action=b`) reads as `a,b`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import parse_qsl, urlencode

from audit_app.audit.filters import (
    CASE_INSENSITIVE,
    SEARCH_FIELDS,
    TEXT_FILTERS,
    TIME_FILTERS,
    AuditFilters,
    split_values,
)
from audit_app.audit.views import QUERY_KEYS

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
SORTS: tuple[str, ...] = ("desc", "asc")
"""Time order of the list: newest first (the default, left out of the URL) or `sort=asc`."""
PAGE_SIZES: tuple[int, ...] = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
MAX_TEXT = 320
INPUT_FORMAT = "%Y-%m-%d %H:%M"


TIME_LABELS: dict[str, str] = {"start_time": "From", "end_time": "To"}
FILTER_LABELS: dict[str, str] = {
    "q": "Search",
    "tenant_id": "Tenant",
    "partner_id": "Partner",
    "actor_id": "Actor ID",
    "actor_email": "Actor email",
    "action": "Action",
    "resource_type": "Resource type",
    "resource_id": "Resource ID",
    "result": "Result",
    "ip_address": "IP address",
    "request_id": "Request ID",
    "not_action": "Not action",
    "not_result": "Not result",
    "not_actor_id": "Not actor ID",
    **TIME_LABELS,
}
"""The form's label of each filter (the empty state names the filters by them)."""
STATS_DEFAULT_RANGE = "30d"
"""The statistics page without any time in its URL shows the last 30 days (`range=all`: any time)."""


class FilterError(ValueError):
    """A filter value that cannot be used (the message says which and why).

    `field` names the form field at fault (`start_time`, `end_time`), or is empty.
    """

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def parse_time(value: str, label: str, field: str = "") -> datetime | None:
    """An ISO date or date-time as aware UTC; naive values (datetime-local inputs) are UTC."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        message = f"{label}: {value[:40]!r} is not a date and time (expected e.g. 2026-05-01T09:30)."
    except OverflowError:
        message = f"{label}: {value[:40]!r} is outside the supported dates (years 1-9999 in UTC)."
    raise FilterError(message, field)


def input_time(value: str, zone: tzinfo = UTC) -> str:
    """An ISO time as the `YYYY-MM-DD HH:MM` text (24-hour, in `zone`) a time field shows; "" if unusable."""
    try:
        parsed = parse_time(value, "time")
        return parsed.astimezone(zone).strftime(INPUT_FORMAT) if parsed else ""
    except (FilterError, OverflowError):
        return ""


def typed_time(value: str, zone: tzinfo) -> str:
    """A time typed in `zone` as the URL keeps it: as typed in UTC, else with the zone's offset."""
    if str(zone) == "UTC":
        return value
    try:
        parsed = datetime.fromisoformat(value.strip().replace(" ", "T"))
        return parsed.replace(tzinfo=zone).isoformat(timespec="minutes") if parsed.tzinfo is None else value
    except (ValueError, OverflowError):
        return value  # the field reports it on load


def window_text(preset: str, now: datetime, zone: tzinfo = UTC) -> str:
    """What a preset resolves to now, e.g. "2026-04-24 12:00 to now (UTC)"; empty for none."""
    start, _ = preset_window(preset, now)
    return f"{start.astimezone(zone).strftime(INPUT_FORMAT)} to now ({zone})" if start else ""


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
    sort: str = "desc"

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
            sort="asc" if params.get("sort") == "asc" else "desc",
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
        if self.sort == "asc":
            params["sort"] = "asc"
        return params

    def window_params(self) -> dict[str, str]:
        """Only the time window of this view, as URL parameters (links that keep the window)."""
        return {key: value for key, value in self.to_params().items() if key in ("range", *TIME_FILTERS)}

    def query_string(self) -> str:
        """`to_params` as an encoded query string (no leading `?`)."""
        return urlencode(self.to_params())

    def filters(self, now: datetime) -> AuditFilters:
        """The domain filters of this view, with the preset resolved against `now`."""
        text = {name: self.values[name] or None for name in TEXT_FILTERS}
        if self.preset in PRESETS:
            start, end = preset_window(self.preset, now)
        else:
            start = parse_time(self.values["start_time"], "From", "start_time")
            end = parse_time(self.values["end_time"], "To", "end_time")
        if start and end and end <= start:
            raise FilterError("To must be later than From.", "end_time")
        return AuditFilters(start_time=start, end_time=end, **text)


def submitted_view(
    base: ViewQuery, data: Mapping[str, object], fields: Iterable[str], chosen: str, zone: tzinfo = UTC
) -> ViewQuery:
    """The view a submitted filter form asks for (page 1): `fields` from the form, the rest from `base`.

    `chosen` (the time range picker) says which window applies: a preset clears From/To,
    "custom" keeps them. The form switches the picker to "custom" as soon as a date is typed
    and clears the dates when a preset is chosen, so it never shows two windows. Typed times
    are read in `zone`.
    """
    values = dict(base.values)
    for name in fields:
        if name in data:
            values[name] = str(data[name] or "").strip()[:MAX_TEXT]
    for name in TIME_FILTERS:
        values[name] = typed_time(values[name], zone) if values[name] else ""
    typed = bool(values["start_time"] or values["end_time"])
    if chosen in PRESETS:
        preset = chosen
        values["start_time"] = values["end_time"] = ""
    else:
        preset = "custom" if typed else ""
    return ViewQuery(values=values, preset=preset, page=1, per_page=base.per_page, sort=base.sort)


def url_params(query: str) -> dict[str, str]:
    """A URL query string as the pages read it: a filter given several times is joined as `a,b`, as the API does."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query):
        params[key] = f"{params[key]},{value}" if key in TEXT_FILTERS and params.get(key) else value
    return params


def stats_params(params: Mapping[str, str]) -> dict[str, str]:
    """The statistics page's query with its default window when it names no time at all."""
    out = dict(params)
    if not any(key in out for key in ("range", *TIME_FILTERS)):
        out["range"] = STATS_DEFAULT_RANGE
    return out


def saved_query(view: ViewQuery) -> dict[str, str]:
    """What a saved view keeps of `view`: its filters, time range and page size (not the page number)."""
    return {key: value for key, value in view.to_params().items() if key in QUERY_KEYS}


def saved_view_href(page: str, query: Mapping[str, str]) -> str:
    """The link that opens a saved view on its page (statistics without a window means any time there)."""
    params = dict(query)
    if page == "statistics":
        if not any(key in params for key in ("range", *TIME_FILTERS)):
            params["range"] = "all"
        return "/statistics?" + urlencode(params)
    return "/events" + (f"?{urlencode(params)}" if params else "")


def _match_text(name: str, values: list[str]) -> str:
    """How a filter compares, in words: "exact, case-sensitive", "any of 2: exact or prefix", ..."""
    if name == "q":
        return "text anywhere in the event, any case"
    kinds = {
        "prefix" if v.endswith("*") else "network" if name == "ip_address" and "/" in v else "exact" for v in values
    }
    how = " or ".join(sorted(kinds))
    if kinds - {"network"}:
        how += ", any case" if name in CASE_INSENSITIVE else ", case-sensitive"
    if len(values) > 1:
        how = f"any of {len(values)}: {how}"
    return f"leaves out {how}" if name.startswith("not_") else how


def _text_term(name: str, values: list[str]) -> str:
    """The `q` term that searches one exact value as text ("" when it cannot stand for the filter)."""
    if name not in SEARCH_FIELDS or len(values) != 1 or (name == "ip_address" and "/" in values[0]):
        return ""
    term = values[0].rstrip("*")
    return f'"{term}"' if any(c.isspace() for c in term) else term


def widenings(view: ViewQuery) -> list[dict[str, str]]:
    """For an empty result, each active filter: its label and value, how it matches, and the `q` term
    that would search its value as text instead ("" when none can)."""
    out = []
    for name in TEXT_FILTERS:
        raw = view.values.get(name, "")
        if not raw:
            continue
        values = [raw] if name == "q" else split_values(raw)
        out.append(
            {
                "name": name,
                "label": FILTER_LABELS[name],
                "value": raw,
                "match": _match_text(name, values),
                "term": "" if name == "q" else _text_term(name, values),
            }
        )
    window = ""
    if view.preset in PRESETS:
        window = PRESET_LABELS[view.preset]
    elif view.values.get("start_time") or view.values.get("end_time"):
        window = " to ".join(view.values[n] or "…" for n in TIME_FILTERS)
    if window:
        out.append({"name": "range", "label": "Time range", "value": window, "match": "", "term": ""})
    return out


def without_filter(view: ViewQuery, name: str) -> ViewQuery:
    """`view` on page 1 without the filter `name` (`range`: the whole time window)."""
    values = dict(view.values)
    preset = view.preset
    if name == "range":
        values.update(dict.fromkeys(TIME_FILTERS, ""))
        preset = ""
    elif name in values:
        values[name] = ""
    return ViewQuery(values=values, preset=preset, page=1, per_page=view.per_page, sort=view.sort)


def searched_as_text(view: ViewQuery, name: str) -> ViewQuery:
    """`view` with the exact filter `name` moved into the free-text search (unchanged when it cannot be)."""
    term = _text_term(name, split_values(view.values.get(name, "")))
    if not term:
        return view
    wider = without_filter(view, name)
    wider.values["q"] = f"{wider.values.get('q', '')} {term}".strip()[:MAX_TEXT]
    return wider


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
