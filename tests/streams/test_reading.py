"""How a stream runner reads its batches: on PostgreSQL an ordered walk of the feed index that
stops after the batch, whatever the statistics say (a fresh table has none)."""

from __future__ import annotations

from sqlmodel import Session

from audit_app.audit.streams import batch_query, read_batch, read_in_feed_order
from audit_app.db import unpooled_engine
from audit_app.settings import Settings
from tests.streams.helpers import load, new_stream, write


def plan(session: Session, query: object) -> str:
    compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
    return "\n".join(row[0] for row in session.connection().exec_driver_sql(f"EXPLAIN {compiled}"))


def test_batches_are_an_ordered_walk_of_the_feed_index(stream_settings: Settings, session: Session) -> None:
    sid = new_stream(session, type="http", target="https://siem.example.com/", credentials={"secret": "s" * 20}).id
    write(session, 3000, "acme", batch=500)  # a backlog on a table never analysed
    stream = load(session, sid)
    want = read_batch(session, stream, 1000)
    session.commit()
    if session.get_bind().dialect.name != "postgresql":
        assert len(want) == 1000  # SQLite plans its own way (and has no statistics to mislead it)
        return
    engine = unpooled_engine(stream_settings.database_url)
    with engine.connect() as conn, Session(bind=conn) as runner:
        read_in_feed_order(conn)
        shown = plan(runner, batch_query(runner, stream, 1000))
        assert "Index Scan using ix_audit_log_feed" in shown, shown
        assert "Sort" not in shown, shown
        assert "Bitmap" not in shown, shown
        got = read_batch(runner, stream, 1000, (want[499].feed_pos, want[499].id))
        assert [row.id for row in got] == [row.id for row in want[500:]] + [
            row.id for row in read_batch(runner, stream, 500, (want[-1].feed_pos, want[-1].id))
        ]
    engine.dispose()
