"""What the stream tests share: a fast timing, stream rows, writing events, the ids a stream owes, a running worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import select, tuple_
from sqlmodel import Session, col

from audit_app.audit.feed import FEED_ORDER
from audit_app.audit.ingest import ingest_events
from audit_app.audit.stream_targets import TargetPolicy
from audit_app.audit.stream_worker import StreamWorker, Timing
from audit_app.audit.streams import SPEC, create_stream, stream_conditions
from audit_app.auth import Principal
from audit_app.db import unpooled_engine
from audit_app.models import AuditEventIn, AuditLog, LogStream
from audit_app.proxies import parse_networks

STREAM_KEY = "stream-key-" + "k" * 30
ALLOWED_NETWORKS = "127.0.0.1/32"
"""AUDIT_STREAM_ALLOWED_NETWORKS of the stream tests: their receivers listen on 127.0.0.1 (the
check stays on: 127.0.0.2, link-local, private addresses are still refused)."""
TARGETS = TargetPolicy(allowed=tuple(parse_networks(ALLOWED_NETWORKS)))


ROOT = Principal(sub="tester", email="", role="super_admin", scopes=frozenset({"audit:admin"}))


FAST = Timing(
    batch_size=50,
    poll_seconds=0.05,
    retry_base_seconds=0.05,
    retry_max_seconds=0.5,
    failing_after=timedelta(minutes=10),
    lease_seconds=2.0,
    claim_seconds=0.1,
    timeout_seconds=3.0,
)


PARTNERS = {"acme": "northwind", "globex": "northwind", "initech": "southwind"}


def new_stream(session: Session, **fields: Any) -> LogStream:
    """Create a stream through the domain as a super admin (fields as the API takes them)."""
    spec = SPEC.validate_python({"name": "test stream"} | fields)
    return create_stream(session, ROOT, spec, STREAM_KEY, TARGETS)


def write(
    session: Session,
    count: int,
    tenant: str = "acme",
    *,
    batch: int = 10,
    ids: list[str] | None = None,
    **fields: Any,
) -> list[str]:
    """Write `count` events of `tenant` in batches of `batch` (one transaction each), with `ids` if given."""
    written: list[str] = []
    for start in range(0, count, batch):
        events = [
            AuditEventIn(
                tenant_id=tenant,
                partner_id=PARTNERS.get(tenant),
                actor_id=f"{tenant}-actor",
                action=fields.get("action", "user.login"),
                result=fields.get("result", "success"),
                details={"n": start + i},
            )
            for i in range(min(batch, count - start))
        ]
        written += ingest_events(session, events, ids=ids[start : start + batch] if ids else None)
        session.commit()
    return written


def expected_ids(session: Session, stream_id: str, start: tuple[int, str] = (-1, "")) -> list[str]:
    """The ids a stream must deliver after `start`, in feed order (from its own filter)."""
    session.expire_all()
    stream = session.get_one(LogStream, stream_id)
    rows = session.execute(
        select(col(AuditLog.id))
        .where(tuple_(*FEED_ORDER) > tuple_(*start), *stream_conditions(session, stream))
        .order_by(*FEED_ORDER)
    )
    return list(rows.scalars())


def first_occurrences(ids: list[str]) -> list[str]:
    """`ids` without repeats, in order of first arrival."""
    return list(dict.fromkeys(ids))


def load(session: Session, stream_id: str) -> LogStream:
    session.expire_all()
    return session.get_one(LogStream, stream_id)


@contextmanager
def running(
    url: str, timing: Timing = FAST, worker_id: str = "worker-1", targets: TargetPolicy = TARGETS
) -> Iterator[StreamWorker]:
    """A stream worker in a thread for the duration of the block."""
    worker = StreamWorker(unpooled_engine(url), STREAM_KEY, timing, targets=targets, worker_id=worker_id)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop.set()
        thread.join(15)
        assert not thread.is_alive(), "the worker did not stop"
