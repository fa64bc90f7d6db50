"""The fast read paths give exactly what the straightforward queries give (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from audit_app.api import create_api
from audit_app.api.event_json import _times
from audit_app.audit import query
from audit_app.audit.daily import rebuild_daily_counts, recount_daily_counts
from audit_app.audit.export import csv_export, export_row, iter_events, jsonl_chunks, jsonl_export, read_ahead
from audit_app.audit.filters import AuditFilters, where_clause
from audit_app.audit.ingest import ingest_events
from audit_app.audit.query import (
    NEWEST_FIRST,
    CursorError,
    list_actions,
    list_events,
    list_resource_types,
    list_results,
)
from audit_app.audit.stats import ACCESS_ACTIONS, compute_stats, compute_stats_scan
from audit_app.auth import Principal
from audit_app.db import stored_json, stored_time
from audit_app.models import (
    AuditDailyActor,
    AuditDailyCount,
    AuditEventIn,
    AuditHourlyActor,
    AuditHourlyCount,
    AuditLog,
    utc,
)
from audit_app.seed import TENANT_PARTNER, generate_events
from audit_app.settings import Settings
from tests.helpers import TokenFactory
from tests.oracles import csv_chunks, distinct_values_scan
from tests.principals import ACME, NORTHWIND, SUPER

NOW = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
EMPTY_TENANT = Principal(sub="e", email="", role="tenant_admin", tenant_id="nobody")
NO_SCOPE = Principal(sub="n", email="", role="partner_admin", partner_id=None)
PRINCIPALS = (SUPER, NORTHWIND, ACME, EMPTY_TENANT, NO_SCOPE)


def seed_events(session: Session, count: int = 1500) -> None:
    events = generate_events(count, seed=5, now=NOW)
    for offset in range(0, len(events), 500):
        ingest_events(session, events[offset : offset + 500], now=NOW)
        session.commit()


def plain_page(session: Session, principal: Principal, filters: AuditFilters, page: int, per_page: int) -> list[str]:
    """The straightforward OFFSET query's ids."""
    stmt = (
        select(AuditLog.id)  # type: ignore[call-overload]
        .where(*where_clause(session, principal, filters))
        .order_by(*NEWEST_FIRST)
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return list(session.execute(stmt).scalars().all())


def test_pages_match_plain_offset_and_totals_are_capped(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_events(session, 600)
    monkeypatch.setattr(query, "COUNT_CAP", 100)
    for principal, filters in (
        (SUPER, AuditFilters()),
        (NORTHWIND, AuditFilters(result="success")),
        (ACME, AuditFilters(start_time=NOW - timedelta(days=30))),
        (SUPER, AuditFilters(action="user.login", partner_id="bluesky")),
    ):
        everything = plain_page(session, principal, filters, 1, 10_000)
        for page, per_page in ((1, 50), (2, 50), (7, 13), (40, 25)):
            result = list_events(session, principal, filters, page=page, per_page=per_page)
            assert [e.id for e in result.items] == plain_page(session, principal, filters, page, per_page)
            cap = (page - 1) * per_page + 100
            if len(everything) <= cap:
                assert (result.total, result.total_exact) == (len(everything), True)
            else:
                assert (result.total, result.total_exact) == (cap, False)
                assert result.pages >= page  # the caller can always reach the next page


def test_searches_count_to_a_smaller_cap(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Free text and exclusions recheck every match they count: their total stops sooner."""
    seed_events(session, 300)
    monkeypatch.setattr(query, "COUNT_CAP", 200)
    monkeypatch.setattr(query, "SEARCH_COUNT_CAP", 20)
    for filters, cap in ((AuditFilters(), 200), (AuditFilters(not_result="denied"), 20), (AuditFilters(q="user"), 20)):
        assert len(plain_page(session, SUPER, filters, 1, 10_000)) > 10 + cap  # the sample exceeds the cap
        result = list_events(session, SUPER, filters, page=2, per_page=10)
        assert (result.total, result.total_exact) == (10 + cap, False)


def test_cursor_walks_the_whole_list_in_order_with_ties(session: Session) -> None:
    seed_events(session, 300)
    same_moment = NOW - timedelta(hours=2)
    tied = [
        AuditEventIn(tenant_id="acme", actor_id=f"tie-{n}", action="user.login", timestamp=same_moment)
        for n in range(23)
    ]
    ingest_events(session, tied, now=NOW)
    session.commit()
    for principal, filters in (
        (SUPER, AuditFilters()),
        (NORTHWIND, AuditFilters(result="success")),
        (ACME, AuditFilters()),
    ):
        expected = plain_page(session, principal, filters, 1, 10_000)
        seen: list[str] = []
        cursor = None
        for page in itertools.count(1):
            result = list_events(session, principal, filters, page=page, per_page=7, cursor=cursor)
            seen += [e.id for e in result.items]
            cursor = result.next_cursor
            if cursor is None:
                break
        assert seen == expected


SAME_SHAPES: tuple[tuple[Principal, AuditFilters, AuditFilters], ...] = (
    (SUPER, AuditFilters(), AuditFilters()),
    (SUPER, AuditFilters(tenant_id="acme"), AuditFilters(tenant_id="globex")),
    (SUPER, AuditFilters(action="user.login,user.logout"), AuditFilters(action="user.login,role.assign,user.delete")),
    (SUPER, AuditFilters(resource_id="usr_00*"), AuditFilters(resource_id="usr_01*")),
    (SUPER, AuditFilters(actor_email="OMAR*"), AuditFilters(actor_email="a*")),
    (SUPER, AuditFilters(ip_address="10.0.0.0/8"), AuditFilters(ip_address="203.0.0.0/8")),
    (
        SUPER,
        AuditFilters(not_result="denied", not_action="user.login"),
        AuditFilters(not_result="failure,denied", not_action="role.assign"),
    ),
    (SUPER, AuditFilters(q="login"), AuditFilters(q="role")),
    (SUPER, AuditFilters(partner_id="northwind"), AuditFilters(partner_id="bluesky")),
    (NORTHWIND, AuditFilters(start_time=NOW - timedelta(days=30)), AuditFilters(start_time=NOW - timedelta(days=9))),
    (ACME, AuditFilters(end_time=NOW - timedelta(days=2)), AuditFilters(end_time=NOW - timedelta(days=20))),
)


@pytest.mark.parametrize(("principal", "first", "second"), SAME_SHAPES)
def test_pages_run_again_from_their_compiled_shape_equal_sqlalchemys(
    session: Session, principal: Principal, first: AuditFilters, second: AuditFilters
) -> None:
    """A page read as stored (its statement compiled once per shape, run again with new values) holds
    the rows, total and cursor of the page SQLAlchemy builds and runs each time, cursor pages included."""
    seed_events(session, 400)
    query.PAGE_STATEMENTS._shapes.clear()
    for filters in (first, second, first):
        for page, per_page in ((1, 20), (3, 7)):
            shaped = list_events(session, principal, filters, page=page, per_page=per_page, as_stored=True)
            built = list_events(session, principal, filters, page=page, per_page=per_page)
            assert [(e.id, e.found) for e in shaped.items] == [(e.id, e.found) for e in built.items]
            assert (shaped.total, shaped.total_exact, shaped.next_cursor) == (
                built.total,
                built.total_exact,
                built.next_cursor,
            )
            if built.next_cursor:
                after = list_events(session, principal, filters, per_page=per_page, cursor=built.next_cursor)
                again = list_events(
                    session, principal, filters, per_page=per_page, cursor=built.next_cursor, as_stored=True
                )
                assert [e.id for e in again.items] == [e.id for e in after.items]
    assert len(query.PAGE_STATEMENTS._shapes) <= 2  # one shape without a cursor, one with
    assert all(shape is not None for shape in query.PAGE_STATEMENTS._shapes.values())


@pytest.mark.parametrize("bad", ["x", "bm90IGpzb24", "WzEsMl0", "WyJub3QgYSB0aW1lIiwiaWQiXQ"])
def test_foreign_cursor_is_refused(session: Session, bad: str) -> None:
    with pytest.raises(CursorError):
        list_events(session, SUPER, AuditFilters(), cursor=bad)


def test_api_pages_by_cursor_and_says_when_total_is_capped(
    settings: Settings, session: Session, make_token: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_events(session, 120)
    monkeypatch.setattr(query, "COUNT_CAP", 50)
    headers = {"Authorization": f"Bearer {make_token('super_admin')}"}
    with TestClient(create_api()) as client:
        first = client.get("/api/v1/admin/audit/", params={"per_page": 40}, headers=headers).json()
        assert (first["total"], first["total_exact"]) == (50, False)
        second = client.get(
            "/api/v1/admin/audit/", params={"per_page": 40, "cursor": first["next_cursor"]}, headers=headers
        ).json()
        by_offset = client.get("/api/v1/admin/audit/", params={"per_page": 40, "page": 2}, headers=headers).json()
        assert [e["id"] for e in second["items"]] == [e["id"] for e in by_offset["items"]]
        narrow = client.get("/api/v1/admin/audit/", params={"tenant_id": "acme"}, headers=headers).json()
        assert narrow["total_exact"] is True
        bad = client.get("/api/v1/admin/audit/", params={"cursor": "not-a-cursor"}, headers=headers)
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_distinct_values_equal_select_distinct(session: Session) -> None:
    seed_events(session, 800)
    odd = [
        AuditEventIn(tenant_id="acme", actor_id="a", action="zzz.custom", resource_type=None),
        AuditEventIn(tenant_id="acme", actor_id="a", action="aaa.custom", resource_type=""),
        AuditEventIn(tenant_id="stark", actor_id="b", action="only.stark", resource_type="Ünicode type"),
    ]
    ingest_events(session, odd, now=NOW)
    session.commit()
    for principal in PRINCIPALS:
        assert list_actions(session, principal) == distinct_values_scan(session, principal, AuditLog.action)
        assert list_resource_types(session, principal) == distinct_values_scan(
            session, principal, AuditLog.resource_type
        )
        assert list_results(session, principal) == distinct_values_scan(session, principal, AuditLog.result)
    assert "only.stark" not in list_actions(session, ACME)
    assert list_actions(session, EMPTY_TENANT) == []


def stats_windows() -> list[AuditFilters]:
    midnight = NOW.replace(hour=0, minute=0)
    return [
        AuditFilters(),
        AuditFilters(start_time=NOW - timedelta(days=7), end_time=NOW),
        AuditFilters(start_time=NOW - timedelta(days=90)),
        AuditFilters(end_time=NOW - timedelta(days=3, hours=5)),
        AuditFilters(start_time=midnight - timedelta(days=10), end_time=midnight - timedelta(days=2)),
        AuditFilters(start_time=midnight - timedelta(days=4, hours=3), end_time=midnight - timedelta(days=3, hours=20)),
        AuditFilters(start_time=midnight - timedelta(days=5, hours=1), end_time=midnight - timedelta(days=4)),
        AuditFilters(tenant_id="acme", start_time=NOW - timedelta(days=30), end_time=NOW - timedelta(minutes=1)),
        AuditFilters(partner_id="bluesky", start_time=NOW - timedelta(days=14, minutes=7)),
        AuditFilters(start_time=NOW + timedelta(days=1), end_time=NOW + timedelta(days=2)),
    ]


def test_stats_from_daily_counts_equal_the_full_scan(session: Session) -> None:
    seed_events(session)
    for principal in (SUPER, NORTHWIND, ACME, EMPTY_TENANT):
        for filters in stats_windows():
            if filters.tenant_id and principal is not SUPER:
                continue
            if filters.partner_id and principal in (NORTHWIND, ACME, EMPTY_TENANT):
                continue
            assert compute_stats(session, principal, filters) == compute_stats_scan(session, principal, filters)


def test_daily_counts_stay_exact_through_ingest_rebuild_and_recount(session: Session) -> None:
    seed_events(session, 700)
    later = generate_events(300, seed=8, now=NOW, days=3)
    ingest_events(session, later, now=NOW)  # lands on days that already have counts
    session.commit()
    filters = AuditFilters(start_time=NOW - timedelta(days=60))
    expected = compute_stats_scan(session, SUPER, filters)
    assert compute_stats(session, SUPER, filters) == expected
    rebuild_daily_counts(session)
    session.commit()
    assert compute_stats(session, SUPER, filters) == expected
    recount_daily_counts(session, "acme", NOW)
    session.commit()
    assert compute_stats(session, SUPER, filters) == expected


def _aggregate_tables(session: Session) -> dict[str, list[tuple[object, ...]]]:
    tables: tuple[Any, ...] = (AuditDailyCount, AuditDailyActor, AuditHourlyCount, AuditHourlyActor)
    return {
        table.__tablename__: sorted(tuple(row) for row in session.execute(select(*table.__table__.columns)).all())
        for table in tables
    }


def test_counts_kept_per_batch_equal_a_rebuild_row_for_row(session: Session) -> None:
    """Batches landing on buckets that already have counts: counts add up, an actor keeps the greatest email."""
    at = NOW - timedelta(hours=2)

    def event(actor: str, email: str | None, minutes: int, action: str = "user.login") -> AuditEventIn:
        return AuditEventIn(
            tenant_id="acme",
            partner_id=TENANT_PARTNER["acme"],
            actor_id=actor,
            actor_email=email,
            action=action,
            timestamp=at + timedelta(minutes=minutes),
        )

    batches = [
        [event("u1", "b@example.com", 0), event("u2", None, 1), event("u1", None, 2, "user.logout")],
        [event("u1", "a@example.com", 3), event("u2", "z@example.com", 70), event("u3", None, 4)],
        [event("u1", "c@example.com", 5), event("u2", None, 6), *generate_events(200, seed=5, now=NOW, days=2)],
    ]
    for batch in batches:
        ingest_events(session, batch, now=NOW)
        session.commit()
    kept = _aggregate_tables(session)
    daily_actors = {
        (row[2], row[3]) for row in kept["audit_daily_actor"] if row[0] == "acme" and row[2] in ("u1", "u2")
    }
    assert daily_actors == {("u1", "c@example.com"), ("u2", "z@example.com")}
    rebuild_daily_counts(session)
    session.commit()
    assert _aggregate_tables(session) == kept


def test_stats_order_is_by_count_then_name(session: Session) -> None:
    seed_events(session, 400)
    stats = compute_stats(session, SUPER, AuditFilters())
    for key in ("by_action", "by_result", "by_resource_type"):
        ranked = list(stats[key].items())
        assert ranked == sorted(ranked, key=lambda item: (-item[1], item[0]))


def tricky_events() -> list[AuditEventIn]:
    """Values a CSV writer must quote or a spreadsheet would run."""
    base = NOW - timedelta(hours=1)
    odd = [
        ("=HYPERLINK(1)", "agent, with comma", {"b": 1, "a": "x,y"}),
        ("+plus", 'quote " inside', {"nested": {"z": [1, 2.5, None], "ä": "ü"}}),
        ("-minus", "line\nbreak", {}),
        ("@at", "tab\tand\r\ncrlf", {"reason": 'say "hi"'}),
        ("plain", "", {"k": "=1+1"}),
        ("Ünïcödé, 名前", None, {"emoji": "🙂"}),
    ]
    return [
        AuditEventIn(
            tenant_id="acme",
            partner_id="northwind",
            actor_id=actor,
            actor_email=f"{n}@acme.example" if n % 2 else None,
            action="user.update" if n % 3 else "-weird.action",
            resource_type="user",
            resource_id="\tTAB" if n == 1 else f"res,{n}",
            request_id='"quoted"' if n == 2 else None,
            user_agent=agent,
            timestamp=base + timedelta(seconds=n),
            details=details,
        )
        for n, (actor, agent, details) in enumerate(odd)
    ]


def test_csv_export_equals_the_row_by_row_writer(session: Session) -> None:
    seed_events(session, 900)
    ingest_events(session, tricky_events(), now=NOW)
    session.commit()
    for principal, filters in (
        (SUPER, AuditFilters()),
        (NORTHWIND, AuditFilters(result="success")),
        (ACME, AuditFilters(start_time=NOW - timedelta(days=2))),
        (EMPTY_TENANT, AuditFilters()),
    ):
        counted: list[int] = []
        fast = "".join(csv_export(session, principal, filters, rows_per_chunk=97, on_rows=counted.append))
        plain = "".join(csv_chunks(export_row(event) for event in iter_events(session, principal, filters)))
        assert fast == plain
        assert sum(counted) == len(plain_page(session, principal, filters, 1, 100_000))


def test_jsonl_export_equals_the_row_by_row_lines(session: Session) -> None:
    seed_events(session, 900)
    ingest_events(session, tricky_events(), now=NOW)
    ingest_events(session, json_hostile_events(), now=NOW)
    session.commit()
    for principal, filters, order in (
        (SUPER, AuditFilters(), "desc"),
        (SUPER, AuditFilters(action="json.hostile"), "asc"),
        (NORTHWIND, AuditFilters(result="success"), "desc"),
        (ACME, AuditFilters(start_time=NOW - timedelta(days=2)), "asc"),
        (EMPTY_TENANT, AuditFilters(), "desc"),
    ):
        counted: list[int] = []
        fast = "".join(
            jsonl_export(session, principal, filters, rows_per_chunk=97, on_rows=counted.append, order=order)
        )
        events = list(iter_events(session, principal, filters, order=order))
        assert fast == "".join(jsonl_chunks(export_row(event) for event in events))
        assert sum(counted) == len(events)


def json_hostile_events() -> list[AuditEventIn]:
    """Values JSON must escape, NULL in every nullable column, and documents only Python spells right."""
    cells = ['q"uote', "back\\slash", "ctl\x01\x1f\x7f", "nl\nand\r\t", "sep\u2028\u2029", "Ünï 名前 🙂", "null"]
    details: list[dict[str, Any]] = [
        {"aa": 1, "b": 2, "B": 3, "é": 4},
        {"f": 1.5, "tiny": 1e-07, "big": 1e20, "n": 12345678901234567890, "t": True, "none": None},
        {"list": ["a.b", 1, None], "objs": [{"y": 1, "x": 2}], "esc": 'q"\\/'},
    ]
    return [
        AuditEventIn(
            tenant_id="acme",
            partner_id="northwind",
            actor_id=cell,
            actor_email=None if n % 2 else f"{n}@acme.example",
            action="json.hostile",
            resource_type=None if n % 3 == 0 else cell,
            resource_id=None if n % 3 == 1 else cell,
            ip_address=None if n % 2 else "10.0.0.1",
            user_agent=None if n % 2 == 0 else cell,
            request_id=None if n % 3 == 2 else cell,
            session_id=None if n % 2 else cell,
            timestamp=NOW - timedelta(minutes=30, seconds=n),
            details=details[n % len(details)],
        )
        for n, cell in enumerate(cells)
    ]


def test_read_ahead_keeps_order_raises_and_stops_when_closed() -> None:
    assert [list(b) for b in read_ahead(iter([[1], [2, 3], [4]]))] == [[1], [2, 3], [4]]

    def failing() -> Iterator[list[int]]:
        yield [1]
        raise RuntimeError("connection lost")

    with pytest.raises(RuntimeError, match="connection lost"):
        list(read_ahead(failing()))
    fetched: list[int] = []

    def endless() -> Iterator[list[int]]:
        for n in itertools.count():
            fetched.append(n)
            yield [n]

    reader = read_ahead(endless())
    assert next(reader) == [0]
    reader.close()
    assert not any(t.name == "export-read-ahead" and t.is_alive() for t in threading.enumerate())
    assert len(fetched) <= 4, "the thread read only a couple of batches ahead"


def test_stats_leave_out_access_records_on_both_paths(session: Session) -> None:
    seed_events(session, 700)
    reads = [
        AuditEventIn(
            tenant_id=tenant,
            partner_id="northwind" if tenant == "acme" else "bluesky",
            actor_id=actor,
            action=action,
            result="success",
            timestamp=NOW - timedelta(days=day, hours=3),
        )
        for day in range(5)
        for tenant in ("acme", "wayne")
        for actor, action in (("usr_reader", "audit.view"), ("usr_reader", "audit.export"), ("usr_0001", "audit.view"))
    ]
    ingest_events(session, reads, now=NOW)
    session.commit()
    for principal in (SUPER, NORTHWIND, ACME):
        for filters in stats_windows():
            if (filters.tenant_id or filters.partner_id) and principal is not SUPER:
                continue
            fast = compute_stats(session, principal, filters, exclude_actions=ACCESS_ACTIONS)
            assert fast == compute_stats_scan(session, principal, filters, exclude_actions=ACCESS_ACTIONS)
            everything = compute_stats_scan(session, principal, filters)
            assert not set(fast["by_action"]) & ACCESS_ACTIONS
            assert "usr_reader" not in {a["actor_id"] for a in fast["top_actors"]}
            left_out = sum(n for action, n in everything["by_action"].items() if action in ACCESS_ACTIONS)
            assert fast["total"] == everything["total"] - left_out
    window = AuditFilters(start_time=NOW - timedelta(days=7))
    assert "usr_reader" in {a["actor_id"] for a in compute_stats(session, SUPER, window)["top_actors"]}


class _Moment(datetime):
    """A datetime subclass (as some drivers return): `utc` keeps its type, as `replace` does."""


def test_utc_of_a_naive_time_is_replace_with_utc_exactly() -> None:
    """`models.utc` reaches `value.replace(tzinfo=UTC)` by timedelta arithmetic: same instant, zone
    object, fields, fold and type, from the first to the last representable microsecond."""
    step = timedelta(days=36_524, microseconds=123_457)
    samples = [datetime.min, datetime.max, datetime(1970, 1, 1), datetime(2026, 12, 1, 19, 47, 58, 877_415)]
    samples += [datetime.min + step * n for n in range(100)]
    samples += [datetime(2026, 11, 1, 1, 30, fold=1), _Moment(2026, 3, 4, 5, 6, 7, 8)]
    for naive in samples:
        made, expected = utc(naive), naive.replace(tzinfo=UTC)
        assert (made, repr(made), made.fold, type(made)) == (expected, repr(expected), expected.fold, type(expected))
        assert made.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        '{"a": [1, 2.5, null, true, false, {"b": "\\u00e9 \\ud83d\\ude42"}], "big": 100000000000000000000}',
        '{"a": 1, "a": 2}',
        "NaN",
        "[1e400, -Infinity]",
        '"\\ud800"',
        " {}",
        "{}\n",
        "\ufeff{}",
        "",
        "[1, 2",
        '{"a": 1} trailing',
        "nul",
        "[" * 5_000 + "]" * 5_000,
    ],
)
def test_stored_json_is_json_loads(text: str) -> None:
    """`db.stored_json` scans a stored document with `json.loads`'s own scanner: the same value,
    and for text that is not one JSON document, the same error."""

    def outcome(decode: Any) -> Any:
        try:
            value = decode(text)
        except RecursionError:
            return RecursionError
        except json.JSONDecodeError as exc:
            return (str(exc), exc.pos)
        return (repr(value), type(value))

    assert outcome(stored_json) == outcome(json.loads)
    assert stored_json({"already": "decoded"}) == {"already": "decoded"}  # psycopg's jsonb values pass through


TIME_TEXTS = [
    "2026-12-01 19:47:58.877415",  # SQLAlchemy's storage format on SQLite
    "2026-12-01 19:47:58.000000",
    "2026-12-01 19:47:58",
    "2026-12-01T19:47:58Z",
    "2026-12-01T19:47:58+01:00",
    "2026-12-01T19:47:58+0100",
    "2026-12-01T19:47:58-01",
    "2026-12-01 19:47:58.877415+00:00",
    "2026-12-01",  # a date alone parses naive even with a zone appended
    "2026-W48-2",
    "2026-12-01T10",
    "20261201T101010",
    "2026-12-01T19:47:58.1234567",
    "0001-01-01 00:00:00.000000",
    "9999-12-31 23:59:59.999999",
]


@pytest.mark.parametrize("texts", [[text] for text in TIME_TEXTS] + [TIME_TEXTS, TIME_TEXTS[:3], TIME_TEXTS[::-1]])
def test_list_times_are_stored_times(texts: list[str]) -> None:
    """`event_json._times` (a column of stored times parsed with `+00:00` appended) gives exactly
    `db.stored_time` of each, whatever form the text has; aware UTC datetimes are kept as they are."""
    rows = [(None, text) for text in texts]
    made = _times(rows, 1)
    expected = [stored_time(text) for text in texts]
    assert [(repr(m), m.tzinfo is UTC) for m in made] == [(repr(e), True) for e in expected]
    aware = [(None, value) for value in expected]
    assert all(kept is value for kept, value in zip(_times(aware, 1), expected, strict=True))
    with pytest.raises(ValueError, match="Invalid isoformat"):  # an unreadable time fails as stored_time does
        _times([(None, texts[0]), (None, "yesterday")], 1)
    assert _times([], 1) == []
