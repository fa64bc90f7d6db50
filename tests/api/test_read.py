"""The five documented read endpoints through HTTP: filters, paging, order, stats, one entry, 422s."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from audit_app.api import create_api, routes
from audit_app.api.schemas import AuditLogPage
from audit_app.audit.filters import AuditFilters
from audit_app.audit.query import list_events
from audit_app.audit.stats import compute_stats_scan
from audit_app.auth import Principal
from audit_app.models import AuditLog, AuditLogPublic
from audit_app.settings import Settings
from tests.api.helpers import LIST, World, at, event, ids_of, write
from tests.principals import ACME, SUPER

pytestmark = pytest.mark.usefixtures("world")


def parse_time(value: str) -> datetime:
    """An ISO 8601 UTC time of a query parameter."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def get_list(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get(LIST, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_list_returns_full_items_newest_first(client: TestClient, as_super: dict[str, str], world: World) -> None:
    body = get_list(client, as_super)
    assert body["total"] == 11
    assert body["page"] == 1
    assert body["per_page"] == 50
    assert body["pages"] == 1
    assert ids_of(body) == world.all
    keys = [(item["timestamp"], item["id"]) for item in body["items"]]
    assert keys == sorted(keys, reverse=True)
    assert set(body["items"][0]) == set(AuditLogPublic.model_fields)


def test_ties_on_timestamp_are_ordered_by_id_descending(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    same = at(5)
    ids = write(session, [event("acme", same, actor_id=f"tie-{n}") for n in range(5)])
    body = get_list(client, as_super, start_time=same.isoformat())
    assert [item["id"] for item in body["items"]] == sorted(ids, reverse=True)


def test_list_answers_without_trailing_slash(client: TestClient, as_super: dict[str, str]) -> None:
    response = client.get(LIST.rstrip("/"), headers=as_super, follow_redirects=False)
    assert response.status_code == 200
    assert response.json()["total"] == 11


def test_pagination_math(client: TestClient, as_super: dict[str, str], world: World) -> None:
    pages = [get_list(client, as_super, page=n, per_page=4) for n in (1, 2, 3, 4)]
    assert [len(page["items"]) for page in pages] == [4, 4, 3, 0]
    assert all(page["total"] == 11 and page["pages"] == 3 and page["per_page"] == 4 for page in pages)
    assert [page["page"] for page in pages] == [1, 2, 3, 4]
    seen = [item["id"] for page in pages for item in page["items"]]
    assert len(seen) == len(set(seen)) == 11
    assert seen == [item["id"] for item in get_list(client, as_super, per_page=500)["items"]]
    assert get_list(client, as_super, per_page=1)["pages"] == 11


FILTER_CASES: list[tuple[dict[str, str], set[str], int]] = [
    ({"tenant_id": "acme"}, {"acme"}, 4),
    ({"partner_id": "northwind"}, {"acme", "globex"}, 6),
    ({"partner_id": "southwind"}, {"initech"}, 3),
    ({"actor_id": "acme-bob"}, {"acme"}, 1),
    ({"actor_email": "alice@globex.example"}, {"globex"}, 2),
    ({"action": "role.assign"}, {"acme"}, 1),
    ({"action": "role"}, set(), 0),  # exact match, not a prefix
    ({"resource_type": "apikey"}, {"globex"}, 1),
    ({"resource_id": "u-1"}, {"acme"}, 1),
    ({"result": "failure"}, {"acme"}, 1),
    ({"result": "Failure"}, set(), 0),
    ({"ip_address": "192.0.2.7"}, {"acme"}, 1),
    ({"ip_address": "192.0.2"}, set(), 0),
    ({"tenant_id": "acme", "result": "success"}, {"acme"}, 2),
    ({"partner_id": "northwind", "action": "apikey.revoke"}, {"globex"}, 1),
    ({"tenant_id": "nobody"}, set(), 0),
    ({"partner_id": "nobody"}, set(), 0),
]


def test_each_filter_is_an_exact_match(client: TestClient, as_super: dict[str, str]) -> None:
    for params, tenants, count in FILTER_CASES:
        body = get_list(client, as_super, **params)
        assert body["total"] == count == len(body["items"]), params
        assert {item["tenant_id"] for item in body["items"]} == tenants, params
        for name, value in params.items():
            if name != "partner_id":
                assert all(item[name] == value for item in body["items"]), params


def test_partner_filter_covers_events_written_without_partner_id(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    (event_id,) = write(session, [event("globex", at(4), partner_id=None)])
    assert event_id in ids_of(get_list(client, as_super, partner_id="northwind"))


def test_time_window_start_inclusive_end_exclusive(client: TestClient, as_super: dict[str, str], world: World) -> None:
    midnight = "2026-03-02T00:00:00Z"  # the acme failure happened exactly then
    from_midnight = get_list(client, as_super, tenant_id="acme", start_time=midnight)
    until_midnight = get_list(client, as_super, tenant_id="acme", end_time=midnight)
    assert "failure" in {item["result"] for item in from_midnight["items"]}
    assert "failure" not in {item["result"] for item in until_midnight["items"]}
    assert from_midnight["total"] + until_midnight["total"] == 4
    day_two = get_list(client, as_super, start_time=midnight, end_time="2026-03-03T00:00:00Z")
    assert {item["timestamp"][:10] for item in day_two["items"]} == {"2026-03-02"}
    assert day_two["total"] == 4
    assert get_list(client, as_super, start_time=midnight, end_time=midnight)["total"] == 0


def test_naive_times_are_utc_and_offsets_are_honoured(client: TestClient, as_super: dict[str, str]) -> None:
    naive = get_list(client, as_super, start_time="2026-03-02T00:00:00")
    zulu = get_list(client, as_super, start_time="2026-03-02T00:00:00Z")
    assert ids_of(naive) == ids_of(zulu)
    assert naive["total"] == 7
    # 01:00+01:00 is midnight UTC; 00:30+01:00 is 23:30 UTC the day before (no event then).
    assert ids_of(get_list(client, as_super, start_time="2026-03-02T01:00:00+01:00")) == ids_of(zulu)
    assert get_list(client, as_super, end_time="2026-03-02T01:00:00+01:00")["total"] == 4


def test_actions_and_resource_types_are_sorted_and_distinct(client: TestClient, as_super: dict[str, str]) -> None:
    actions = client.get(LIST + "actions", headers=as_super).json()
    assert actions == {
        "actions": ["apikey.revoke", "initech.secret", "role.assign", "umbrella.only", "user.delete", "user.login"]
    }
    types = client.get(LIST + "resource-types", headers=as_super).json()
    assert types == {"resource_types": ["apikey", "initech_vault", "role", "session", "umbrella_thing", "user"]}


def test_stats_with_window_lists_every_day(client: TestClient, as_super: dict[str, str]) -> None:
    response = client.get(
        LIST + "stats",
        params={"start_time": "2026-02-27T00:00:00Z", "end_time": "2026-03-05T00:00:00Z"},
        headers=as_super,
    )
    assert response.status_code == 200
    stats = response.json()
    assert stats["total"] == 11
    days = [(day["date"], day["count"]) for day in stats["by_day"]]
    assert days == [
        ("2026-02-27", 0),
        ("2026-02-28", 0),
        ("2026-03-01", 4),
        ("2026-03-02", 4),
        ("2026-03-03", 3),
        ("2026-03-04", 0),
    ]
    assert stats["by_action"] == {
        "user.login": 6,
        "role.assign": 1,
        "apikey.revoke": 1,
        "initech.secret": 1,
        "umbrella.only": 1,
        "user.delete": 1,
    }
    assert stats["by_result"] == {"success": 8, "failure": 1, "denied": 1, "error": 1}
    assert sum(stats["by_resource_type"].values()) == 11
    assert stats["unique_actors"] == 5
    assert stats["failure_rate"] == round(3 / 11, 4)
    top = stats["top_actors"]
    assert top[0] == {"actor_id": "acme-alice", "actor_email": "alice@acme.example", "count": 3}
    assert [actor["count"] for actor in top] == sorted((actor["count"] for actor in top), reverse=True)


def test_stats_without_window_run_first_to_last_event(client: TestClient, as_super: dict[str, str]) -> None:
    stats = client.get(LIST + "stats", params={"tenant_id": "umbrella"}, headers=as_super).json()
    assert stats["total"] == 2
    assert [day["date"] for day in stats["by_day"]] == ["2026-03-02", "2026-03-03"]
    assert stats["top_actors"] == [{"actor_id": "umbrella-alice", "actor_email": "alice@umbrella.example", "count": 2}]


def test_stats_of_a_huge_empty_window_stay_small(client: TestClient, as_super: dict[str, str]) -> None:
    params = {"tenant_id": "nobody", "start_time": "0001-01-01T00:00:00Z", "end_time": "9999-01-01T00:00:00Z"}
    stats = client.get(LIST + "stats", params=params, headers=as_super).json()
    assert stats["total"] == 0
    assert stats["by_day"] == []


def test_get_one_returns_every_field_and_is_audited(
    client: TestClient, as_super: dict[str, str], world: World, session: Session
) -> None:
    bob = get_list(client, as_super, actor_id="acme-bob")["items"][0]
    response = client.get(LIST + bob["id"], headers=as_super | {"User-Agent": "pytest-viewer"})
    assert response.status_code == 200
    entry = response.json()
    assert set(entry) == set(AuditLogPublic.model_fields)
    assert entry["details"] == {"before": {"role": "admin"}, "after": {"role": "viewer"}}
    assert entry["user_agent"] == "curl/8.0"
    assert entry["timestamp"].startswith("2026-03-03T23:59:00")
    assert len(entry["hash"]) == 64
    views = session.execute(select(AuditLog).where(AuditLog.action == "audit.view")).scalars().all()  # type: ignore[arg-type]
    assert [(v.resource_id, v.tenant_id, v.actor_id, v.user_agent) for v in views] == [
        (bob["id"], "acme", "super_admin-local", "pytest-viewer")
    ]


def test_unknown_entry_is_404(client: TestClient, as_super: dict[str, str]) -> None:
    for log_id in ("00000000-0000-0000-0000-000000000000", "x" * 500, "a%00b", "%FF%FE"):
        response = client.get(LIST + log_id, headers=as_super)
        assert response.status_code == 404, log_id
        assert response.json() == {"detail": "Audit log entry not found."}


INVALID: list[tuple[str, dict[str, Any], list[str]]] = [
    (LIST, {"page": 0}, ["query", "page"]),
    (LIST, {"page": "abc"}, ["query", "page"]),
    (LIST, {"per_page": 0}, ["query", "per_page"]),
    (LIST, {"per_page": 501}, ["query", "per_page"]),
    (LIST, {"per_page": 100000}, ["query", "per_page"]),
    (LIST, {"start_time": "yesterday"}, ["query", "start_time"]),
    (LIST, {"end_time": "2026-13-01"}, ["query", "end_time"]),
    (LIST, {"start_time": "2026-03-02", "end_time": "2026-03-01"}, ["query", "start_time"]),
    (LIST, {"start_time": "9999-12-31T23:00:00-05:00"}, ["query", "start_time"]),
    (LIST, {"tenant_id": "acme\x00"}, ["query", "tenant_id"]),
    (LIST + "stats", {"start_time": "2026-03-02", "end_time": "2026-03-01"}, ["query", "start_time"]),
    (LIST + "stats", {"end_time": "not a date"}, ["query", "end_time"]),
]


def test_invalid_input_is_422_in_the_documented_shape(client: TestClient, as_super: dict[str, str]) -> None:
    for path, params, loc in INVALID:
        response = client.get(path, params=params, headers=as_super)
        assert response.status_code == 422, (params, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, list)
        assert detail
        for error in detail:
            assert isinstance(error["msg"], str)
            assert isinstance(error["type"], str)
            assert all(isinstance(part, str | int) for part in error["loc"])
        assert loc in [error["loc"] for error in detail], params


WEIRD = ["", " ", "'", "' OR 1=1 --", "%", "_", "\\", "\x00", "a\x00b", "é" * 300, "x" * 5000, "💥", "null"]


def test_weird_filter_values_never_cause_server_errors(client: TestClient, as_super: dict[str, str]) -> None:
    for name in ("tenant_id", "partner_id", "actor_email", "action", "ip_address", "resource_id"):
        for value in WEIRD:
            response = client.get(LIST, params={name: value}, headers=as_super)
            assert response.status_code in (200, 422), (name, value, response.text)
            if response.status_code == 200 and value.strip():
                assert response.json()["total"] == 0, (name, value)
    for value in WEIRD:
        for path in (LIST + "stats", LIST + "export"):
            response = client.get(path, params={"tenant_id": value}, headers=as_super)
            assert response.status_code in (200, 422), (path, value, response.text)
    for raw in ("%FF", "%ED%A0%80", "%C0%AF", "%00"):  # invalid UTF-8 and NUL, sent as raw bytes
        response = client.get(f"{LIST}?tenant_id={raw}&action={raw}", headers=as_super)
        assert response.status_code in (200, 422), (raw, response.text)


def test_list_filters_by_request_id(
    client: TestClient, as_super: dict[str, str], as_acme: dict[str, str], session: Session
) -> None:
    mine = write(session, [event("acme", at(5, 9), request_id="req-7"), event("acme", at(5, 10), request_id="req-7")])
    write(session, [event("globex", at(5, 11), request_id="req-7"), event("acme", at(5, 12), request_id="req-8")])
    body = get_list(client, as_super, request_id="req-7")
    assert body["total"] == 3
    assert {item["request_id"] for item in body["items"]} == {"req-7"}
    assert ids_of(get_list(client, as_acme, request_id="req-7")) == set(mine)
    assert get_list(client, as_super, request_id="req-none")["total"] == 0
    response = client.get(LIST, params={"request_id": "req\x00"}, headers=as_super)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "request_id"]


def test_stats_filter_by_partner_within_the_scope(
    client: TestClient, as_super: dict[str, str], as_northwind: dict[str, str], as_acme: dict[str, str]
) -> None:
    everything = client.get(LIST + "stats", headers=as_super).json()
    northwind = client.get(LIST + "stats", params={"partner_id": "northwind"}, headers=as_super).json()
    southwind = client.get(LIST + "stats", params={"partner_id": "southwind"}, headers=as_super).json()
    assert (everything["total"], northwind["total"], southwind["total"]) == (11, 6, 3)
    assert "initech.secret" in southwind["by_action"]
    assert "initech.secret" not in northwind["by_action"]
    assert client.get(LIST + "stats", params={"partner_id": "northwind"}, headers=as_northwind).json() == northwind
    # A window starting mid-hour counts the events of its edge directly: the partner filter holds there too.
    scan = client.get(
        LIST + "stats", params={"partner_id": "southwind", "start_time": "2026-03-01T00:30:00Z"}, headers=as_super
    )
    assert scan.json()["total"] == 3
    for headers in (as_northwind, as_acme):
        assert client.get(LIST + "stats", params={"partner_id": "southwind"}, headers=headers).status_code == 403


def test_stats_stay_small_whatever_the_data(
    client: TestClient, as_super: dict[str, str], as_acme: dict[str, str], session: Session
) -> None:
    # Events at both ends of time, as a writer could store before ingestion refused them.
    write(
        session,
        [
            event("acme", datetime(1, 1, 1, tzinfo=UTC)),
            event("acme", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ],
    )
    for headers in (as_super, as_acme):
        response = client.get(LIST + "stats", headers=headers)
        assert response.status_code == 200, response.text
        stats = response.json()
        assert len(response.content) < 20_000
        assert stats["bucket"] == "year"
        assert [row["date"] for row in stats["by_day"]] == ["0001-01-01", "2026-01-01", "9999-01-01"]
        assert sum(row["count"] for row in stats["by_day"]) == stats["total"]


@pytest.mark.parametrize(
    ("window", "bucket", "buckets"),
    [
        ({"start_time": "2026-03-01T00:00:00Z", "end_time": "2026-03-04T00:00:00Z"}, "day", 3),
        ({"start_time": "2025-01-01T00:00:00Z", "end_time": "2026-12-31T00:00:00Z"}, "week", 105),
        ({"start_time": "2010-01-01T00:00:00Z", "end_time": "2026-12-31T00:00:00Z"}, "month", 204),
    ],
)
def test_stats_bucket_size_follows_the_window(
    client: TestClient, as_super: dict[str, str], window: dict[str, str], bucket: str, buckets: int
) -> None:
    stats = client.get(LIST + "stats", params=window, headers=as_super).json()
    assert (stats["bucket"], len(stats["by_day"])) == (bucket, buckets)
    assert sum(row["count"] for row in stats["by_day"]) == stats["total"] == 11


@pytest.mark.parametrize(
    "params",
    [
        {"end_time": "0001-01-01T00:00:00Z"},
        {"start_time": "9999-12-31T12:00:00Z"},
        {"start_time": "9999-12-31T23:59:59.999999Z"},
        {"start_time": "0001-01-01T00:00:00Z", "end_time": "0001-01-01T00:00:01Z"},
        {"start_time": "0001-01-01T00:00:00Z", "end_time": "9999-12-31T23:59:59.999999Z"},
    ],
)
def test_edge_dates_are_never_a_server_error(
    client: TestClient, as_super: dict[str, str], params: dict[str, str]
) -> None:
    for path in (LIST + "stats", LIST, LIST + "export"):
        response = client.get(path, params=params, headers=as_super)
        assert response.status_code in (200, 422), (path, params, response.text)
    stats = client.get(LIST + "stats", params=params, headers=as_super)
    if params.get("end_time", "").startswith("0001") or params.get("start_time", "").startswith("9999"):
        assert stats.json()["total"] == 0
        assert stats.json()["by_day"] == []


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-99-99"])
def test_a_cursor_whose_time_overflows_is_422(client: TestClient, as_super: dict[str, str], stamp: str) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps([stamp, "some-id"]).encode()).decode().rstrip("=")
    response = client.get(LIST, params={"cursor": cursor}, headers=as_super)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("narrowing", [{}, {"tenant_id": "acme"}, {"partner_id": "southwind"}])
def test_stats_of_a_short_window_are_counted_per_hour(
    client: TestClient, as_super: dict[str, str], session: Session, narrowing: dict[str, str]
) -> None:
    # Two events in the window's first, partial hour: one before its start, one after.
    write(session, [event("acme", at(1, 8, 15)), event("acme", at(1, 8, 45), result="failure")])
    window = {"start_time": "2026-03-01T08:30:00Z", "end_time": "2026-03-02T12:30:00Z"} | narrowing
    stats = client.get(LIST + "stats", params=window, headers=as_super).json()
    assert stats["bucket"] == "hour"
    assert len(stats["by_day"]) == 29  # 08:00 on the 1st to 12:00 on the 2nd, the empty hours included
    first = {"failure": 1} if "partner_id" not in narrowing else {}  # the two 08:xx events are acme's
    assert stats["by_day"][0] == {"date": "2026-03-01T08:00:00+00:00", "count": len(first), "by_result": first}
    assert stats["by_day"][-1]["date"] == "2026-03-02T12:00:00+00:00"
    # The oracle: the listed events of the same window, by the UTC hour of their timestamp.
    listed = get_list(client, as_super, per_page=500, **window)["items"]
    hours = Counter(
        datetime.fromisoformat(item["timestamp"].replace("Z", "+00:00"))
        .astimezone(UTC)
        .replace(minute=0, second=0, microsecond=0)
        .isoformat()
        for item in listed
    )
    assert {row["date"]: row["count"] for row in stats["by_day"] if row["count"]} == dict(hours)
    assert stats["total"] == len(listed) == {"": 8, "tenant_id": 4, "partner_id": 1}[next(iter(narrowing), "")]
    # Counting every event (the path of filters the aggregate tables do not hold) gives the same hours.
    filters = AuditFilters(
        start_time=parse_time(window["start_time"]),
        end_time=parse_time(window["end_time"]),
        tenant_id=narrowing.get("tenant_id"),
        partner_id=narrowing.get("partner_id"),
    )
    scan = compute_stats_scan(session, Principal(sub="s", email="", role="super_admin"), filters)
    assert (scan["bucket"], scan["by_day"]) == ("hour", stats["by_day"])


@pytest.mark.parametrize(
    ("window", "bucket"),
    [
        ({"start_time": "2026-03-01T00:00:00Z", "end_time": "2026-03-03T00:00:00Z"}, "hour"),  # 48 hours
        ({"start_time": "2026-03-01T00:00:00Z", "end_time": "2026-03-03T00:00:01Z"}, "day"),
        ({"start_time": "2026-03-01T00:00:00Z"}, "day"),  # an open side: the days up to the last event
    ],
)
def test_hours_only_for_windows_of_at_most_48_hours(
    client: TestClient, as_super: dict[str, str], window: dict[str, str], bucket: str
) -> None:
    stats = client.get(LIST + "stats", params=window, headers=as_super).json()
    assert stats["bucket"] == bucket
    assert len(stats["by_day"]) <= 48
    assert sum(row["count"] for row in stats["by_day"]) == stats["total"]


def test_list_json_is_the_validated_pages_json(
    client: TestClient, as_super: dict[str, str], as_acme: dict[str, str], session: Session
) -> None:
    """The list serialises its rows directly (`api.event_json`): byte for byte the JSON that validating
    the page as AuditLogPage and dumping it gave (values, key order, time and number formats)."""
    odd = [
        {"big": 10**20, "f": 1.5, "e16": 1e16, "tiny": 1e-07, "whole": 2.0, "neg": -0.0, "u": "ü 名前 🙂"},
        {"nested": {"b": [1, None, {"z": []}], "a": True}, "quote": 'say "hi"', "ctl": "\x01\n\t", "sep": "\u2028"},
        {},
    ]
    stamps = [datetime(2026, 3, 4, 12, 0, 0, tzinfo=UTC), datetime(2026, 3, 4, 12, 0, 0, 1, tzinfo=UTC)]
    stamps.append(datetime(2026, 3, 4, 12, 0, 0, 123000, tzinfo=UTC))
    write(session, [event("acme", when, details=details) for when, details in zip(stamps, odd, strict=True)])
    asked: list[tuple[dict[str, str], Principal, AuditFilters, dict[str, Any]]] = [
        (as_super, SUPER, AuditFilters(), {}),
        (as_super, SUPER, AuditFilters(tenant_id="acme"), {"tenant_id": "acme", "per_page": 2, "page": 2}),
        (as_acme, ACME, AuditFilters(), {"sort": "asc", "per_page": 3}),
        (as_super, SUPER, AuditFilters(action="no.such.action"), {"action": "no.such.action"}),
    ]
    for headers, principal, filters, params in asked:
        response = client.get(LIST, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = list_events(
            session,
            principal,
            filters,
            page=int(params.get("page", 1)),
            per_page=int(params.get("per_page", 50)),
            order=params.get("sort", "desc"),
        )
        validated = AuditLogPage.model_validate(page, from_attributes=True)
        assert response.content == validated.model_dump_json().encode(), params
        if page.next_cursor:
            following = client.get(LIST, params={**params, "cursor": page.next_cursor}, headers=headers).json()
            assert following["items"][0]["id"] not in {item.id for item in page.items}


def test_the_answering_list_route_is_the_documented_one(
    settings: Settings, as_super: dict[str, str], as_acme: dict[str, str]
) -> None:
    """`routes.answer_list_audit_logs` (matched first: it reads the query in one pass) answers as the
    documented `list_audit_logs` does, mounted here on a path of its own: the same pages, and for
    bad parameters the same 422s, errors in the same order, filters' before the page's."""
    api = create_api()
    api.router.add_api_route("/declared/", routes.list_audit_logs, methods=["GET"])
    asked: list[list[tuple[str, str]]] = [
        [],
        [("tenant_id", "acme"), ("per_page", "2"), ("page", "2")],
        [("action", "user.login"), ("action", "role.assign"), ("sort", "asc")],
        [("start_time", "2026-03-02T00:00:00Z"), ("start_time", "2026-03-01T00:00:00Z"), ("per_page", "1")],
        [("result", "failure"), ("unknown", "x"), ("page", "1"), ("page", "3"), ("per_page", "1")],
        [("q", "acme"), ("not_result", "success")],
        [("tenant_id", "")],
        [("page", "0")],
        [("page", "x"), ("per_page", "501"), ("cursor", "c" * 513)],
        [("start_time", "yesterday"), ("sort", "up"), ("page", "0")],
        [("start_time", "2026-03-02T00:00:00Z"), ("end_time", "2026-03-01T00:00:00Z"), ("page", "0")],
        [("ip_address", "10.0.0.0/33"), ("per_page", "0")],
        [("actor_id", "a\x00b")],
        [("cursor", "not-a-cursor")],
        [("q", "x" * 513)],
    ]
    with TestClient(api) as client:
        for headers in (as_super, as_acme):
            for params in asked:
                answered = client.get(LIST, params=params, headers=headers)
                documented = client.get("/declared/", params=params, headers=headers)
                assert (answered.status_code, answered.json()) == (documented.status_code, documented.json()), params
                first = client.get(LIST, params=[("per_page", "3")], headers=headers).json()
                if first["next_cursor"]:
                    following = [("per_page", "3"), ("cursor", first["next_cursor"])]
                    assert client.get(LIST, params=following, headers=headers).content == (
                        client.get("/declared/", params=following, headers=headers).content
                    )
        assert client.get(LIST, params=[("page", "0")]).status_code == 401  # the token is checked first
        assert client.get(LIST.rstrip("/"), params=[("page", "0")], headers=as_super).json() == (
            client.get("/declared/", params=[("page", "0")], headers=as_super).json()
        )
