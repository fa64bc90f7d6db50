"""Straightforward implementations the product's fast paths must equal (test oracles, not product code)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from sqlmodel import Session, select

from audit_app.audit.export import FORMULA_PREFIXES
from audit_app.audit.scope import Scope
from audit_app.auth import Principal
from audit_app.models import EXPORT_COLUMNS


def neutralise_cell(value: str) -> str:
    """Prefix a quote to text a spreadsheet would run as a formula (CSV injection)."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def csv_chunks(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """CSV text in chunks, written by csv.DictWriter: a header named like the API fields, then one line per row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for count, row in enumerate(rows, start=1):
        writer.writerow({k: neutralise_cell(v) if isinstance(v, str) else v for k, v in row.items()})
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def distinct_values_scan(session: Session, principal: Principal, column: Any) -> list[str]:
    """The SELECT DISTINCT that the product's skip-scan `distinct_values` must equal."""
    stmt = select(column).where(Scope.of(principal).condition(), column.is_not(None)).distinct().order_by(column)
    return [value for value in session.execute(stmt).scalars().all() if value]
