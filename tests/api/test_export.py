"""`GET /api/v1/admin/audit/export`: CSV and JSON Lines of exactly the filtered list, audited."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from audit_app.api.routes import _export_stream
from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import ingest_events
from audit_app.auth import Principal
from audit_app.models import EXPORT_COLUMNS, AuditEventIn, AuditLog
from tests.api.conftest import LIST, World, at, event, write

EXPORT = LIST + "export"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def parse_csv(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == EXPORT_COLUMNS
    return list(reader)


def listed(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    body = client.get(LIST, params={"per_page": 500, **params}, headers=headers).json()
    items: list[dict[str, Any]] = body["items"]
    assert body["total"] == len(items)
    return items


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(
    "params",
    [{}, {"tenant_id": "acme"}, {"partner_id": "northwind", "result": "success"}, {"start_time": "2026-03-02"}],
)
def test_csv_rows_are_exactly_the_filtered_list(
    client: TestClient, as_super: dict[str, str], params: dict[str, str]
) -> None:
    items = listed(client, as_super, **params)  # before the export, which adds an audit.export event
    response = client.get(EXPORT, params=params, headers=as_super)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="audit-[A-Za-z0-9._-]+\.csv"', disposition)
    if "tenant_id" in params:
        assert "tenant-acme" in disposition
    rows = parse_csv(response.text)
    assert [row["id"] for row in rows] == [item["id"] for item in items]  # same order: newest first
    for row, item in zip(rows, items, strict=True):
        assert ISO_Z.match(row["timestamp"])
        assert ISO_Z.match(row["ingested_at"])
        assert json.loads(row["details"]) == item["details"]
        for name in ("tenant_id", "actor_id", "action", "result", "hash"):
            assert row[name] == item[name]
        assert row["resource_type"] == (item["resource_type"] or "")


def test_formula_cells_are_neutralised(client: TestClient, as_super: dict[str, str], session: Session) -> None:
    (event_id,) = write(
        session,
        [
            event(
                "acme",
                at(1),
                actor_email='=HYPERLINK("http://evil")',
                resource_id="+1+1",
                resource_type="-2",
                user_agent="@SUM(A1)",
                request_id="\tTAB",
                session_id="\rCR",
                actor_id='plain, with "quotes"\nand a newline',
                details={"note": "=1+1"},
            )
        ],
    )
    for fmt in ("csv",):
        (row,) = parse_csv(client.get(EXPORT, params={"format": fmt, "tenant_id": "acme"}, headers=as_super).text)
        assert row["id"] == event_id
        assert row["actor_email"] == '\'=HYPERLINK("http://evil")'
        assert row["resource_id"] == "'+1+1"
        assert row["resource_type"] == "'-2"
        assert row["user_agent"] == "'@SUM(A1)"
        assert row["request_id"] == "'\tTAB"
        assert row["session_id"] == "'\rCR"
        assert row["actor_id"] == 'plain, with "quotes"\nand a newline'
        assert json.loads(row["details"]) == {"note": "=1+1"}  # a JSON object cannot start a formula
    jsonl = client.get(EXPORT, params={"format": "jsonl", "action": "user.login"}, headers=as_super)
    (line,) = jsonl.text.splitlines()
    assert json.loads(line)["actor_email"] == '=HYPERLINK("http://evil")'  # JSON is data, not a sheet


@pytest.mark.usefixtures("world")
def test_jsonl_is_one_object_per_event(client: TestClient, as_super: dict[str, str]) -> None:
    items = listed(client, as_super, tenant_id="acme")
    response = client.get(EXPORT, params={"format": "jsonl", "tenant_id": "acme"}, headers=as_super)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["content-disposition"].endswith('.jsonl"')
    records = [json.loads(line) for line in response.text.splitlines()]
    assert [r["id"] for r in records] == [i["id"] for i in items]
    assert all(set(r) == set(EXPORT_COLUMNS) for r in records)
    assert all(isinstance(r["details"], dict) for r in records)
    assert {r["action"] for r in records} == {"user.login", "role.assign", "user.delete"}


@pytest.mark.usefixtures("world")
def test_unknown_format_and_bad_filters_are_422(client: TestClient, as_super: dict[str, str]) -> None:
    for params in ({"format": "xlsx"}, {"start_time": "2026-03-02", "end_time": "2026-03-01"}, {"action": "\x00"}):
        response = client.get(EXPORT, params=params, headers=as_super)
        assert response.status_code == 422, params


def test_exports_are_audited_with_filters_and_row_count(
    client: TestClient, as_acme: dict[str, str], as_super: dict[str, str], world: World, session: Session
) -> None:
    response = client.get(EXPORT, params={"result": "success", "format": "jsonl"}, headers=as_acme)
    assert len(response.text.splitlines()) == 2
    exports = session.execute(select(AuditLog).where(AuditLog.action == "audit.export")).scalars().all()  # type: ignore[arg-type]
    assert len(exports) == 1
    (audit,) = exports
    assert audit.tenant_id == "acme"  # the tenant admin can see its own export events
    recorded = dict(audit.details["filters"])
    end = datetime.fromisoformat(recorded.pop("end_time"))  # the window resolved when the export started
    assert recorded == {"result": "success"}
    assert audit.timestamp - timedelta(minutes=1) < end <= audit.timestamp
    assert audit.details["rows"] == 2
    assert audit.details["format"] == "jsonl"
    assert audit.details["complete"] is True
    assert audit.actor_id == "tenant_admin-local"
    mine = listed(client, as_acme, action="audit.export")
    assert [item["id"] for item in mine] == [audit.id]
    csv_rows = parse_csv(client.get(EXPORT, params={"action": "user.login"}, headers=as_acme).text)
    latest = listed(client, as_acme, action="audit.export")[0]
    assert latest["details"]["rows"] == len(csv_rows) == 2
    assert latest["details"]["filters"].keys() == {"action", "end_time"}
    assert latest["details"]["filters"]["action"] == "user.login"
    assert latest["details"]["format"] == "csv"


def test_large_exports_stream_every_row_without_a_cap(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    events = [
        AuditEventIn(tenant_id=f"t{n % 3}", actor_id=f"a{n % 17}", action="user.login", timestamp=at(1 + n % 20))
        for n in range(4500)
    ]
    ingest_events(session, events)
    session.commit()
    csv_rows = parse_csv(client.get(EXPORT, headers=as_super).text)
    assert len(csv_rows) == 4500 == len({row["id"] for row in csv_rows})
    stamps = [(row["timestamp"], row["id"]) for row in csv_rows]
    assert stamps == sorted(stamps, reverse=True)
    jsonl = client.get(EXPORT, params={"format": "jsonl", "tenant_id": "t1"}, headers=as_super).text.splitlines()
    assert len(jsonl) == 1500


@pytest.mark.usefixtures("world")
def test_an_interrupted_export_is_still_audited(session: Session) -> None:
    """A client that hangs up mid-download leaves an audit.export event marked incomplete."""
    principal = Principal(sub="quitter", email="", role="super_admin", scopes=frozenset({"audit:export"}))
    stream = _export_stream(principal, AuditFilters(tenant_id="acme"), "jsonl", ("192.0.2.1", "agent"))
    next(stream)
    stream.close()  # what the server does when the client disconnects
    (audit,) = session.execute(select(AuditLog).where(AuditLog.action == "audit.export")).scalars().all()  # type: ignore[arg-type]
    assert audit.details["complete"] is False
    assert audit.actor_id == "quitter"
    assert audit.ip_address == "192.0.2.1"


def test_export_can_narrow_to_one_request_within_scope(client: TestClient, session: Session, make_token: Any) -> None:
    write(
        session,
        [
            event("acme", at(1, 9), request_id="req-1"),
            event("acme", at(1, 10), request_id="req-1"),
            event("acme", at(1, 11), request_id="req-2"),
            event("globex", at(1, 12), request_id="req-1"),
        ],
    )
    acme = {"Authorization": f"Bearer {make_token('tenant_admin', tenant_id='acme')}"}
    rows = parse_csv(client.get(EXPORT, params={"request_id": "req-1"}, headers=acme).text)
    assert len(rows) == 2
    assert {(row["tenant_id"], row["request_id"]) for row in rows} == {("acme", "req-1")}
    response = client.get(EXPORT, params={"request_id": "req\x00"}, headers=acme)
    assert response.status_code == 422
