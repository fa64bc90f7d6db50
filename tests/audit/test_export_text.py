"""The export's text: formula cells, CSV and JSON Lines chunks, file names (audit.export)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from audit_app.audit.export import export_filename, jsonl_chunks
from audit_app.audit.filters import AuditFilters
from audit_app.models import EXPORT_COLUMNS
from tests.oracles import csv_chunks, neutralise_cell


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
