"""Exporting the filtered view: streamed rows, flattened for CSV or JSON Lines."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import queue
import re
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, TypeVar

import psycopg
from psycopg import pq
from psycopg.abc import PQGen
from psycopg.pq.abc import PGconn, PGresult
from psycopg.waiting import Ready, Wait
from sqlalchemy import String, Text, case, cast, func, literal, select
from sqlmodel import Session

from audit_app.audit.chain import iso_utc
from audit_app.audit.filters import AuditFilters, where_clause
from audit_app.audit.query import time_order
from audit_app.auth import Principal
from audit_app.db import driver_statement
from audit_app.models import EXPORT_COLUMNS, AuditLog, utc

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
STREAM_BATCH = 2000
EXPORT_FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "ocsf": "application/x-ndjson",
    "bundle": "application/zip",
}
EXPORT_EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "ocsf": "ocsf.jsonl", "bundle": "zip"}
EXCEL_BOM = "\ufeff"  # lets Excel read the CSV as UTF-8
_TIME_COLUMNS = ("timestamp", "ingested_at")
_DETAILS_AT = EXPORT_COLUMNS.index("details")


def export_row(event: AuditLog) -> dict[str, Any]:
    """An event as one flat record: UTC ISO times, `details` as JSON text."""
    row: dict[str, Any] = {}
    for column in EXPORT_COLUMNS:
        value = getattr(event, column)
        if column in _TIME_COLUMNS:
            value = iso_utc(value)
        elif column == "details":
            value = json.dumps(value, sort_keys=True, ensure_ascii=False)
        row[column] = value
    return row


def iter_events(
    session: Session, principal: Principal, filters: AuditFilters, *, order: str = "desc"
) -> Iterator[AuditLog]:
    """Every matching event, newest first (`order="asc"`: oldest first), in batches through a server-side cursor.

    `yield_per` streams (a named cursor on PostgreSQL); the session's identity map holds rows
    weakly, so a batch is freed once the caller has moved past it. (Expunging during the
    iteration would invalidate the identity map the result still loads into.)
    """
    stmt = select(AuditLog).where(*where_clause(session, principal, filters)).order_by(*time_order(order))
    result = session.execute(stmt.execution_options(yield_per=STREAM_BATCH))
    yield from result.scalars()


def json_lines(objects: Iterator[dict[str, Any]]) -> Iterator[str]:
    """JSON Lines in chunks of 500 objects."""
    lines: list[str] = []
    for item in objects:
        lines.append(json.dumps(item, ensure_ascii=False))
        if len(lines) == 500:
            yield "\n".join(lines) + "\n"
            lines.clear()
    if lines:
        yield "\n".join(lines) + "\n"


def jsonl_chunks(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """JSON Lines: one object per event, `details` kept as an object."""
    return json_lines(dict(row, details=json.loads(row["details"])) for row in rows)


def window_stamp(value: datetime | None, unbounded: str) -> str:
    """An instant as it appears in file names, `20261101T0000Z` (minutes, UTC); `unbounded` when None."""
    return utc(value).strftime("%Y%m%dT%H%MZ") if value is not None else unbounded


def export_filename(filters: AuditFilters, extension: str) -> str:
    """A descriptive file name carrying the filters and the time window, e.g.

    `audit-tenant-acme-20261101T0000Z-20261201T0000Z.csv` (`begin` when the window has no start).
    """
    parts = ["audit"]
    for key in ("tenant_id", "partner_id", "action", "result", "actor_id"):
        value = getattr(filters, key)
        if value:
            safe = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "._-" else "_" for ch in value)[:40]
            parts.append(f"{key.removesuffix('_id')}-{safe}")
    parts += [window_stamp(filters.start_time, "begin"), window_stamp(filters.end_time, "now")]
    return "-".join(parts) + f".{extension}"


VALIDATED_COLUMNS = frozenset({"id", "actor_type", "result"})
"""Columns that hold only letters, digits and hyphens, never empty: `id` is a UUID the server makes
(`new_event_id`, or the seed's), `actor_type` and `result` one of `ACTOR_TYPES` / `RESULTS`, checked
by `AuditEventIn` on every way in. Their text cannot start a formula."""
UNFORMULA_COLUMNS = VALIDATED_COLUMNS | {"timestamp", "ingested_at", "details", "hash", "prev_hash", "chain_seq"}
"""Columns whose export text cannot start a formula (ISO times, a JSON object, hex, validated words);
all others are guarded."""
DETAILS_CACHE_SIZE = 50_000
CSV_BATCH = 5000  # rows per server-side cursor fetch: few round trips, memory still flat
CSV_SPECIALS = (",", '"', "\r", "\n")


def _export_text(session: Session, name: str) -> Any:
    """A column as its export text, computed by the database: ISO UTC times with a `Z`, neutralised cells."""
    column = getattr(AuditLog, name)
    if name in _TIME_COLUMNS:
        if session.get_bind().dialect.name == "postgresql":
            return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        return func.replace(cast(column, Text), " ", "T") + "Z"  # stored as naive UTC "YYYY-MM-DD HH:MM:SS.ffffff"
    if name in ("details", "chain_seq"):
        return cast(column, Text)
    text = func.coalesce(column, literal("", String))
    if name in UNFORMULA_COLUMNS:
        return text
    starts_formula = func.substr(text, 1, 1).in_([literal(p, String) for p in FORMULA_PREFIXES])
    return case((starts_formula, literal("'", String) + text), else_=text)  # formula cells quoted


def _quoted(text: str) -> tuple[str, int, int, int]:
    """`text` as csv.writer (QUOTE_MINIMAL) writes it, and how many commas, quotes and CR/LF that holds."""
    if any(ch in text for ch in CSV_SPECIALS):
        text = '"' + text.replace('"', '""') + '"'
    return text, text.count(","), text.count('"'), text.count("\r") + text.count("\n")


_END = object()


def read_ahead(batches: Iterator[T], *, depth: int = 2) -> Generator[T, None, None]:
    """The same batches, the next ones fetched by a thread while the caller works on this one.

    The database (or its driver, which releases the GIL while it waits) then works in parallel
    with the Python that formats rows. Closing the iterator stops the thread before returning,
    so the connection is never used by two threads at once.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    worker = threading.Thread(target=produce, name="export-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def csv_export(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    *,
    rows_per_chunk: int = 1000,
    on_rows: Callable[[int], None] | None = None,
    columns: tuple[str, ...] = EXPORT_COLUMNS,
    on_batch: Callable[[Sequence[Sequence[str]]], None] | None = None,
    order: str = "desc",
) -> Iterator[str]:
    """The CSV export in chunks (header first): the text of csv.DictWriter over `export_row`, much faster.

    Rows come as plain text columns through a server-side cursor (no ORM objects); the database
    formats the times and neutralises formula cells. `details` (stored JSON, re-serialised with
    sorted keys) and `user_agent` repeat a lot, so their quoted CSV form is computed once per
    distinct value; a line is joined directly when no other field needs quoting (checked by
    counting special characters), else written by csv.writer. `on_rows(n)` hears how many events
    each chunk holds, before it is yielded; `on_batch` sees each fetched batch of rows' export text (in `columns`).
    Rows come newest first, or oldest first with `order="asc"`.
    """
    stmt = (
        select(*(_export_text(session, name) for name in columns))
        .where(*where_clause(session, principal, filters))
        .order_by(*time_order(order))
    )
    # Core execution on the session's connection: plain rows, without the ORM's loading layer.
    result = session.connection().execute(stmt.execution_options(stream_results=True, yield_per=CSV_BATCH))
    details_at, agent_at = columns.index("details"), columns.index("user_agent")
    separators = len(columns) - 1
    details_cache: _Memo[str, tuple[str, int, int, int]] = _Memo(lambda stored: _quoted(_sorted_json(stored)))
    agent_cache: _Memo[str, tuple[str, int, int, int]] = _Memo(_quoted)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    lines: list[str] = [buffer.getvalue()]
    header = 1
    for partition in read_ahead(result.partitions()):
        if on_batch is not None:
            on_batch(partition)
        for row in partition:
            record = list(row)
            stored, agent = record[details_at], record[agent_at]
            details, quoted_agent = details_cache[stored], agent_cache[agent]
            record[details_at], record[agent_at] = details[0], quoted_agent[0]
            line = ",".join(record)
            if (
                line.count(",") == separators + details[1] + quoted_agent[1]
                and line.count('"') == details[2] + quoted_agent[2]
                and line.count("\r") + line.count("\n") == details[3] + quoted_agent[3]
            ):
                lines.append(line + "\r\n")
            else:  # another field holds a comma, quote or line break: let csv.writer quote it
                record[agent_at] = agent
                record[details_at] = _sorted_json(stored)
                buffer.seek(0)
                buffer.truncate()
                writer.writerow(record)
                lines.append(buffer.getvalue())
            if len(lines) >= rows_per_chunk:
                if on_rows is not None:
                    on_rows(len(lines) - header)
                yield "".join(lines)
                lines.clear()
                header = 0
    if on_rows is not None:
        on_rows(len(lines) - header)
    yield "".join(lines)


_HEAD_KEYS, _TAIL_KEYS = EXPORT_COLUMNS[:_DETAILS_AT], EXPORT_COLUMNS[_DETAILS_AT + 1 :]
_encode_json = json.JSONEncoder(ensure_ascii=False).encode
"""`json.dumps(value, ensure_ascii=False)` without building an encoder per call."""


def jsonl_export(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    *,
    rows_per_chunk: int = 1000,
    on_rows: Callable[[int], None] | None = None,
    order: str = "desc",
) -> Iterator[str]:
    """The JSON Lines export in chunks: the text of `jsonl_chunks` over `export_row`, much faster.

    Rows come as plain tuples through a server-side cursor (no ORM objects), the times as the
    database's ISO text (as `csv_export`'s). Each line is the JSON of the fields before `details`
    and of those after it, around the document's sorted spelling, computed once per distinct
    document. `on_rows(n)` hears each chunk's row count before it is yielded.
    """
    stmt = (
        select(
            *(
                _export_text(session, name) if name in (*_TIME_COLUMNS, "details") else getattr(AuditLog, name)
                for name in EXPORT_COLUMNS
            )
        )
        .where(*where_clause(session, principal, filters))
        .order_by(*time_order(order))
    )
    result = session.connection().execute(stmt.execution_options(stream_results=True, yield_per=CSV_BATCH))
    spellings: _Memo[str, str] = _Memo(_sorted_json)
    head_keys, tail_keys, details_at = _HEAD_KEYS, _TAIL_KEYS, _DETAILS_AT
    lines: list[str] = []
    for partition in read_ahead(result.partitions()):
        for row in partition:
            head = _encode_json(dict(zip(head_keys, row, strict=False)))
            tail = _encode_json(dict(zip(tail_keys, row[details_at + 1 :], strict=True)))
            lines.append(f'{head[:-1]}, "details": {spellings[row[details_at]]}, {tail[1:]}\n')
            if len(lines) >= rows_per_chunk:
                if on_rows is not None:
                    on_rows(len(lines))
                yield "".join(lines)
                lines.clear()
    if on_rows is not None:
        on_rows(len(lines))
    if lines:
        yield "".join(lines)


# ---------------------------------------------------------------- PostgreSQL: COPY

COPY_FORMATS = ("csv", "jsonl")
COPY_ROWS_PER_CHUNK = 1000  # lines, as csv_export: the export's progress is written per chunk
COPY_BLOCK_ROWS = 250
"""Rows read and formatted at once: a 1,000-row block kept twice the objects alive for Python's
collector and cost a third more CPU per row (chunks are still joined from blocks to COPY_ROWS_PER_CHUNK)."""
_COPY_CSV = "COPY ({query}) TO STDOUT (FORMAT csv)"
DETAILS_MARK = "\x02"
"""Written by COPY before and after the stored `details` (JSON text escapes every control character)."""
MARK_BYTE = DETAILS_MARK.encode()
_FORMULA_CODES = ", ".join(str(ord(prefix)) for prefix in FORMULA_PREFIXES)
_FIRST_PLAIN_CODE = max(ord(prefix) for prefix in FORMULA_PREFIXES) + 1  # 65, "A": no formula starts at or above it
_ISO_UTC = "to_char(timezone('UTC', audit_log.{name}), 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
_QUOTE = "''''"  # SQL for the text ', which neutralises a formula cell


def _copy_text(name: str) -> str:
    """A column as its CSV export text in COPY's SQL: NULL for an empty cell (COPY quotes an empty string)."""
    if name in _TIME_COLUMNS:
        return _ISO_UTC.format(name=name)
    column = f"audit_log.{name}"
    if name in VALIDATED_COLUMNS or name == "hash":  # never NULL nor empty: COPY writes it as it is
        return column
    if name in UNFORMULA_COLUMNS:
        return f"NULLIF({column}, '')"
    # Formula cells quoted (CSV injection): ascii() is the first character's code (NULL for NULL, 0 for '').
    # Every formula prefix is below "A" (65): most cells (letters, any non-ASCII) are decided by one comparison.
    return (
        f"CASE WHEN ascii({column}) >= {_FIRST_PLAIN_CODE} THEN {column}"
        f" WHEN ascii({column}) IN ({_FORMULA_CODES}) THEN {_QUOTE} || {column} ELSE NULLIF({column}, '') END"
    )


def _compiled_where(session: Session, principal: Principal, filters: AuditFilters) -> tuple[str, dict[str, Any]]:
    """The scope and filters as SQL text with psycopg `%(name)s` parameters, and their values."""
    sql, params = driver_statement(session, select(literal(1)).where(*where_clause(session, principal, filters)))
    where = sql.split("\nWHERE ", 1)
    return (where[1] if len(where) == 2 else "true"), params


def _copy_statement(
    session: Session, template: str, columns: list[str], principal: Principal, filters: AuditFilters, order: str
) -> tuple[str, dict[str, Any]]:
    """COPY of SELECT `columns` (SQL text) over the filtered rows in the list's `order`, and its parameters."""
    where, params = _compiled_where(session, principal, filters)
    direction = "ASC" if order == "asc" else "DESC"
    time_order(order)  # anything but the two orders is refused before any SQL is written
    # Only this module's own SQL is joined in; every filter value stays a parameter (psycopg binds it).
    query = (
        f"SELECT {', '.join(columns)} FROM audit_log WHERE {where}"  # noqa: S608
        f" ORDER BY audit_log.timestamp {direction}, audit_log.id {direction}"
    )
    return template.format(query=query), params


def _copy_started(pgconn: PGconn, query: bytes, encoding: str) -> PQGen[None]:
    """Send `query` (a COPY TO STDOUT) and wait until its rows start."""
    pgconn.send_query(query)
    while pgconn.flush():
        if (yield Wait.RW) & Ready.R:
            pgconn.consume_input()
    while pgconn.is_busy():
        yield Wait.R
        pgconn.consume_input()
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        _finish_statement(pgconn, result, encoding)
        raise psycopg.ProgrammingError("the export's statement is not a COPY TO STDOUT")


def _finish_statement(pgconn: PGconn, result: PGresult | None, encoding: str) -> None:
    """Read the statement's remaining results (all arrived: the connection is not busy); raise its error."""
    failed = None
    while result is not None:
        if failed is None and result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.COPY_OUT):
            failed = result
        result = pgconn.get_result()
    if failed is not None:
        raise psycopg.errors.error_from_result(failed, encoding=encoding)


def _copy_block(pgconn: PGconn, size: int, encoding: str) -> PQGen[tuple[list[memoryview], bool]]:
    """The COPY's next `size` rows (fewer at its end, then True): as many as have arrived per wait."""
    rows: list[memoryview] = []
    get = pgconn.get_copy_data
    while len(rows) < size:
        nbytes, data = get(1)
        if nbytes > 0:
            rows.append(data)  # type: ignore[arg-type]
        elif nbytes == 0:  # nothing more has arrived yet
            yield Wait.R
            pgconn.consume_input()
        else:  # the end of the data: the statement's own result follows
            while pgconn.is_busy():
                yield Wait.R
                pgconn.consume_input()
            _finish_statement(pgconn, pgconn.get_result(), encoding)
            return rows, True
    return rows, False


def _copy_blocks(
    session: Session, statement: str, params: Any, sizes: Iterator[int]
) -> Generator[list[memoryview], None, None]:
    """The COPY's rows on the session's own connection, in blocks of the next of `sizes` rows.

    libpq hands over one row per call: reading every row that has arrived in one wait, with
    no per-row object of psycopg's `Copy`, costs a fraction of its per-row `read()`. A COPY
    left unfinished (the export closed early) is cancelled and its rest read and dropped.
    """
    driver: psycopg.Connection[Any] = session.connection().connection.driver_connection  # type: ignore[assignment]
    query = psycopg.ClientCursor(driver).mogrify(statement, params)
    pgconn, encoding = driver.pgconn, driver.info.encoding
    driver.wait(_copy_started(pgconn, query.encode(encoding), encoding))
    ended = False
    try:
        while not ended:
            block, ended = driver.wait(_copy_block(pgconn, next(sizes), encoding))
            yield block
    finally:
        if not ended:
            driver.cancel_safe()
            with contextlib.suppress(psycopg.errors.QueryCanceled):
                while not ended:
                    _, ended = driver.wait(_copy_block(pgconn, COPY_ROWS_PER_CHUNK, encoding))


def copy_export(
    session: Session,
    principal: Principal,
    filters: AuditFilters,
    fmt: str,
    *,
    on_rows: Callable[[int], None] | None = None,
    rows_per_chunk: int = COPY_ROWS_PER_CHUNK,
    order: str = "desc",
) -> Generator[bytes, None, None]:
    """The CSV or JSON Lines export on PostgreSQL, streamed from `COPY (SELECT ...) TO STDOUT`: the same bytes as
    `csv_export` / `jsonl_chunks` over `export_row`, at the speed of COPY, in constant memory.

    CSV: the server writes each line (ISO times, formula cells neutralised in SQL, CSV quoting);
    only `details` is Python's: the stored document comes between two `DETAILS_MARK`s and is
    replaced by its sorted-key spelling (computed once per distinct document), so it is exactly
    what the row-by-row export writes. JSON Lines: the server writes the columns as they are in
    COPY's text format (times as ISO text) and `_json_lines` builds the objects, block by block.
    Rows come in `order`, as csv_export's. A chunk is `rows_per_chunk` lines, as `csv_export`'s
    (the CSV header is the first chunk's first line); `on_rows` hears each chunk's row count before it is yielded.
    """
    lines_of: Callable[[list[memoryview]], bytes]
    if fmt == "csv":
        mark = f"E'\\x{ord(DETAILS_MARK):02x}'"
        details = f"{mark} || audit_log.details::text || {mark}"
        columns = [details if name == "details" else _copy_text(name) for name in EXPORT_COLUMNS]
        statement, params = _copy_statement(session, _COPY_CSV, columns, principal, filters, order)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow(EXPORT_COLUMNS)
        header = buffer.getvalue().encode()
        csv_spellings: _Memo[bytes, bytes] = _Memo(_csv_spelling)
        lines_of = functools.partial(_export_lines, spellings=csv_spellings)
    else:
        statement, params = _copy_statement(session, _COPY_JSON, _JSON_COLUMNS, principal, filters, order)
        header = b""
        lines_of = functools.partial(_json_lines, details=_Memo(_json_details), templates=_Memo(_json_template))
    goal = max(rows_per_chunk - 1, 1) if header else rows_per_chunk  # the header is the first chunk's first line
    parts = [header] if header else []
    rows = 0
    for block in _copy_blocks(session, statement, params, _block_sizes(goal, rows_per_chunk)):
        if block:
            parts.append(lines_of(block))
            rows += len(block)
        if rows == goal:
            if on_rows is not None:
                on_rows(rows)
            yield b"".join(parts)
            parts.clear()
            rows, goal = 0, rows_per_chunk
    if on_rows is not None:
        on_rows(rows)
    if parts:
        yield b"".join(parts)


def _block_sizes(first: int, size: int) -> Iterator[int]:
    """Blocks of at most COPY_BLOCK_ROWS rows that end where each chunk ends (`first` rows, then `size` each)."""
    chunk = first
    while True:
        while chunk > 0:
            block = min(COPY_BLOCK_ROWS, chunk)
            yield block
            chunk -= block
        chunk = size


class _Memo(dict[K, V]):
    """`spell(value)` for each value, computed on first sight (exports repeat `details` and user agents a lot).

    At most DETAILS_CACHE_SIZE values are kept (then forgotten at once): memory stays flat.
    """

    def __init__(self, spell: Callable[[K], V]) -> None:
        super().__init__()
        self.spell = spell

    def __missing__(self, value: K) -> V:
        if len(self) >= DETAILS_CACHE_SIZE:
            self.clear()
        spelled = self[value] = self.spell(value)
        return spelled


def _sorted_json(stored: str | bytes) -> str:
    """A stored JSON document as the row-by-row export spells it: keys sorted, non-ASCII kept."""
    return json.dumps(json.loads(stored), sort_keys=True, ensure_ascii=False)


def _csv_spelling(stored: bytes) -> bytes:
    """`details` inside its CSV field, as COPY quoted the stored text (every `"` doubled).

    COPY quotes the field when the text holds a comma or a quote, and so does csv.writer for
    the sorted spelling, which holds the same strings and structure: the quotes around the
    marks are right for both; only the text between them changes.
    """
    return _sorted_json(stored.replace(b'""', b'"')).replace('"', '""').encode()


def _export_lines(block: list[memoryview], spellings: _Memo[bytes, bytes]) -> bytes:
    """COPY's CSV rows (each: fields, the marked details, fields, a newline) as the export's lines.

    Whole blocks at once in bytes operations: the text split at the marks, every second piece
    (a stored document) swapped for its spelling, joined again, and CSV's CRLF line ends put
    for COPY's newlines. That holds when the marks and newlines are only those COPY wrote around
    the details and at the ends of lines (counted from the pieces and the lengths: bytes.count
    reads byte by byte); a field holding either (possible in free text) has its block done row
    by row, the details found by the row's last two marks (only an ISO time and a hex hash follow them).
    """
    rows = len(block)
    pieces = b"".join(block).split(MARK_BYTE)
    if len(pieces) == 2 * rows + 1:
        pieces[1::2] = map(spellings.__getitem__, pieces[1::2])
        text = b"".join(pieces)
        lines = text.replace(b"\n", b"\r\n")
        if len(lines) - len(text) == rows:
            return lines
    return b"".join([_export_line(bytes(row), spellings) for row in block])


def _export_line(row: bytes, spellings: _Memo[bytes, bytes]) -> bytes:
    """One COPY row as the export's CSV line: the stored document between its last two marks spelled."""
    end = row.rindex(MARK_BYTE)
    start = row.rindex(MARK_BYTE, 0, end)
    return row[:start] + spellings[row[start + 1 : end]] + row[end + 1 : -1] + b"\r\n"


# ---------------------------------------------------------------- PostgreSQL: JSON Lines from COPY's text format

_NULLABLE = frozenset(name for name in EXPORT_COLUMNS if AuditLog.__table__.c[name].nullable)  # type: ignore[attr-defined]
"""Columns that may be NULL: COPY writes them between double quotes (`'"' || value || '"'`), NULL as `null`."""
_COPY_JSON = "COPY ({query}) TO STDOUT (NULL 'null')"
"""COPY's text format: fields as they are between tabs, a newline after each row, NULL as `null`; a backslash,
tab, newline, carriage return, backspace, form feed or vertical tab in a value is written as a backslash escape."""


def _json_column(name: str) -> str:
    """A column in the JSON Lines COPY (SQL): ISO times, a nullable value between quotes, the rest as stored."""
    if name in _TIME_COLUMNS:
        return _ISO_UTC.format(name=name)
    if name in _NULLABLE:
        return f"'\"' || audit_log.{name} || '\"'"
    return f"audit_log.{name}"


_JSON_COLUMNS = [_json_column(name) for name in EXPORT_COLUMNS]
_JSON_WIDTH = len(EXPORT_COLUMNS)
_JSON_QUOTED = [name in _NULLABLE for name in EXPORT_COLUMNS]
_JSON_KEYS = [json.dumps(name).encode() + b": " for name in EXPORT_COLUMNS]
_JSON_LINE = (
    b"{"
    + b", ".join(
        key + (b"%s" if name == "details" or name in _NULLABLE else b'"%s"')
        for key, name in zip(_JSON_KEYS, EXPORT_COLUMNS, strict=True)
    )
    + b"}\n"
)
"""One JSON line with a `%s` per column: quotes put around the values COPY writes without them."""
_NULL = b"null"
_UNPLAIN = bytes([*range(0x20), ord('"'), ord("\\")]).translate(None, b"\t\n")
"""Bytes a value's COPY text cannot hold to go into a JSON string as it is: the quote, the backslash (which
also starts COPY's escapes) and the control characters JSON escapes (COPY writes raw all but the six it
escapes; its own tabs and newlines end the fields and rows)."""
_TEXT_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_TEXT_ESCAPES = {b"\\": b"\\", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}
"""What each of COPY's text-format escapes stands for (COPY TO writes no other)."""


def _copy_unescaped(text: bytes) -> bytes:
    """A value as COPY's text format wrote it back to its own bytes."""
    return _TEXT_ESCAPE.sub(lambda escape: _TEXT_ESCAPES[escape[1]], text) if b"\\" in text else text


def _json_details(stored: bytes) -> tuple[bytes, int]:
    """A stored document as COPY's text wrote it: its sorted spelling, and how many `_UNPLAIN` bytes that text holds."""
    return _sorted_json(_copy_unescaped(stored)).encode(), len(stored) - len(stored.translate(None, _UNPLAIN))


def _json_template(rows: int) -> bytes:
    """`rows` JSON lines' template, and a last `%s` for the empty text after the block's last newline."""
    return _JSON_LINE * rows + b"%s"


def _json_lines(
    block: list[memoryview], details: _Memo[bytes, tuple[bytes, int]], templates: _Memo[int, bytes]
) -> bytes:
    """COPY's text-format rows (`_JSON_COLUMNS`) as the export's JSON lines: `json.dumps(export_row)`'s bytes.

    A whole block at once in bytes operations when no value holds anything JSON or COPY would
    escape (then a value's text is itself, and COPY's quotes around a nullable one are the JSON
    string's): the rows split at their tabs and newlines (COPY escapes both inside values, so a
    row is always `_JSON_WIDTH` fields), each `details` swapped for its sorted spelling, all put
    into the lines' template. That holds when the block's `_UNPLAIN` bytes are only the quotes
    COPY put around the nullable values that are not `null` and those of the documents (counted
    once per distinct document): anything in a value adds to them, and a value `null` in a column
    that is never NULL takes two off. Other blocks are halved until their rows with such a value
    are alone, and those are written by `_json_line`.
    """
    rows = len(block)
    data = b"".join(block).replace(b"\n", b"\t")
    fields = data.split(b"\t")
    if len(fields) == rows * _JSON_WIDTH + 1:
        documents = list(map(details.__getitem__, fields[_DETAILS_AT::_JSON_WIDTH]))
        quotes = 2 * (len(_NULLABLE) * rows - fields.count(_NULL))
        if len(data) - len(data.translate(None, _UNPLAIN)) == quotes + sum(map(itemgetter(1), documents)):
            fields[_DETAILS_AT::_JSON_WIDTH] = map(itemgetter(0), documents)
            return templates[rows] % tuple(fields)
    if rows == 1:
        return _json_line(bytes(block[0]), details)
    half = rows // 2
    return _json_lines(block[:half], details, templates) + _json_lines(block[half:], details, templates)


def _json_line(row: bytes, details: _Memo[bytes, tuple[bytes, int]]) -> bytes:
    """One COPY text-format row as its JSON line, each value unescaped and written by json.dumps."""
    values = row[:-1].split(b"\t")
    parts = []
    for at, (key, quoted, value) in enumerate(zip(_JSON_KEYS, _JSON_QUOTED, values, strict=True)):
        if at == _DETAILS_AT:
            spelled = details[value][0]
        elif quoted and value == _NULL:
            spelled = _NULL
        else:
            text = _copy_unescaped(value[1:-1] if quoted else value)
            spelled = _encode_json(text.decode()).encode()
        parts.append(key + spelled)
    return b"{" + b", ".join(parts) + b"}\n"
