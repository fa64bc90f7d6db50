"""PostgreSQL's COPY export writes exactly the bytes of the row-by-row Python export (CSV and JSON Lines)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from audit_app.audit.export import (
    copy_export,
    export_row,
    iter_events,
    jsonl_chunks,
)
from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import ingest_events
from audit_app.auth import Principal
from audit_app.models import AuditEventIn, AuditLog
from audit_app.seed import generate_events
from tests.oracles import csv_chunks

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
SUPER = Principal(sub="s", email="", role="super_admin")
PARTNER = Principal(sub="p", email="", role="partner_admin", partner_id="northwind")
TENANT = Principal(sub="t", email="", role="tenant_admin", tenant_id="acme")
NOBODY = Principal(sub="e", email="", role="tenant_admin", tenant_id="nobody")

CELLS = [
    "=cmd|' /C calc'!A0",
    "+1",
    "-2",
    "@SUM(1)",
    "\tTAB",
    "\rCR",
    'say "hi"',
    "line\nbreak",
    "a,b",
    "Ünï 名前 🙂",
    "mark\x02inside",  # the byte COPY writes around the details: its block is done row by row
    "\x02",  # (an odd number of cells: each is in both tenants)
    "back\\slash",  # JSON escapes it, a backslash and the controls
    "unit\x1fsep",
    "",
]
DETAILS: list[dict[str, Any]] = [
    {},
    {"b": 1, "a": "x,y"},
    {"aa": 1, "b": 2, "B": 3, "é": 4, "z": 5},  # jsonb orders keys by length first; Python by code point
    {"nested": {"z": [1, 2.5, None], "ä": "ü"}},
    {"f": 1.5, "tiny": 1e-07, "big": 1e20, "whole": 2.0, "neg": -0.25},
    {"list": ["a.b", 1, True, None], "objs": [{"y": 1, "x": 2}]},
    {"ctl": "\x01\x1f\x7f", "esc": 'q"\\/', "nl": "a\nb\r\tc", "sep": "\u2028\u2029"},
    {"n": 12345678901234567890, "t": True, "f": False, "null": None, "empty": "", "formula": "=1+1"},
    {"k": "=HYPERLINK()", "u": "日本語", "emoji": "🙂"},
    {"k}": "}", "brace": '}",', "q": '"}"', "end": {"}": {}}},  # the CSV COPY finds the document's end by `}",`
]


def hostile_events() -> list[AuditEventIn]:
    """Cells a spreadsheet would run, that CSV must quote, and documents only Python spells right."""
    base = NOW - timedelta(hours=2)
    events = []
    for n, cell in enumerate(CELLS * 2):
        events.append(
            AuditEventIn(
                tenant_id="acme" if n % 2 else "globex",
                partner_id="northwind",
                actor_id=cell or "actor",
                actor_email=f"{n}@acme.example" if n % 3 else None,
                action="-weird.action" if n % 3 == 0 else "user.update",
                resource_type=cell or None,
                resource_id=cell or f"res,{n}",
                request_id=cell or None,
                session_id=cell if n % 2 else None,
                user_agent=cell or None,
                ip_address="203.0.113.7" if n % 2 else None,
                timestamp=base + timedelta(seconds=n),
                details=DETAILS[n % len(DETAILS)],
            )
        )
    return events


JSON_CELLS = [
    '"',
    "\\",
    "\\N",  # COPY's text format writes NULL as \N (the JSON Lines COPY as null): a value like it is escaped
    "x\\N",
    "\\\\N",
    "null",  # the JSON Lines COPY writes NULL as null, and a nullable value between quotes
    '"null"',
    "NULL",
    "%s %(x)s %%",  # the JSON lines are filled into a %-template
    "\x7f del",  # JSON escapes no DEL
    "\u2028\u2029 \ufeffbom",
    "".join(map(chr, range(1, 32))),  # every control character: COPY escapes six of them, JSON all
    '\\"}',
    "tab\tand\nlines\r\n",
    "\b\f\v",
    'ü"\\é 名前 🙂',
]
NULLABLE = (
    "partner_id",
    "actor_email",
    "resource_type",
    "resource_id",
    "ip_address",
    "user_agent",
    "request_id",
    "session_id",
)
CLEAN = {name: f"clean-{name}" for name in NULLABLE} | {"ip_address": "198.51.100.4", "partner_id": "northwind"}


def json_events() -> list[AuditEventIn]:
    """Values JSON escapes in every free-text column, NULL in each nullable column, and `null` as a value."""
    base = NOW - timedelta(hours=1)
    events = []
    for n, cell in enumerate(JSON_CELLS):
        texts = {name: cell for name in NULLABLE if name != "ip_address"}
        events.append(
            AuditEventIn(
                tenant_id=f"json{n}",  # a tenant keeps its partner: one tenant per partner_id
                actor_id=cell,
                timestamp=base + timedelta(seconds=n),
                action="json.cell",
                details=DETAILS[n % len(DETAILS)],
                **texts,
            )
        )
    for n, name in enumerate(NULLABLE):  # each nullable column NULL alone, the others clean
        values: dict[str, Any] = CLEAN | {name: None}
        events.append(
            AuditEventIn(
                tenant_id="acme",
                actor_id="clean",
                timestamp=base + timedelta(minutes=1, seconds=n),
                action="json.null",
                **values,
            )
        )
    events.append(
        AuditEventIn(tenant_id="acme", actor_id="all-null", action="json.null", timestamp=base + timedelta(minutes=2))
    )
    for n, cell in enumerate(('"', "\\", "\x01", 'q"q"', "\n")):  # one value with one or two such bytes
        at = base + timedelta(minutes=5, seconds=n)
        events.append(AuditEventIn(tenant_id="acme", actor_id=cell, timestamp=at, action="json.one", **CLEAN))
        values = CLEAN | {"user_agent": cell}
        events.append(AuditEventIn(tenant_id="acme", actor_id="one", timestamp=at, action="json.one", **values))
    events.append(  # never-NULL columns holding the text null, the rest clean
        AuditEventIn(
            tenant_id="null", actor_id="null", timestamp=base + timedelta(minutes=3), action="json.null", **CLEAN
        )
    )
    events.append(
        AuditEventIn(
            tenant_id="acme",
            actor_id="docs",
            timestamp=base + timedelta(minutes=4),
            action="json.docs",
            details={"bs": "C:\\dir\\N\\\\", "pct": "%s", "nul": "null", "q": '"\\N"'},
            **CLEAN,
        )
    )
    return events


EDGE_TIMES = [
    datetime(2026, 11, 27, 12, 0, tzinfo=UTC),  # .000000: PostgreSQL's text of it has no fraction at all
    datetime(2026, 11, 27, 12, 0, 0, 100000, tzinfo=UTC),  # trailing zeros
    datetime(2026, 11, 27, 12, 0, 0, 120000, tzinfo=UTC),
    datetime(2026, 11, 27, 12, 0, 0, 1, tzinfo=UTC),  # leading zeros
    datetime(2026, 11, 27, 12, 0, 0, 999999, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # year, month and day boundaries
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, 500000, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # a European daylight-saving change: UTC has none
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


def edge_time_events() -> list[AuditEventIn]:
    """Times whose ISO spelling PostgreSQL could get wrong: no or trailing-zero fractions, boundaries."""
    return [
        AuditEventIn(tenant_id="acme", partner_id="northwind", actor_id="clock", action="time.edge", timestamp=when)
        for when in EDGE_TIMES
    ]


@pytest.fixture
def filled(session: Session) -> Session:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    events = generate_events(600, seed=5, now=NOW)
    for offset in range(0, len(events), 300):
        ingest_events(session, events[offset : offset + 300], now=NOW)
        session.commit()
    ingest_events(session, hostile_events(), now=NOW)
    session.commit()
    ingest_events(session, edge_time_events(), now=NOW.replace(microsecond=120000))
    session.commit()
    ingest_events(session, json_events(), now=NOW)
    session.commit()
    return session


CASES = [
    (SUPER, AuditFilters()),
    (PARTNER, AuditFilters(result="success")),
    (TENANT, AuditFilters(start_time=NOW - timedelta(days=2))),
    (SUPER, AuditFilters(tenant_id="acme", action="-weird.action")),
    (SUPER, AuditFilters(actor_id="Ünï 名前 🙂", end_time=NOW)),
    (SUPER, AuditFilters(action="json.cell")),  # only rows that need JSON escapes: every block halved to single rows
    (SUPER, AuditFilters(action="json.null")),
    (NOBODY, AuditFilters()),
]


@pytest.mark.parametrize(("principal", "filters"), CASES)
def test_copy_csv_is_byte_for_byte_the_python_csv(filled: Session, principal: Principal, filters: AuditFilters) -> None:
    counted: list[int] = []
    fast = b"".join(copy_export(filled, principal, filters, "csv", on_rows=counted.append, rows_per_chunk=97))
    plain = "".join(csv_chunks(export_row(event) for event in iter_events(filled, principal, filters))).encode()
    assert fast == plain
    assert sum(counted) == len(list(iter_events(filled, principal, filters)))


@pytest.mark.parametrize(("principal", "filters"), CASES)
def test_copy_json_lines_are_byte_for_byte_the_python_lines(
    filled: Session, principal: Principal, filters: AuditFilters
) -> None:
    counted: list[int] = []
    fast = b"".join(copy_export(filled, principal, filters, "jsonl", on_rows=counted.append, rows_per_chunk=97))
    plain = "".join(jsonl_chunks(export_row(event) for event in iter_events(filled, principal, filters))).encode()
    assert fast == plain
    assert sum(counted) == len(list(iter_events(filled, principal, filters)))


def test_json_cells_and_nulls_are_exported_at_all(filled: Session) -> None:
    """The comparison above covers escapes, NULL in each nullable column and the text null."""
    lines = (
        b"".join(copy_export(filled, SUPER, AuditFilters(), "jsonl")).decode().split("\n")[:-1]
    )  # not splitlines: U+2028 is in a value
    records = [json.loads(line) for line in lines]
    cells = {record["actor_id"]: record for record in records if record["action"] == "json.cell"}
    assert set(cells) == set(JSON_CELLS)
    assert all(record["session_id"] == record["partner_id"] == cell for cell, record in cells.items())
    nulls = [record for record in records if record["action"] == "json.null" and record["actor_id"] == "clean"]
    assert sorted(name for record in nulls for name in NULLABLE if record[name] is None) == sorted(NULLABLE)
    (everything_null,) = (record for record in records if record["actor_id"] == "all-null")
    assert all(everything_null[name] is None for name in NULLABLE)
    (docs,) = (record for record in records if record["actor_id"] == "docs")
    assert docs["details"]["bs"] == "C:\\dir\\N\\\\"


def test_hostile_rows_are_exported_at_all(filled: Session) -> None:
    """The comparison above covers the hostile rows: they are in the export, neutralised."""
    text = b"".join(copy_export(filled, SUPER, AuditFilters(tenant_id="globex"), "csv")).decode()
    assert "'=cmd|' /C calc'!A0" in text
    assert '"\'\rCR"' in text
    assert '"line\nbreak"' in text


def test_edge_times_are_exported_at_all(filled: Session) -> None:
    """The comparison above covers times with no fraction, trailing zeros and boundaries."""
    text = b"".join(copy_export(filled, SUPER, AuditFilters(action="time.edge"), "csv")).decode()
    for when in EDGE_TIMES:
        assert f",{when.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}," in text
    assert text.count(",2026-11-27T15:30:00.120000Z,") == len(EDGE_TIMES)  # ingested_at


def test_a_copy_closed_early_leaves_the_connection_usable(filled: Session) -> None:
    """Closing the export mid-COPY (a cancelled download) cancels the statement and reads its rest."""
    chunks = copy_export(filled, SUPER, AuditFilters(), "jsonl", rows_per_chunk=50)
    next(chunks)
    chunks.close()
    assert filled.execute(select(func.count()).select_from(AuditLog)).scalar_one() > 50
