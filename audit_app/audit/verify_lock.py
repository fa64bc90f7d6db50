"""One verification per chain at a time, across workers and processes, coordinated through the database.

PostgreSQL: a session-level advisory lock per chain (`pg_try_advisory_lock`), taken on a
connection of its own and released when the verification ends or that connection dies.
SQLite: a lease row per chain in `verify_lease`, deleted when the verification ends and
ignored once expired (a process that died holds its chains for at most VERIFY_LEASE).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from audit_app.models import VerifyLease, utcnow

VERIFY_LEASE = timedelta(minutes=10)  # SQLite: how long a lease holds without its holder
BUSY_RETRY_AFTER = 5  # seconds suggested to a caller when the holder's end is not known (PostgreSQL)
ADVISORY_CLASS = 0x56455249  # "VERI": the first key of every verification's advisory lock
TRY_LOCKS_PG = text(
    "SELECT t.name FROM unnest(CAST(:tenants AS text[])) AS t(name) "
    "WHERE NOT pg_try_advisory_lock(CAST(:class AS integer), hashtext(t.name))"
).bindparams(bindparam("tenants"), bindparam("class"))


class VerificationBusyError(RuntimeError):
    """Another verification is walking one of these chains (HTTP 429 with Retry-After)."""

    def __init__(self, tenant_id: str, retry_after: int) -> None:
        super().__init__(
            f"A verification of the chain of {tenant_id!r} is already running; try again in {retry_after} s."
        )
        self.retry_after = retry_after


@contextmanager
def chains_locked(session: Session, tenants: list[str]) -> Iterator[None]:
    """Hold every chain of `tenants` for one verification, or raise VerificationBusyError taking none."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    if not tenants:
        yield
    elif engine.dialect.name == "postgresql":
        with engine.connect() as conn, _advisory_locks(conn, tenants):
            yield
    else:
        holder = _take_leases(engine, tenants)
        try:
            yield
        finally:
            with engine.begin() as conn:
                conn.execute(delete(VerifyLease).where(col(VerifyLease.holder) == holder))


@contextmanager
def _advisory_locks(conn: Connection, tenants: list[str]) -> Iterator[None]:
    """Take the advisory locks of `tenants` on `conn` (all or none), release them on exit."""
    busy = conn.execute(TRY_LOCKS_PG, {"tenants": tenants, "class": ADVISORY_CLASS}).scalars().first()
    conn.commit()  # session-level locks outlive the transaction; no snapshot is held meanwhile
    try:
        if busy is not None:
            raise VerificationBusyError(busy, BUSY_RETRY_AFTER)
        yield
    finally:
        conn.execute(select(func.pg_advisory_unlock_all()))
        conn.commit()


def _take_leases(engine: Engine, tenants: list[str]) -> str:
    """Write a lease row for each of `tenants` (all or none); the holder id that releases them."""
    holder = uuid.uuid4().hex
    now = utcnow()
    try:
        with engine.begin() as conn:
            conn.execute(delete(VerifyLease).where(col(VerifyLease.expires_at) <= now))
            held = conn.execute(
                select(col(VerifyLease.tenant_id), col(VerifyLease.expires_at))
                .where(col(VerifyLease.tenant_id).in_(tenants))
                .limit(1)
            ).first()
            if held is not None:
                wait = math.ceil((held[1] - now).total_seconds())
                raise VerificationBusyError(held[0], max(1, min(wait, BUSY_RETRY_AFTER)))
            rows = [{"tenant_id": t, "holder": holder, "expires_at": now + VERIFY_LEASE} for t in tenants]
            conn.execute(insert(VerifyLease), rows)
    except IntegrityError as exc:  # another process wrote its lease between our read and our write
        raise VerificationBusyError(tenants[0], BUSY_RETRY_AFTER) from exc
    return holder
