"""Engines and sessions: the only place that turns the configured URLs into connections.

Writes (and reads that must see them, such as chain verification) use the primary,
`AUDIT_DATABASE_URL`. Reads that may lag a moment (lists, statistics, exports, the console)
use `AUDIT_READ_DATABASE_URL` when it is set, e.g. a streaming replica, else the primary.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg.errors
import psycopg.pq
from sqlalchemy import ColumnElement, Connection, CursorResult, Executable, event, text, type_coerce
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ClauseList
from sqlalchemy.types import NullType
from sqlmodel import Session, create_engine

from audit_app.models import utc
from audit_app.settings import ConfigError, get_settings
from audit_app.wal_checkpoints import CHECKPOINTER, database_file


@lru_cache(maxsize=16)
def engine_for(
    url: str,
    autocommit: bool = False,
    pool_timeout: float = 10.0,
    lock_timeout: float | None = None,
    durable: bool = True,
) -> Engine:
    """One pooled engine per database URL, and one more for its transaction-less reads.

    `autocommit` connections run each statement on its own snapshot and never send BEGIN or
    ROLLBACK; they live in a pool of their own, so no checkout switches a connection's mode.
    A checkout waits at most `pool_timeout` seconds (then `sqlalchemy.exc.TimeoutError`: 503).
    PostgreSQL sessions run in UTC. On PostgreSQL, a statement waits at most `lock_timeout` seconds for a lock such as a
    tenant's chain head (then `LockNotAvailable`: 503); None waits without limit.
    `durable=False`: PostgreSQL commits do not wait for the disk (`synchronous_commit=off`).
    """
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    options["pool_timeout"] = pool_timeout
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        engine.dialect.statement_compiler = HintingSQLiteCompiler
        return engine
    # Sessions in UTC: times come back as UTC instants (psycopg: `timezone.utc`), whatever the
    # server's default zone, and any SQL that reads a date off a timestamptz reads the UTC one.
    server_options = "-c TimeZone=UTC"
    if lock_timeout is not None:
        server_options += f" -c lock_timeout={round(lock_timeout * 1000)}"
    if not durable:
        server_options += " -c synchronous_commit=off"
    options["connect_args"] = {"options": server_options}
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10, **options)
    event.listen(engine, "handle_error", _discard_read_only)
    event.listen(engine, "before_cursor_execute", _binary_results)
    return engine


BINARY_RESULTS = "binary_results"
"""Execution option: psycopg reads the result in PostgreSQL's binary format (for reads whose values
go straight out again, through no result processing: see `as_stored`). Times and numbers then
arrive as their machine form instead of text to parse; the Python values are the same."""


def _binary_results(_conn: Any, cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
    """Ask for binary results when the statement was executed with `BINARY_RESULTS`."""
    if context is not None and context.execution_options.get(BINARY_RESULTS):
        cursor.format = psycopg.pq.Format.BINARY


class HintingSQLiteCompiler(SQLiteCompiler):
    """SQLite's compiler with table hints: `with_hint(table, "INDEXED BY ix", "sqlite")` renders.

    SQLAlchemy drops table hints on SQLite; the list names the index a filter reads through
    (`audit.query.sqlite_index`), so the plan does not depend on statistics.
    """

    def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
        """The hint as written, after the table's name."""
        return text


def _discard_read_only(context: ExceptionContext) -> None:
    """Treat "read-only transaction" as a lost connection, so the pool drops it (and its peers).

    A connection opened while the server was read-only (`default_transaction_read_only`, or a
    demoted primary after a failover) keeps that state and still passes the pre-ping; dropped,
    the next checkout connects afresh and writes recover without a restart.
    """
    if isinstance(context.original_exception, psycopg.errors.ReadOnlySqlTransaction):
        context.is_disconnect = True


@lru_cache(maxsize=256)
def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(value, strict=False)


def ip_in_network(address: str | None, network: str) -> int:
    """1 when `address` lies in `network` (a CIDR), else 0: SQLite's `audit_ip_in_network`, which it
    calls on the rows its other conditions leave (it has no address type; PostgreSQL uses `inet`)."""
    if not address:
        return 0
    try:
        return int(ipaddress.ip_address(address) in _network(network))
    except ValueError:
        return 0


SQLITE_CACHE_KIB = 65_536
"""Each connection's page cache (SQLite's default is 2 MiB). A batch of 1,000 events touches a
leaf page of each of audit_log's 17 indexes per event; with the default cache most of them were
read again from the file for every batch (measured: about a sixth of a batch's CPU time)."""


SQLITE_WAL_AUTOCHECKPOINT_PAGES = 131_072
"""WAL pages (512 MiB at SQLite's 4 KiB pages) after which a commit copies the WAL into the file
itself: a safety net. The copying is `wal_checkpoints.CHECKPOINTER`'s, a thread that checkpoints
each file this process opened about once a second, while writes go on.

SQLite's default of 1,000 made every 1,000-event batch (about 5,000 WAL pages on a 260,000-event
file, most of them index leaves on random keys) checkpoint right after its own commit: each page
read back from the WAL and written into the file, with three fdatasyncs, inside the request.
Checkpointing every 32,768 pages cut what was copied (a page that several batches changed is
copied once: per batch about 5,400 -> 2,400 pages written into the file, 6,300 -> 3,400 read,
fdatasyncs 3 -> 1.5), but the batch that crossed it answered after 2.6 s instead of 0.12 s. The
WAL file keeps the size it reaches and is reused from its start after a complete checkpoint."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run while one writer writes; busy_timeout waits instead of failing;
    a page cache that holds the pages a batch's index entries land on (`SQLITE_CACHE_KIB`);
    the WAL checkpointed off the request path (`wal_checkpoints`), with SQLite's own checkpoint
    after `SQLITE_WAL_AUTOCHECKPOINT_PAGES` pages as a safety net.

    `synchronous=FULL`: each commit syncs the WAL before it returns, so an acknowledged event
    survives a power loss or an OS crash. (With NORMAL only a checkpoint synced; a batch was
    synced because every batch passed the default 1,000-page checkpoint, the small commits of
    access records were not.) A batch now syncs once, its WAL pages, instead of three times.

    Also registers `audit_ip_in_network(address, cidr)` for the `ip_address` network filter.
    """
    dbapi_connection.create_function("audit_ip_in_network", 2, ip_in_network, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
    cursor.close()
    path = database_file(dbapi_connection)
    if path is not None:
        CHECKPOINTER.watch(path)


def unpooled_engine(url: str) -> Engine:
    """An engine without a pool: each connection is opened for one owner and closed with it.

    The stream worker holds one connection per stream it delivers (on PostgreSQL the stream's
    advisory lock lives in it), so connections must not be shared or kept after release.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, poolclass=NullPool, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, poolclass=NullPool, connect_args={"options": "-c TimeZone=UTC"})


def as_stored(columns: Iterable[Any], names: Collection[str]) -> tuple[ColumnElement[Any], ...]:
    """`columns` with those called `names` read as the driver returns them, through no result processing.

    For pages serialised straight from their rows: SQLAlchemy's per-value conversions (text to
    datetime on SQLite, UTC checks, JSON decoding) cost as much as reading the rows, and the
    statement still goes through SQLAlchemy's compiled-statement cache. What the driver returns
    differs by backend: on SQLite a time is naive UTC text and JSON its stored text; psycopg
    returns aware datetimes (sessions run in UTC) and decoded JSON.
    """
    return tuple(
        type_coerce(column, NullType()).label(column.name) if column.name in names else column for column in columns
    )


def stored_time(value: datetime | str) -> datetime:
    """A time read through `as_stored` as the aware UTC datetime SQLAlchemy makes of it (`models.UTCDateTime`)."""
    return utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))


_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The C scanner behind `json.loads` (same decoder settings), called without its Python layers."""


def stored_json(value: Any) -> Any:
    """A JSON column read through `as_stored` as SQLAlchemy decodes it (SQLite: `json.loads` of its text).

    A stored document is scanned by the very scanner `json.loads` ends in, called directly: the
    Python layers around it (`loads`, `decode`, `raw_decode` and two whitespace matches) cost
    more than scanning a small document. Text that does not scan to its end from its first
    character (surrounding whitespace, a byte-order mark, not JSON) goes to `json.loads`, so the
    values and the errors are `json.loads`'s.
    """
    if not isinstance(value, str):
        return value
    try:
        document, end = _scan_json(value, 0)
    except StopIteration:
        return json.loads(value)
    return document if end == len(value) else json.loads(value)


def driver_statement(session: Session, stmt: Any) -> tuple[str, dict[str, Any]]:
    """`stmt` as the SQL text and parameters its connection's driver takes (psycopg: `%(name)s`),
    IN lists expanded and each value through its column type's bind processor, as SQLAlchemy
    would send them; for the few reads that go to the driver directly."""
    dialect = session.get_bind().dialect
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = dict(compiled.construct_params())
    for name, bind in compiled.binds.items():
        processor = bind.type.bind_processor(dialect)
        if processor is not None and name in params:
            params[name] = processor(params[name])
    return str(compiled), params


@dataclass(frozen=True)
class _Shape:
    """A statement compiled once, and where each of its bound values comes from on a later run:
    the index of the same value among the varying clauses' values (`None`: a named value)."""

    compiled: SQLCompiler
    sources: tuple[int | None, ...]
    named: tuple[BindParameter[Any], ...]
    processors: Mapping[str, Callable[[Any], Any]]
    """Each bound value's conversion for the driver, as SQLAlchemy applies it (expanded IN lists aside)."""


class ShapedStatements:
    """Statements compiled once per shape and run again with each request's values.

    A statement built from the same clauses with other values compiles to the same SQL; building
    it, computing SQLAlchemy's cache key of the whole and setting up its compiled execution cost
    more than a short query takes. `execute` builds only the varying clauses (the caller's
    filters), takes their cache key (the shape and the values, in order), and on a shape seen
    before sends the compiled SQL with the new values through `exec_driver_sql` (SQLAlchemy's
    events and error handling still apply). A value outside those clauses must be a named
    `bindparam` given in `named`; a statement with any other value is run as SQLAlchemy runs it.
    Rows come back as the driver returns them, through no result processing (see `as_stored`).
    """

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._shapes: dict[Hashable, _Shape | None] = {}

    def execute(
        self,
        connection: Connection,
        key: Hashable,
        clauses: Sequence[ColumnElement[Any]],
        named: Mapping[str, Any],
        build: Callable[[], Executable],
    ) -> CursorResult[Any]:
        """`build()` run on `connection`: `key` and `clauses` fix its SQL, `named` its named values."""
        cache_key = ClauseList(*clauses)._generate_cache_key()
        if cache_key is None:
            return connection.execute(build(), named)
        shape_key = (connection.dialect, key, cache_key.key)
        shape = self._shapes.get(shape_key, ...)
        if shape is ...:
            shape = _compile_shape(connection, build(), cache_key.bindparams, named)
            if len(self._shapes) >= self.limit:
                self._shapes.clear()
            self._shapes[shape_key] = shape
        if shape is None:
            return connection.execute(build(), named)
        values = cache_key.bindparams
        extracted = [
            named_bind if index is None else values[index]
            for index, named_bind in zip(shape.sources, shape.named, strict=True)
        ]
        compiled = shape.compiled
        state = compiled.construct_expanded_state(
            compiled.construct_params(dict(named), extracted_parameters=extracted)  # type: ignore[arg-type]
        )
        processors = {**shape.processors, **state.processors} if state.processors else shape.processors
        processed = {
            name: processors[name](value) if name in processors else value for name, value in state.parameters.items()
        }
        if state.positiontup is not None:
            return connection.exec_driver_sql(state.statement, tuple(processed[name] for name in state.positiontup))
        return connection.exec_driver_sql(state.statement, processed)


def _compile_shape(
    connection: Connection, stmt: Executable, values: Sequence[BindParameter[Any]], named: Mapping[str, Any]
) -> _Shape | None:
    """`stmt` compiled with its cache key, and where each of its values comes from (None: not cacheable)."""
    cache_key = stmt._generate_cache_key()  # type: ignore[attr-defined]
    if cache_key is None:
        return None
    position: dict[int, int] = {}
    for index, bind in enumerate(values):
        position.setdefault(id(bind), index)
    sources: list[int | None] = []
    for bind in cache_key.bindparams:
        if id(bind) in position:
            sources.append(position[id(bind)])
        elif bind.key in named:
            sources.append(None)
        else:
            return None
    dialect = connection.dialect
    compiled = dialect.statement_compiler(dialect, stmt, cache_key=cache_key)  # type: ignore[arg-type]
    processors: Mapping[str, Any] = compiled._bind_processors
    if not all(callable(processor) for processor in processors.values()):
        return None  # a tuple-typed value (one conversion per element): left to SQLAlchemy
    return _Shape(compiled, tuple(sources), tuple(cache_key.bindparams), processors)


def psycopg_url(url: str) -> str:
    """A `postgresql+psycopg://` SQLAlchemy URL as the `postgresql://` URL psycopg connects to."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def get_engine() -> Engine:
    """The engine of the primary database (every write goes here)."""
    settings = get_settings()
    return engine_for(settings.database_url, pool_timeout=settings.pool_timeout, lock_timeout=settings.lock_timeout)


def get_counter_engine() -> Engine:
    """Autocommit connections to the primary whose commits do not wait for the disk (PostgreSQL).

    For statistics only, such as the feed's poll counts: one statement, one round trip, and a
    crash may lose the last fraction of a second of them. Never write events with it.
    """
    settings = get_settings()
    return engine_for(settings.database_url, autocommit=True, pool_timeout=settings.pool_timeout, durable=False)


def get_read_engine(autocommit: bool = False) -> Engine:
    """The engine for reads that may lag: the read replica if one is configured, else the primary."""
    settings = get_settings()
    return engine_for(settings.read_database_url or settings.database_url, autocommit, settings.pool_timeout)


def read_only_session() -> Session:
    """A session without a transaction on the read database, for one statement at a time.

    Each statement sees its own snapshot; nothing sends BEGIN or, when the session closes,
    ROLLBACK (two round trips saved per request), so closing it does no I/O. Never write with it.
    """
    return Session(get_read_engine(autocommit=True), expire_on_commit=False)


def close_session(session: Session) -> None:
    """Close `session`; a connection that died under it is dropped (the pool reconnects)."""
    try:
        session.close()
    except DBAPIError:
        # The connection died under the session (e.g. a database restart): the closing
        # ROLLBACK fails after the response is sent. Drop the connection; the pool reconnects.
        session.invalidate()


@contextmanager
def session_scope(*, read: bool = False) -> Iterator[Session]:
    """A session on the primary database, closed afterwards (callers commit).

    `read=True`: on the read database instead, for reads that need one snapshot or a
    server-side cursor (never write with it: it may be a replica).
    """
    session = Session(get_read_engine() if read else get_engine(), expire_on_commit=False)
    try:
        yield session
    finally:
        close_session(session)


def check_database(engine: Engine | None = None, setting: str = "AUDIT_DATABASE_URL") -> None:
    """Fail with one clear sentence when the database (configured by `setting`) cannot be reached."""
    engine = engine or get_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ConfigError(
            f"Cannot reach the database at {engine.url.render_as_string(hide_password=True)}: "
            f"{reason}. Check {setting} and that the server is running."
        ) from None


def check_databases() -> None:
    """check_database for the primary and, when one is configured, the read database."""
    check_database()
    if get_settings().read_database_url:
        check_database(get_read_engine(), "AUDIT_READ_DATABASE_URL")
