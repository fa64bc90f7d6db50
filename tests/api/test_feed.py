"""The feed over HTTP: order, cursors, Link, scope, since, 410 after a purge, bad input."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlmodel import Session, col
from starlette.background import BackgroundTask

from audit_app.audit.feed import FeedCursor, FeedPage, record_poll
from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import ingest_events
from audit_app.audit.retention import purge_expired, set_default_retention
from audit_app.db import psycopg_url
from audit_app.models import AuditLog, FeedCollector, utcnow
from audit_app.seed import ACTIONS
from tests.api.helpers import World, event
from tests.helpers import PG_ADMIN_URL
from tests.principals import SUPER

FEED = "/api/v1/admin/audit/feed"
EXPORT = "/api/v1/admin/audit/export"
CATALOG_URL = "/api/v1/admin/audit/catalog"


def follow(
    client: TestClient, headers: dict[str, str], url: str = FEED, *, until: int = 0, **params: Any
) -> tuple[list[str], str]:
    """Follow the Link header until an empty answer after `until` events; the ids seen (without
    audit.feed) and the last URL.

    On PostgreSQL any long transaction in the cluster holds the feed back (never loses events):
    an empty answer before `until` events is polled again, as a collector would, for up to a minute.
    """
    seen: list[str] = []
    deadline = time.monotonic() + 60
    response = client.get(url, headers=headers, params=params or None)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"] if item["action"] != "audit.feed"]
        link = response.headers["link"]
        assert link.startswith("<http")
        assert link.endswith('>; rel="next"')
        next_url = link[1 : link.index(">")]
        assert parse_qs(urlsplit(next_url).query)["after"] == [body["next"]]
        if not body["items"] and (len(seen) >= until or time.monotonic() > deadline):
            return seen, next_url
        if not body["items"]:
            time.sleep(0.2)
        response = client.get(next_url, headers=headers)


def poll(client: TestClient, headers: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    """The first answer with events (waiting out a held-back PostgreSQL horizon, see `follow`)."""
    deadline = time.monotonic() + 60
    while True:
        response = client.get(FEED, headers=headers, params=params)
        assert response.status_code == 200, response.text
        if response.json()["items"] or time.monotonic() > deadline:
            return dict(response.json())
        time.sleep(0.2)


def feed_order(session: Session, ids: set[str]) -> list[str]:
    """`ids` in feed order, as the database orders them."""
    stmt = select(col(AuditLog.id)).where(col(AuditLog.id).in_(ids)).order_by(col(AuditLog.feed_pos), col(AuditLog.id))
    return list(session.execute(stmt).scalars())


def test_following_next_yields_every_event_once_in_feed_order(
    client: TestClient, world: World, session: Session, as_super: dict[str, str]
) -> None:
    seen, last = follow(client, as_super, limit=3, until=11)
    assert seen == feed_order(session, world.all)
    assert len(seen) == len(set(seen)) == 11
    # A new event is picked up from the last link; nothing seen before comes again.
    (new_id,) = ingest_events(session, [event("acme", datetime(2026, 3, 9, tzinfo=UTC))])
    session.commit()
    again, _ = follow(client, as_super, url=last, until=1)
    assert again == [new_id]


def test_scope_and_filters(
    client: TestClient,
    world: World,
    as_acme: dict[str, str],
    as_northwind: dict[str, str],
    as_super: dict[str, str],
) -> None:
    assert set(follow(client, as_acme, until=4)[0]) == world.of("acme")
    assert set(follow(client, as_northwind, until=6)[0]) == world.of("acme", "globex")
    assert set(follow(client, as_super, until=1, partner_id="northwind", result="failure")[0]) == {world.ids["acme"][2]}
    assert set(follow(client, as_super, until=1, action="role.assign")[0]) == {world.ids["acme"][1]}
    assert client.get(FEED, headers=as_acme, params={"tenant_id": "globex"}).status_code == 403
    assert client.get(FEED, headers=as_northwind, params={"partner_id": "southwind"}).status_code == 403


def test_an_empty_answer_keeps_the_cursor_and_still_links(client: TestClient, as_super: dict[str, str]) -> None:
    response = client.get(FEED, headers=as_super, params={"tenant_id": "nobody"})
    assert response.status_code == 200
    body = response.json()
    assert body["items"] == []
    assert "tenant_id=nobody" in response.headers["link"]
    again = client.get(FEED, headers=as_super, params={"tenant_id": "nobody", "after": body["next"]})
    assert again.json() == body


def test_since_starts_at_events_ingested_from_then(
    client: TestClient, session: Session, as_super: dict[str, str]
) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    batches = [
        ingest_events(session, [event("acme", start), event("acme", start)], now=start + timedelta(hours=hour))
        for hour in range(3)
    ]
    session.commit()
    since = (start + timedelta(hours=1)).isoformat()
    assert follow(client, as_super, until=4, since=since)[0] == feed_order(session, set(batches[1] + batches[2]))
    # Nothing ingested yet at `since`: the answer is empty and its cursor waits at `since`.
    later = (start + timedelta(days=1)).isoformat()
    seen, last = follow(client, as_super, since=later)
    assert seen == []
    (new_id,) = ingest_events(session, [event("acme", start)], now=start + timedelta(days=2))
    session.commit()
    assert follow(client, as_super, url=last, until=1)[0] == [new_id]


def test_a_cursor_into_purged_history_is_gone_with_the_oldest_since(
    client: TestClient, session: Session, as_super: dict[str, str]
) -> None:
    old = utcnow() - timedelta(days=60)
    ingest_events(session, [event("acme", old) for _ in range(3)], now=old)
    session.commit()
    first = poll(client, as_super, {"limit": 2})
    kept = ingest_events(session, [event("acme", utcnow())])
    session.commit()
    set_default_retention(session, SUPER, 30)
    purge_expired(session, SUPER)
    gone = client.get(FEED, headers=as_super, params={"after": first["next"]})
    assert gone.status_code == 410
    oldest = session.execute(select(col(AuditLog.ingested_at)).where(col(AuditLog.id).in_(kept))).scalar_one()
    restarted = poll(client, as_super, {"since": gone.json()["since"]})
    assert datetime.fromisoformat(gone.json()["since"]) <= oldest
    assert kept[0] in {item["id"] for item in restarted["items"]}


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after": "not-a-cursor"}, "after"),
        ({"after": "eyJwIjoiYSIsImkiOjF9"}, "after"),  # {"p":"a","i":1}
        ({"since": "yesterday"}, "since"),
        ({"format": "xml"}, "format"),
        ({"format": "jsonl"}, "format"),
        ({"tenant_id": "a\x00b"}, "tenant_id"),
    ],
)
def test_bad_input_is_422_naming_the_parameter(
    client: TestClient, as_super: dict[str, str], params: dict[str, Any], loc: str
) -> None:
    response = client.get(FEED, headers=as_super, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", loc]


def test_reading_needs_audit_read(client: TestClient, make_token: Any) -> None:
    token = make_token("super_admin", scope="audit:export")
    assert client.get(FEED, headers={"Authorization": f"Bearer {token}"}).status_code == 403
    assert client.get(FEED).status_code == 401


def test_polls_are_recorded_once_per_collector_and_hour(session: Session, world: World) -> None:
    filters = AuditFilters(tenant_id="acme")
    rows = session.connection().execute(select(col(AuditLog.id)).where(col(AuditLog.tenant_id) == "acme").limit(2))
    page = FeedPage(items=rows.all(), next=FeedCursor())
    hour = datetime(2026, 3, 5, 10, tzinfo=UTC)
    first = record_poll(session, SUPER, filters, "json", page, now=hour + timedelta(minutes=5))
    assert first is not None
    assert record_poll(session, SUPER, filters, "json", page, now=hour + timedelta(minutes=50)) is None
    other = record_poll(session, SUPER, AuditFilters(), "json", page, now=hour + timedelta(minutes=51))
    assert other is not None  # another feed of the same caller is another collector
    later = record_poll(session, SUPER, filters, "json", page, now=hour + timedelta(hours=1, minutes=1))
    assert later is not None
    recorded = session.get(AuditLog, later)
    assert recorded is not None
    assert recorded.action == "audit.feed"
    assert recorded.tenant_id == "acme"
    assert recorded.details["filters"] == {"tenant_id": "acme"}
    assert recorded.details["read"] == {"events": 2, "first_id": page.items[0].id, "last_id": page.items[1].id}
    assert recorded.details["previous"] == {"hour": hour.isoformat(), "polls": 2, "events": 4}
    feed_events = select(col(AuditLog.id)).where(col(AuditLog.action) == "audit.feed")
    assert len(session.execute(feed_events).all()) == 3


def test_the_hours_later_polls_are_counted_after_their_answer(
    client: TestClient, world: World, session: Session, as_super: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hour's first poll of a collector is recorded before it is answered; its later polls in the
    hour only add to the counts, after their answer; a remembered hour gone stale still gets its record."""
    import audit_app.api.feed_routes as feed_routes

    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    monkeypatch.setattr(feed_routes, "utcnow", lambda: hour + timedelta(minutes=30))
    deferred: list[Any] = []

    def later(poll: Any) -> BackgroundTask:
        deferred.append(poll)
        return BackgroundTask(poll)

    monkeypatch.setattr(feed_routes, "BackgroundTask", later)
    feed_records = select(col(AuditLog.id)).where(col(AuditLog.action) == "audit.feed")
    params = {"tenant_id": "acme", "limit": 2}

    def counts() -> tuple[int, int]:
        session.expire_all()
        (collector,) = session.execute(select(FeedCollector)).scalars().all()
        return collector.polls, collector.events

    for _ in range(3):
        assert client.get(FEED, headers=as_super, params=params).status_code == 200
    assert len(deferred) == 2
    assert counts() == (3, 6)
    assert len(session.execute(feed_records).all()) == 1
    # The collector's row gone (this process still remembers the hour): the poll is recorded again.
    session.execute(delete(FeedCollector))
    session.commit()
    assert client.get(FEED, headers=as_super, params=params).status_code == 200
    assert len(deferred) == 3
    assert counts() == (1, 2)
    assert len(session.execute(feed_records).all()) == 2


def test_ocsf_on_the_feed_and_the_export(
    client: TestClient, world: World, session: Session, as_super: dict[str, str]
) -> None:
    params = {"tenant_id": "acme", "limit": 10}
    answer = poll(client, as_super, {**params, "format": "ocsf"})
    ids = [event["metadata"]["uid"] for event in answer["items"] if event["unmapped"]["action"] != "audit.feed"]
    assert ids == feed_order(session, world.of("acme"))
    by_action = {event["unmapped"]["action"]: event for event in answer["items"]}
    assert (by_action["user.login"]["class_uid"], by_action["user.login"]["activity_id"]) == (3002, 1)
    assert by_action["role.assign"]["type_uid"] == 300501
    assert by_action["user.delete"]["status_id"] == 2
    assert by_action["user.delete"]["http_request"]["user_agent"] == "curl/8.0"
    assert by_action["role.assign"]["src_endpoint"]["ip"] == "10.0.0.1"
    assert "format=ocsf" in client.get(FEED, headers=as_super, params={**params, "format": "ocsf"}).headers["link"]
    exported = client.get(EXPORT, headers=as_super, params={"tenant_id": "acme", "format": "ocsf"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    assert ".ocsf.jsonl" in exported.headers["content-disposition"]
    lines = [json.loads(line) for line in exported.text.splitlines()]
    lines = [line for line in lines if line["unmapped"]["action"] != "audit.feed"]  # the poll above, recorded
    assert {line["metadata"]["uid"] for line in lines} == world.of("acme")
    assert all(line["metadata"]["tenant_uid"] == "acme" and line["metadata"]["version"] == "1.5.0" for line in lines)


def test_the_catalog_lists_every_action_and_the_uncatalogued_ones_in_scope(
    client: TestClient, world: World, as_super: dict[str, str], as_acme: dict[str, str]
) -> None:
    body = client.get(CATALOG_URL, headers=as_super).json()
    assert body["ocsf_version"] == "1.5.0"
    actions = {entry["action"]: entry for entry in body["actions"]}
    assert set(ACTIONS) <= set(actions)
    assert actions["user.password_reset"] == {
        "action": "user.password_reset",
        "description": "A user's password was reset",
        "ocsf_class_uid": 3001,
        "ocsf_class_name": "Account Change",
        "ocsf_category_uid": 3,
        "activity_id": 4,
        "activity_name": "Password Reset",
        "type_uid": 300104,
        "security_relevant": True,
    }
    unknown = {entry["action"]: entry for entry in body["uncatalogued"]}
    assert set(unknown) == {"apikey.revoke", "initech.secret", "umbrella.only"}
    assert {(entry["type_uid"], entry["activity_name"]) for entry in unknown.values()} == {(600399, "Other")}
    assert client.get(CATALOG_URL, headers=as_acme).json()["uncatalogued"] == []  # no other tenant's actions


@pytest.mark.postgres
def test_a_running_transaction_holds_back_only_the_feed_of_its_own_database(
    client: TestClient, session: Session, as_super: dict[str, str], database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's horizon")
    elsewhere = psycopg.connect(PG_ADMIN_URL)  # another database of the same cluster
    here = psycopg.connect(psycopg_url(database_url))
    try:
        elsewhere.execute("SELECT pg_current_xact_id()")  # a transaction with an id, left open
        (first,) = ingest_events(session, [event("acme", datetime(2026, 3, 9, tzinfo=UTC))])
        session.commit()
        seen, last = follow(client, as_super, until=1)
        assert seen == [first]
        here.execute("SELECT pg_current_xact_id()")  # now one in this database, older than the next event
        (second,) = ingest_events(session, [event("acme", datetime(2026, 3, 9, tzinfo=UTC))])
        session.commit()
        held = client.get(last, headers=as_super).json()
        assert [item["id"] for item in held["items"] if item["action"] != "audit.feed"] == []
        here.rollback()
        assert follow(client, as_super, url=last, until=1)[0] == [second]
    finally:
        elsewhere.close()
        here.close()


def test_feed_json_is_the_validated_answers_json(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    """The feed serialises its rows directly (each `details` as the JSON text stored): the same JSON
    values, key order and field formats as validating them as FeedAnswer gives."""
    from audit_app.api.schemas import FeedAnswer
    from audit_app.audit.feed import read_feed

    odd = [
        {"big": 10**20, "f": 1.5, "tiny": 1e-07, "whole": 2.0, "u": "ü 名前 🙂", "nested": {"b": [1, None], "a": True}},
        {},
        {"quote": 'say "hi"', "ctl": "\x01\n\t", "sep": "\u2028"},
    ]
    events = [event("acme", datetime(2026, 3, 2, 12, 0, n, tzinfo=UTC)) for n in range(3)]  # microsecond 0
    events = [e.model_copy(update={"details": details}) for e, details in zip(events, odd, strict=True)]
    ingest_events(session, events)
    session.commit()
    page = read_feed(session, SUPER, AuditFilters(), FeedCursor(), 1000)  # before the poll records audit.feed
    response = client.get(FEED, headers=as_super, params={"limit": 1000})
    assert response.status_code == 200
    expected = FeedAnswer.model_validate({"items": page.items, "next": page.next.encode()}, from_attributes=True)
    answer, validated = response.json(), json.loads(expected.model_dump_json())
    assert answer == validated
    assert [list(item) for item in answer["items"]] == [list(item) for item in validated["items"]]
    stored = sorted(json.dumps(item["details"], sort_keys=True) for item in answer["items"])
    assert stored == sorted(json.dumps(details, sort_keys=True) for details in odd)


def test_feed_event_dicts_are_built_by_one_presized_display() -> None:
    """`_event_dicts` makes each event's dict by one display of at most 15 pairs (CPython builds a
    longer one key by key and merges a second dict into it), then stores the other fields in order."""
    import dis

    import orjson

    from audit_app.api.event_json import PUBLIC_FIELDS, TIME_INDEXES, _event_dicts

    assert not {op.opname for op in dis.get_instructions(_event_dicts)} & {"MAP_ADD", "DICT_UPDATE"}
    times = {index: datetime(2026, 3, 2, index, tzinfo=UTC) for index in TIME_INDEXES}  # as read by psycopg
    row = (*(times.get(n, f"value {n}") for n in range(len(PUBLIC_FIELDS))), 7)
    (made,) = _event_dicts([row], orjson.Fragment)
    assert list(made) == list(PUBLIC_FIELDS)
    assert orjson.dumps(made["details"]) == b"value 15"  # the stored JSON text, as it is
    assert [made[name] for name in PUBLIC_FIELDS if name != "details"] == [
        value for name, value in zip(PUBLIC_FIELDS, row, strict=False) if name != "details"
    ]


@pytest.mark.postgres
def test_the_json_answers_rows_are_read_in_binary_format(session: Session, database_url: str) -> None:
    """On PostgreSQL the page the JSON answer is written from arrives in the binary format (times and
    numbers as their machine form, nothing to parse); the page read for models keeps the text format."""
    if not database_url.startswith("postgresql"):
        pytest.skip("psycopg's result formats")
    from sqlalchemy import event as sa_event

    from audit_app.audit.feed import read_feed

    ingest_events(session, [event("acme", datetime(2026, 3, 2, 12, 0, n, tzinfo=UTC)) for n in range(2)])
    session.commit()
    formats: list[int] = []

    def page_format(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "ORDER BY" in statement:
            formats.append(cursor.pgresult.fformat(0))

    engine = session.get_bind()
    sa_event.listen(engine, "after_cursor_execute", page_format)
    try:
        as_json = read_feed(session, SUPER, AuditFilters(), FeedCursor(), 1000, details_as_json_text=True)
        as_models = read_feed(session, SUPER, AuditFilters(), FeedCursor(), 1000)
    finally:
        sa_event.remove(engine, "after_cursor_execute", page_format)
    assert formats == [psycopg.pq.Format.BINARY, psycopg.pq.Format.TEXT]
    assert [row[1] for row in as_json.items] == [row.timestamp for row in as_models.items]
    assert all(type(row) is tuple for row in as_json.items)  # the driver's rows, not wrapped in SQLAlchemy's
