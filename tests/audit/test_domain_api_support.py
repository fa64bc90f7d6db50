"""Domain functions behind the API where the logic is not obvious: windows, scopes, export text, tokens."""

from __future__ import annotations

import csv
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from audit_app.audit.export import export_filename, jsonl_chunks
from audit_app.audit.filters import AuditFilters, check_filters_in_scope
from audit_app.audit.ingest import authorize_ingest, batch_hash, ingest_batch, ingest_events, insert_tenants
from audit_app.audit.stats import _window_range, bucketed
from audit_app.auth import (
    AuthError,
    ForbiddenError,
    Principal,
    decode_download_token,
    decode_token,
    download_signing_key,
    issue_download_token,
)
from audit_app.db import engine_for
from audit_app.models import EXPORT_COLUMNS, AuditEventIn, AuditLog
from audit_app.settings import Settings
from tests.oracles import csv_chunks, neutralise_cell
from tests.principals import ACME, NORTHWIND, SUPER


def test_window_range_end_is_exclusive_and_open_sides_follow_the_data() -> None:
    window = AuditFilters(start_time=datetime(2026, 3, 1), end_time=datetime(2026, 3, 3))
    assert _window_range(None, None, window) == (date(2026, 3, 1), date(2026, 3, 2))
    late = AuditFilters(start_time=datetime(2026, 3, 1), end_time=datetime(2026, 3, 3, 0, 0, 1))
    assert _window_range(None, None, late) == (date(2026, 3, 1), date(2026, 3, 3))
    open_end = AuditFilters(start_time=datetime(2026, 3, 1))
    assert _window_range(date(2026, 2, 1), date(2026, 3, 4), open_end) == (date(2026, 3, 1), date(2026, 3, 4))
    assert _window_range(None, None, AuditFilters()) is None
    assert _window_range(date(2026, 3, 5), date(2026, 3, 5), AuditFilters()) == (date(2026, 3, 5), date(2026, 3, 5))
    assert _window_range(None, None, AuditFilters(end_time=datetime(1, 1, 1))) is None


def test_a_huge_empty_window_has_no_buckets() -> None:
    huge = AuditFilters(start_time=datetime(1, 1, 2), end_time=datetime(9999, 1, 1))
    assert bucketed({}, huge) == ("year", [])
    size, rows = bucketed({date(2026, 3, 1): {"success": 1}}, huge)
    assert (size, [row["date"] for row in rows]) == ("year", ["2026-01-01"])


@pytest.mark.parametrize(
    ("first", "last", "size", "buckets"),
    [
        (date(2026, 3, 1), date(2026, 3, 1), "day", 1),
        (date(2025, 3, 1), date(2026, 3, 1), "day", 366),
        (date(2024, 1, 1), date(2026, 3, 1), "week", 113),
        (date(2000, 1, 1), date(2026, 3, 1), "month", 315),
        (date(1950, 1, 1), date(2026, 3, 1), "year", 77),
        (date(1, 1, 1), date(9999, 12, 31), "year", 2),  # only the years holding events
    ],
)
def test_the_bucket_size_keeps_the_answer_small(first: date, last: date, size: str, buckets: int) -> None:
    daily = {first: {"success": 2}}
    daily.setdefault(last, {})["failure"] = 1
    chosen, rows = bucketed(daily, AuditFilters())
    assert (chosen, len(rows)) == (size, buckets)
    assert sum(row["count"] for row in rows) == 3
    assert rows[0]["by_result"].get("success") == 2
    assert date.fromisoformat(rows[-1]["date"]) <= last


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    daily = {date(2024, 1, 3): {"success": 1}, date(2026, 3, 4): {"success": 1}}  # a Wednesday each
    size, rows = bucketed(daily, AuditFilters())
    assert size == "week"
    assert rows[0]["date"] == "2024-01-01"
    assert {date.fromisoformat(row["date"]).weekday() for row in rows} == {0}
    size, rows = bucketed({date(2001, 5, 9): {"success": 1}, date(2026, 3, 4): {"error": 1}}, AuditFilters())
    assert size == "month"
    assert (rows[0]["date"], rows[-1]["date"]) == ("2001-05-01", "2026-03-01")


def test_filters_take_naive_times_as_utc() -> None:
    filters = AuditFilters(start_time=datetime(2026, 3, 1, 12), end_time=datetime(2026, 3, 1, 14, tzinfo=UTC))
    assert filters.start_time == datetime(2026, 3, 1, 12, tzinfo=UTC)
    shifted = AuditFilters(start_time=datetime(2026, 3, 1, 12, tzinfo=UTC) + timedelta(hours=1))
    assert shifted.active() == {"start_time": "2026-03-01T13:00:00+00:00"}


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("a=1", "a=1")],
)
def test_neutralise_cell(cell: str, expected: str) -> None:
    assert neutralise_cell(cell) == expected


def test_csv_and_jsonl_chunks() -> None:
    row = dict.fromkeys(EXPORT_COLUMNS, "v") | {"actor_email": "=evil", "details": '{"a": 1}'}
    text = "".join(csv_chunks(iter([row] * 1200)))
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == 1200
    assert rows[0]["actor_email"] == "'=evil"
    lines = "".join(jsonl_chunks(iter([row] * 3))).splitlines()
    assert len(lines) == 3
    assert '"details": {"a": 1}' in lines[0]
    assert "".join(csv_chunks(iter([]))) == ",".join(EXPORT_COLUMNS) + "\r\n"


def test_export_filename_is_ascii_and_carries_the_window() -> None:
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    name = export_filename(AuditFilters(tenant_id="acme", start_time=start, end_time=end), "csv")
    assert name == "audit-tenant-acme-20261101T0000Z-20261201T0000Z.csv"
    filters = AuditFilters(tenant_id="acmé/../x", action="role.assign", start_time=start, end_time=end)
    name = export_filename(filters, "csv")
    assert name == "audit-tenant-acm__.._x-action-role.assign-20261101T0000Z-20261201T0000Z.csv"
    assert name.isascii()
    long = export_filename(AuditFilters(actor_id="a" * 300, end_time=end), "zip")
    assert long == f"audit-actor-{'a' * 40}-begin-20261201T0000Z.zip"


def test_scope_checks_of_filters(session: Session) -> None:
    ingest_events(
        session,
        [
            AuditEventIn(tenant_id="acme", partner_id="northwind", actor_id="a", action="x"),
            AuditEventIn(tenant_id="initech", partner_id="southwind", actor_id="a", action="x"),
        ],
    )
    session.commit()
    check_filters_in_scope(session, NORTHWIND, AuditFilters(tenant_id="acme", partner_id="northwind"))
    check_filters_in_scope(session, ACME, AuditFilters(tenant_id="acme", partner_id="northwind"))
    check_filters_in_scope(session, SUPER, AuditFilters(tenant_id="anything", partner_id="anyone"))
    for principal, filters in (
        (NORTHWIND, AuditFilters(tenant_id="initech")),
        (NORTHWIND, AuditFilters(tenant_id="unknown")),
        (NORTHWIND, AuditFilters(partner_id="southwind")),
        (ACME, AuditFilters(tenant_id="initech")),
        (ACME, AuditFilters(partner_id="southwind")),
    ):
        with pytest.raises(ForbiddenError):
            check_filters_in_scope(session, principal, filters)


def test_authorize_ingest_fills_the_partner_of_registered_tenants(session: Session) -> None:
    events = [AuditEventIn(tenant_id="newco", actor_id="a", action="x")]
    with pytest.raises(ForbiddenError):
        authorize_ingest(session, NORTHWIND, events)  # not registered yet
    insert_tenants(session, {"newco": "northwind"})
    (authorized,) = authorize_ingest(session, NORTHWIND, events)
    assert authorized.partner_id == "northwind"
    assert authorize_ingest(session, SUPER, events) == events
    reader = Principal(sub="r", email="", role="super_admin", scopes=frozenset({"audit:read"}))
    with pytest.raises(ForbiddenError):
        authorize_ingest(session, reader, events)


def test_batch_hash_tells_batches_apart() -> None:
    one = [AuditEventIn(tenant_id="t", actor_id="a", action="x")]
    assert batch_hash(one) == batch_hash([AuditEventIn(tenant_id="t", actor_id="a", action="x")])
    assert batch_hash(one) != batch_hash([AuditEventIn(tenant_id="t", actor_id="a", action="y")])
    assert batch_hash(one) != batch_hash(one * 2)


def test_ingest_batch_replays_by_caller_and_key(session: Session) -> None:
    events = [AuditEventIn(tenant_id="t", actor_id="a", action="x")]
    first = ingest_batch(session, SUPER, events, idempotency_key="k")
    again = ingest_batch(session, SUPER, events, idempotency_key="k")
    assert (again.ids, again.replayed, first.replayed) == (first.ids, True, False)
    other = Principal(sub="other", email="", role="super_admin", scopes=SUPER.scopes)
    assert ingest_batch(session, other, events, idempotency_key="k").ids != first.ids


def test_download_tokens_have_their_own_key(settings: Settings) -> None:
    assert settings.jwt_secret
    assert download_signing_key(settings) != settings.jwt_secret
    token = issue_download_token(settings, ACME)
    principal = decode_download_token(token, settings)
    assert (principal.role, principal.tenant_id, principal.scopes) == ("tenant_admin", "acme", {"audit:export"})
    with pytest.raises(AuthError):
        decode_token(token, settings)
    settings.download_secret = "dedicated-" + "z" * 32
    assert download_signing_key(settings) == settings.download_secret
    with pytest.raises(AuthError):
        decode_download_token(token, settings)  # signed with the previous key
    with pytest.raises(ForbiddenError):
        issue_download_token(
            settings, Principal(sub="r", email="", role="super_admin", scopes=frozenset({"audit:read"}))
        )


def test_concurrent_deliveries_of_one_key_write_once(settings: Settings) -> None:
    """Two deliveries racing with the same key: one writes, the other gets the same ids."""
    engine = engine_for(settings.database_url)
    events = [AuditEventIn(tenant_id="t", actor_id="a", action=f"x.{n}") for n in range(50)]
    barrier = threading.Barrier(2)

    def deliver() -> list[str]:
        with Session(engine) as own:
            barrier.wait()
            return ingest_batch(own, SUPER, events, idempotency_key="race").ids

    with ThreadPoolExecutor(2) as pool:
        first, second = (future.result() for future in [pool.submit(deliver), pool.submit(deliver)])
    assert first == second
    with Session(engine) as check:
        actions = [row[0] for row in check.execute(select(col(AuditLog.action))).all()]
        assert sorted(actions) == sorted([f"x.{n}" for n in range(50)] + ["tenant.create"])  # "t" registered once
