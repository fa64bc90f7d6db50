"""The JSON of event pages, written straight from the rows a page reads (no model validated per event).

The list and the feed read their rows with the times (and the list its `details`) as the driver
returns them (`db.as_stored`); validating each row as AuditLogPublic only to serialise it again
cost more than reading the page. The rows are the database's own values of the public columns,
so building the dicts here and serialising them gives the same JSON as the models would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import repeat
from operator import attrgetter
from typing import Any

import orjson
import pydantic_core

from audit_app.audit.query import EventPage
from audit_app.db import stored_json, stored_time
from audit_app.models import AuditLogPublic, utc

PUBLIC_FIELDS: tuple[str, ...] = tuple(AuditLogPublic.model_fields)
"""The fields of an event, in the order of AuditLogPublic (and of the columns the list and feed read)."""
TIME_FIELDS: tuple[str, ...] = ("timestamp", "ingested_at")
TIME_INDEXES: tuple[int, ...] = tuple(PUBLIC_FIELDS.index(name) for name in TIME_FIELDS)


def page_json(page: EventPage) -> bytes:
    """The AuditLogPage of `page` (read with `list_events(as_stored=True)`) as JSON.

    pydantic-core's own serialiser, as `AuditLogPage.model_dump_json` uses: the same number
    formats in `details` (`1e+16`, integers past 64 bits), time formats and key order.
    """
    return pydantic_core.to_json(
        {
            "items": _event_dicts(page.items, stored_json),
            "total": page.total,
            "page": page.page,
            "per_page": page.per_page,
            "pages": page.pages,
            "total_exact": page.total_exact,
            "next_cursor": page.next_cursor,
        }
    )


_UTC_SUFFIX = "+00:00"


def _times(rows: Sequence[Any], index: int) -> list[Any]:
    """Column `index` of `rows`, times read through `as_stored`, as `stored_time` makes them.

    psycopg's are aware UTC datetimes already when the first one is (one statement, one session
    zone): taken as they are. SQLite's are naive UTC text: each is parsed with `+00:00` appended,
    by `datetime.fromisoformat` mapped over the column (no Python call per value; `stored_time`
    made and converted a naive datetime, several times the cost). That gives `stored_time`'s very
    datetime whenever it parses to an aware one (a text with a zone of its own does not parse
    with a second one; a date alone parses naive): otherwise the column goes through `stored_time`.
    """
    values = [row[index] for row in rows]
    if not values:
        return values
    head = values[0]
    if isinstance(head, datetime) and utc(head) is head:
        return values
    if isinstance(head, str):
        try:
            made = list(map(datetime.fromisoformat, map(str.__add__, values, repeat(_UTC_SUFFIX))))
        except (TypeError, ValueError):
            pass
        else:
            if all(map(_TZINFO, made)):
                return made
    return [stored_time(value) for value in values]


_TZINFO = attrgetter("tzinfo")


def feed_json(rows: Sequence[Any], following: str) -> bytes:
    """The FeedAnswer's JSON, from rows read with `read_feed(details_as_json_text=True)`.

    Each `details` is embedded as the JSON text stored (an orjson fragment), never decoded and
    encoded again.
    """
    return orjson.dumps({"items": _event_dicts(rows, orjson.Fragment), "next": following}, option=orjson.OPT_UTC_Z)


def _event_dicts(rows: Sequence[Any], document: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """Each row of the public columns and one more (the list's `found`, the feed's `feed_pos`) as
    its event's dict in AuditLogPublic's field order: times as `stored_time` makes them (`_times`,
    a column at a time), `details` as `document` makes it of the value read.

    Spelled out: a dict display with constant keys over unpacked values, 1,000 rows in about half
    the time of `dict(zip(PUBLIC_FIELDS, row))` and a second pass for `details`. The display holds
    the first 15 fields and the last 4 are stored after it, in order: CPython 3.11 compiles a
    display of more than 16 pairs to an empty dict grown key by key (resized twice) and merged
    with a second one, which cost 9.0M instructions a feed page against 7.4M so (callgrind). The
    keys are `PUBLIC_FIELDS` (the feed's and the list's JSON tests compare them with the
    validated answers').
    """
    first, second = TIME_INDEXES
    events: list[dict[str, Any]] = []
    append = events.append
    for (
        id_,
        _timestamp,
        tenant_id,
        partner_id,
        actor_id,
        actor_email,
        actor_type,
        action,
        resource_type,
        resource_id,
        result,
        ip_address,
        user_agent,
        request_id,
        session_id,
        details,
        _ingested_at,
        hash_,
        prev_hash,
        _extra,
    ), timestamp, ingested_at in zip(rows, _times(rows, first), _times(rows, second), strict=True):
        event = {
            "id": id_,
            "timestamp": timestamp,
            "tenant_id": tenant_id,
            "partner_id": partner_id,
            "actor_id": actor_id,
            "actor_email": actor_email,
            "actor_type": actor_type,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "result": result,
            "ip_address": ip_address,
            "user_agent": user_agent,
            "request_id": request_id,
            "session_id": session_id,
        }
        event["details"] = document(details)
        event["ingested_at"] = ingested_at
        event["hash"] = hash_
        event["prev_hash"] = prev_hash
        append(event)
    return events
