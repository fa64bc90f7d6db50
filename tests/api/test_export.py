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
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from audit_app.audit.access import Client, ExportUnavailableError, export_events
from audit_app.audit.export import VALIDATED_COLUMNS
from audit_app.audit.filters import AuditFilters
from audit_app.audit.ingest import ingest_events, new_event_id
from audit_app.auth import Principal
from audit_app.models import EXPORT_COLUMNS, AuditEventIn, AuditLog
from tests.api.helpers import LIST, World, at, event, write

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


def test_the_unguarded_columns_cannot_hold_a_formula() -> None:
    """The CSV export does not neutralise VALIDATED_COLUMNS: each is checked on the way in."""
    assert {"id", "actor_type", "result"} == VALIDATED_COLUMNS  # a column added here needs its check below
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", new_event_id())
    for name in ("actor_type", "result"):
        for value in ("=1+1", "-2", "", "user "):
            with pytest.raises(ValidationError):
                AuditEventIn(tenant_id="acme", actor_id="a", action="x", **{name: value})


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


def _records(session: Session, action: str) -> list[AuditLog]:
    stmt = select(AuditLog).where(col(AuditLog.action) == action).order_by(col(AuditLog.timestamp))
    return list(session.execute(stmt).scalars())


def test_exports_are_audited_with_filters_and_row_count(
    client: TestClient, as_acme: dict[str, str], as_super: dict[str, str], world: World, session: Session
) -> None:
    response = client.get(EXPORT, params={"result": "success", "format": "jsonl"}, headers=as_acme)
    assert len(response.text.splitlines()) == 2
    (audit,) = _records(session, "audit.export")
    assert audit.tenant_id == "acme"  # the tenant admin can see its own export events
    recorded = dict(audit.details["filters"])
    end = datetime.fromisoformat(recorded.pop("end_time"))  # the window resolved when the export started
    assert recorded == {"result": "success"}
    assert audit.timestamp - timedelta(minutes=1) < end <= audit.timestamp
    assert audit.details["format"] == "jsonl"
    assert datetime.fromisoformat(audit.details["started_at"]) == end
    assert audit.actor_id == "tenant_admin-local"
    (ended,) = _records(session, "audit.export.end")
    assert (ended.tenant_id, ended.resource_id, ended.details["export_id"]) == ("acme", audit.id, audit.id)
    assert ended.details["rows"] == 2
    assert ended.details["complete"] is True
    assert ended.details["filters"] == audit.details["filters"]
    mine = listed(client, as_acme, action="audit.export")
    assert [item["id"] for item in mine] == [audit.id]
    csv_rows = parse_csv(client.get(EXPORT, params={"action": "user.login"}, headers=as_acme).text)
    latest = listed(client, as_acme, action="audit.export")[0]
    assert latest["details"]["filters"].keys() == {"action", "end_time"}
    assert latest["details"]["filters"]["action"] == "user.login"
    assert latest["details"]["format"] == "csv"
    latest_end = listed(client, as_acme, action="audit.export.end")[0]
    assert latest_end["resource_id"] == latest["id"]
    assert latest_end["details"]["rows"] == len(csv_rows) == 2


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


QUITTER = Principal(sub="quitter", email="", role="super_admin", scopes=frozenset({"audit:export"}))


@pytest.mark.usefixtures("world")
def test_the_export_is_recorded_before_its_first_byte_and_ended_when_the_client_hangs_up(session: Session) -> None:
    """A client that hangs up mid-download leaves its audit.export record, ended as incomplete."""
    export = export_events(QUITTER, AuditFilters(tenant_id="acme"), "jsonl", Client("192.0.2.1", "agent"))
    (started,) = _records(session, "audit.export")  # written before anything was streamed
    assert (started.id, started.actor_id, started.ip_address) == (export.record_id, "quitter", "192.0.2.1")
    assert _records(session, "audit.export.end") == []
    next(export.chunks)
    export.chunks.close()  # what the server does when the client disconnects
    session.expire_all()
    (ended,) = _records(session, "audit.export.end")
    assert ended.details["complete"] is False
    assert (ended.resource_id, ended.actor_id, ended.ip_address) == (started.id, "quitter", "192.0.2.1")


@pytest.mark.usefixtures("world")
def test_a_failing_stream_ends_its_record_as_incomplete(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        yield export_row_failure()

    def export_row_failure() -> str:
        raise RuntimeError("the read database went away")

    monkeypatch.setattr("audit_app.audit.access.jsonl_export", broken)  # SQLite's JSON Lines
    monkeypatch.setattr("audit_app.audit.access.copy_export", broken)  # PostgreSQL's (COPY)
    export = export_events(QUITTER, AuditFilters(), "jsonl")
    with pytest.raises(RuntimeError):
        list(export.chunks)
    (ended,) = _records(session, "audit.export.end")
    assert (ended.resource_id, ended.details["complete"], ended.details["rows"]) == (export.record_id, False, 0)


def test_an_export_whose_record_cannot_be_written_is_refused_with_503(
    client: TestClient, as_super: dict[str, str], session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(session, [event("acme", at(1, 9))])
    # A subject the record cannot hold (over 255 characters): nothing may leave unaudited.
    with pytest.raises(ExportUnavailableError):
        export_events(Principal(sub="s" * 300, email="", role="super_admin"), AuditFilters(), "csv")

    def locked(*_args: Any, **_kwargs: Any) -> str:
        raise OperationalError("INSERT INTO audit_log", None, Exception("database is locked"))

    monkeypatch.setattr("audit_app.audit.access.record_access", locked)  # the primary refuses the write
    response = client.get(EXPORT, headers=as_super)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert "acme" not in response.text
    assert _records(session, "audit.export") == []


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
