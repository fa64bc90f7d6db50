"""Query parameters of the audit endpoints, validated into AuditFilters (422 on bad input)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, ValidationError, create_model

from audit_app.audit.filters import TEXT_FILTERS, TIME_FILTERS, AuditFilters, FilterSyntaxError, check_syntax
from audit_app.models import utc

FILTER_DESCRIPTIONS: dict[str, str] = {
    "partner_id": "Filter by partner (all tenants in partner)",
    # Extensions of the reference (README "Search and filter syntax"):
    "request_id": "Only events of this request (correlation id)",
    "q": (
        "Free text over ids, email, action, resource, IP, request id, user agent and details:"
        ' every word, "quoted phrases", any case'
    ),
    "not_action": "Leave out events with any of these actions (comma-separated or repeated; `*` suffix: prefix)",
    "not_result": "Leave out events with any of these results (comma-separated or repeated)",
    "not_actor_id": "Leave out events of any of these actors (comma-separated or repeated; `*` suffix: prefix)",
}
MAX_Q_LENGTH = 512
SORT_DESCRIPTION = "Time order: `desc` (newest first, the default) or `asc` (oldest first); ties on time by id"
SORT_PARAMETER: dict[str, Any] = {"sort": (Literal["desc", "asc"], Field(default="desc", description=SORT_DESCRIPTION))}
"""The list's time order (an extension of the reference), after its filters; the domain's `order`."""


def filter_query(
    name: str,
    names: Sequence[str],
    descriptions: Mapping[str, str] = FILTER_DESCRIPTIONS,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """A Pydantic model of query parameters: the filters `names` of AuditFilters, typed as it types them,
    then the `extra` fields (name: (type, Field)).

    FastAPI spreads its fields into the operation's query parameters, in this order. (Built at
    run time, so mypy sees the models as variables: the dependencies below say so.)
    """
    declared: dict[str, Any] = {
        filter_name: (
            datetime | None if filter_name in TIME_FILTERS else str | None,
            Field(
                default=None,
                description=descriptions.get(filter_name),
                max_length=MAX_Q_LENGTH if filter_name == "q" else None,
            ),
        )
        for filter_name in names
    }
    return create_model(name, **declared, **(extra or {}))


STATS_REFERENCE = ("tenant_id", "start_time", "end_time")
ListQuery = filter_query("ListQuery", [f.name for f in fields(AuditFilters)], extra=SORT_PARAMETER)
"""Every filter of AuditFilters, as the list and export take them (`request_id` on: extensions), then `sort`."""
StatsQuery = filter_query(
    "StatsQuery",
    ("tenant_id", "start_time", "end_time", *(f.name for f in fields(AuditFilters) if f.name not in STATS_REFERENCE)),
    FILTER_DESCRIPTIONS | {"partner_id": "Only the tenants of this partner"},
)
"""The reference's three stats filters first, then every other filter of the list (extensions)."""
FeedQuery = filter_query("FeedQuery", [name for name in TEXT_FILTERS])
"""The feed's filters: every text filter of the list, no time window (a feed is followed, not windowed)."""


def _error(name: str, value: Any, message: str) -> dict[str, Any]:
    return {"type": "value_error", "loc": ("query", name), "msg": message, "input": value}


def repeated(request: Request, values: dict[str, Any]) -> dict[str, Any]:
    """`values` with each text filter given several times (`action=a&action=b`) joined as `a,b`."""
    out = dict(values)
    for name in TEXT_FILTERS:
        given = request.query_params.getlist(name)
        if name in out and len(given) > 1:
            out[name] = ",".join(given)
    return out


def validated_filters(**values: Any) -> AuditFilters:
    """AuditFilters from query values, or RequestValidationError naming each bad parameter.

    Text the database cannot compare (NUL characters), instants outside the representable range,
    a window that ends before it starts and values of no meaning (a bad CIDR, a `*` inside a
    value) are the caller's mistakes, not server errors.
    """
    errors: list[dict[str, Any]] = []
    clean: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, str) and "\x00" in value:
            errors.append(_error(name, value, "Value error, must not contain NUL characters"))
        elif isinstance(value, datetime):
            try:
                clean[name] = utc(value)
            except (OverflowError, ValueError):
                errors.append(_error(name, value.isoformat(), "Value error, is outside the supported time range"))
        else:
            clean[name] = value
    start, end = clean.get("start_time"), clean.get("end_time")
    if start is not None and end is not None and start > end:
        errors.append(_error("start_time", values["start_time"].isoformat(), "Value error, is after end_time"))
    if errors:
        raise RequestValidationError(errors)
    filters = AuditFilters(**clean)
    try:
        check_syntax(filters)
    except FilterSyntaxError as exc:
        raise RequestValidationError([_error(exc.name, exc.value, str(exc))]) from None
    return filters


@dataclass(frozen=True)
class ListParams:
    """What the list and the export are asked for: the filters and the time order (`desc` or `asc`)."""

    filters: AuditFilters
    order: str = "desc"


async def list_params(request: Request, query: Annotated[ListQuery, Query()]) -> ListParams:  # type: ignore[valid-type]
    """The documented filters of the list (and export) endpoint, plus the extensions and `sort`."""
    return _list_params(request, query)


def _list_params(request: Request, query: Any) -> ListParams:
    values = query.model_dump()
    order = values.pop("sort")
    return ListParams(validated_filters(**repeated(request, values)), order)


def query_model(request: Request, model: Any) -> tuple[Any, list[dict[str, Any]]]:
    """`model` validated from the request's query as FastAPI validates a query model (`Annotated[model,
    Query()]`), and its errors located as FastAPI locates them (`("query", field, ...)`).

    FastAPI takes each field's value as `query_params.get(name)` (the last one given) and ignores
    other parameters; it also spends 5-8 us per field per request on how to read it (aliases,
    sequence checks), more than the whole validation, which pydantic does in one call here.
    """
    given = request.query_params
    values = {name: given[name] for name in model.model_fields if name in given}
    try:
        return model.model_validate(values), []
    except ValidationError as exc:
        return None, [{**error, "loc": ("query", *error["loc"])} for error in exc.errors(include_url=False)]


@dataclass(frozen=True)
class ListRequest:
    """What a list page is asked for: the filters and order, then the page, its size and a cursor."""

    asked: ListParams
    page: int
    per_page: int
    cursor: str | None


def list_request_dependency(page_query: Any) -> Any:
    """A dependency reading the list's query as FastAPI reads `list_params` then the route's own
    `page_query` parameters (page, per_page, cursor): the same values, the same errors in the same
    order (the filters' first, all raised together), with each model validated in one call.

    For the list route only (`routes.answer_list_audit_logs`): the declared `routes.list_audit_logs`
    documents these parameters in the OpenAPI document, this one answers them.
    """

    async def list_request(request: Request) -> ListRequest:
        query, errors = query_model(request, ListQuery)
        asked = _list_params(request, query) if query is not None else None
        window, window_errors = query_model(request, page_query)
        if errors or window_errors:
            raise RequestValidationError([*errors, *window_errors])
        assert asked is not None
        return ListRequest(asked, window.page, window.per_page, window.cursor)

    return list_request


async def stats_filters(request: Request, query: Annotated[StatsQuery, Query()]) -> AuditFilters:  # type: ignore[valid-type]
    """The documented filters of the stats endpoint, plus `partner_id`."""
    return validated_filters(**repeated(request, query.model_dump()))  # type: ignore[attr-defined]


async def feed_filters(request: Request, query: Annotated[FeedQuery, Query()]) -> AuditFilters:  # type: ignore[valid-type]
    """The filters of the feed."""
    return validated_filters(**repeated(request, query.model_dump()))  # type: ignore[attr-defined]


MAX_ZONE_NAME = 64


NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})  # files of some systems' zone folder, not IANA zones


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - NOT_ZONES


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone called `name` (e.g. `America/New_York`), or ValueError for any other text."""
    if name not in _zone_names():
        raise ValueError(f"unknown time zone {name!r}: give an IANA name such as UTC or Europe/Paris")
    return ZoneInfo(name)


async def stats_zone(
    tz: Annotated[
        str | None,
        Query(
            max_length=MAX_ZONE_NAME,
            description=(
                "IANA time zone of the time buckets (`by_day`): its calendar days, weeks, months, years or"
                " hours (default UTC)"
            ),
        ),
    ] = None,
) -> ZoneInfo | None:
    """The zone of the stats' time buckets (an extension), or 422 naming `tz`."""
    if tz is None:
        return None
    try:
        return time_zone(tz)
    except ValueError as exc:
        raise RequestValidationError([_error("tz", tz, f"Value error, {exc}")]) from None
