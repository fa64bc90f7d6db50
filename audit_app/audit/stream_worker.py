"""The delivery worker (`python -m audit_app stream`): every active stream delivered by one worker at a time.

Coordination is the database's: on PostgreSQL a worker delivers a stream while it holds the
stream's session-level advisory lock (`pg_try_advisory_lock`) on the connection it delivers
with, which the server releases when that connection ends (a killed worker included); on
SQLite a lease on the stream's row (`lease_holder`, `lease_expires`), renewed while delivering
and taken over once expired. Any number of workers may run; each claims the streams nobody holds.

Per stream, a runner reads the next batch after the stream's position (the feed's lossless
position), sends it, and only after the receiver acknowledged commits the new position for the
epoch it read (a replay changes the epoch, so a stale runner commits nothing). While a full batch
is in flight the runner reads the one after it; that batch goes out only once the one before is
acknowledged and committed, and only if the stream is still as it was read for (same epoch,
configuration, status and the position just committed) - else it is read again. A failure is
retried with exponential backoff and jitter, or after the receiver's `Retry-After`; a
non-retryable answer, or failures for longer than AUDIT_STREAM_FAILING_AFTER, mark the stream
`failing` with the receiver's answer. Delivery is at least once: a batch in flight when a worker
dies is sent again by the next one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from audit_app.audit.stream_delivery import DeliveryError, Sender, sender_for
from audit_app.audit.stream_targets import TargetPolicy
from audit_app.audit.streams import (
    CredentialsUnreadableError,
    StreamKeyMissingError,
    delivered_update,
    full_spec,
    owned,
    read_batch,
    read_in_feed_order,
)
from audit_app.models import LogStream, utcnow

log = logging.getLogger("audit_app.stream")
LOCK_PREFIX = b"audit_app log stream:"
MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class Timing:
    """The worker's knobs (AUDIT_STREAM_*): batch size, polling, retries, failing, lease, claiming."""

    batch_size: int = 1000
    poll_seconds: float = 0.5
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    failing_after: timedelta = timedelta(hours=24)
    lease_seconds: float = 30.0
    claim_seconds: float = 2.0
    timeout_seconds: float = 10.0

    @classmethod
    def of(cls, settings: Any) -> Timing:
        """The timing configured in `settings`."""
        return cls(
            batch_size=settings.stream_batch_size,
            poll_seconds=settings.stream_poll_seconds,
            retry_base_seconds=settings.stream_retry_base_seconds,
            retry_max_seconds=settings.stream_retry_max_seconds,
            failing_after=settings.stream_failing_after,
            lease_seconds=settings.stream_lease_seconds,
            claim_seconds=settings.stream_claim_seconds,
            timeout_seconds=settings.stream_timeout_seconds,
        )

    def backoff(self, attempt: int) -> float:
        """The wait before retry `attempt` (0-based): exponential, capped, with jitter (half to all of it)."""
        ceiling = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** min(attempt, 30))
        return ceiling * random.uniform(0.5, 1.0)


def lock_key(stream_id: str) -> int:
    """The stream's PostgreSQL advisory lock key (64 bits of SHA-256 of its id)."""
    return int.from_bytes(hashlib.sha256(LOCK_PREFIX + stream_id.encode()).digest()[:8], "big", signed=True)


class _StaleError(Exception):
    """The stream changed under the runner (paused, replayed, reconfigured, deleted, lease lost)."""


def _state(stream: LogStream) -> tuple[Any, ...]:
    """What a batch read for `stream` depends on: its epoch, configuration, status and position."""
    return (stream.epoch, stream.updated_at, stream.status, stream.position, stream.position_id)


@dataclass(frozen=True)
class _ReadAhead:
    """The batch after the one in flight, and the stream state it is valid for (after that one's commit)."""

    state: tuple[Any, ...]
    batch: list[Any]


class StreamWorker:
    """Claims active streams and runs one delivery thread per claimed stream until stopped; its
    senders connect only to the addresses `targets` allows."""

    def __init__(
        self,
        engine: Engine,
        secret_key: str | None,
        timing: Timing,
        *,
        targets: TargetPolicy = TargetPolicy(),  # noqa: B008 (immutable)
        worker_id: str | None = None,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.secret_key = secret_key
        self.timing = timing
        self.targets = targets
        self.postgres = engine.dialect.name == "postgresql"
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop = threading.Event()
        self.runners: dict[str, threading.Thread] = {}
        self.on_batch = on_batch

    # -- claiming ----------------------------------------------------------------------------

    def run(self) -> None:
        """Claim and deliver until `stop` is set, then let every runner finish its step."""
        log.info("stream worker %s started", self.worker_id)
        while not self.stop.is_set():
            try:
                self.claim_round()
            except DBAPIError as exc:
                log.warning("cannot claim streams: %s", str(exc.orig or exc).strip().splitlines()[0])
            self.stop.wait(self.timing.claim_seconds)
        for thread in list(self.runners.values()):
            thread.join()
        log.info("stream worker %s stopped", self.worker_id)

    def claim_round(self) -> list[str]:
        """Claim the active streams no worker holds and start their runners; return their ids."""
        self.runners = {sid: thread for sid, thread in self.runners.items() if thread.is_alive()}
        with self.engine.connect() as conn:
            now = utcnow()
            stmt = select(col(LogStream.id)).where(col(LogStream.status) == "active")
            if not self.postgres:
                stmt = stmt.where(
                    or_(
                        col(LogStream.lease_holder).is_(None),
                        col(LogStream.lease_expires) < now,
                        col(LogStream.lease_holder) == self.worker_id,
                    )
                )
            candidates = [sid for sid in conn.execute(stmt).scalars() if sid not in self.runners]
            if self.postgres and candidates:
                held = self._held_keys(conn)
                candidates = [sid for sid in candidates if lock_key(sid) & (2**64 - 1) not in held]
        claimed = []
        for stream_id in candidates:
            connection = self._claim(stream_id)
            if connection is None:
                continue
            thread = threading.Thread(
                target=self._run_stream, args=(stream_id, connection), name=f"stream-{stream_id[:8]}", daemon=True
            )
            self.runners[stream_id] = thread
            thread.start()
            claimed.append(stream_id)
        return claimed

    def _held_keys(self, conn: Connection) -> set[int]:
        """The advisory lock keys held in this database (any session), as unsigned 64-bit numbers."""
        rows = conn.execute(
            text(
                "SELECT classid::bigint, objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1"
                " AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).all()
        return {(int(high) << 32) | int(low) for high, low in rows}

    def _claim(self, stream_id: str) -> Connection | None:
        """A connection holding the stream (advisory lock, or lease), or None when another worker has it."""
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            if self.postgres:
                got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(stream_id)}).scalar()
                if got:
                    conn.execute(
                        update(LogStream)
                        .where(col(LogStream.id) == stream_id)
                        .values(lease_holder=self.worker_id, lease_expires=None)
                    )
            else:
                now = utcnow()
                got = (
                    conn.execute(
                        update(LogStream)
                        .where(
                            col(LogStream.id) == stream_id,
                            col(LogStream.status) == "active",
                            or_(
                                col(LogStream.lease_holder).is_(None),
                                col(LogStream.lease_expires) < now,
                                col(LogStream.lease_holder) == self.worker_id,
                            ),
                        )
                        .values(
                            lease_holder=self.worker_id,
                            lease_expires=now + timedelta(seconds=self.timing.lease_seconds),
                        )
                    ).rowcount
                    == 1
                )
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return None
        log.info("worker %s delivers stream %s", self.worker_id, stream_id)
        return conn

    def _release(self, stream_id: str, conn: Connection) -> None:
        """Give the stream up (the lease row, or the advisory lock with the connection)."""
        try:
            conn.execute(
                update(LogStream)
                .where(col(LogStream.id) == stream_id, col(LogStream.lease_holder) == self.worker_id)
                .values(lease_holder=None, lease_expires=None)
            )
            if self.postgres:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(stream_id)})
        except DBAPIError:
            pass  # a lost connection released the lock; an unreleased lease expires
        finally:
            conn.close()

    # -- delivering --------------------------------------------------------------------------

    def _run_stream(self, stream_id: str, conn: Connection) -> None:
        runner = _Runner(self, stream_id, conn)
        try:
            runner.run()
        except DBAPIError as exc:
            log.warning("stream %s: database error, released: %s", stream_id, str(exc.orig or exc).splitlines()[0])
        except Exception:
            log.exception("stream %s: unexpected error, released", stream_id)
        finally:
            runner.close()
            self._release(stream_id, conn)


class _Runner:
    """Delivers one claimed stream on the connection that holds it."""

    def __init__(self, worker: StreamWorker, stream_id: str, conn: Connection) -> None:
        self.worker = worker
        self.timing = worker.timing
        self.stream_id = stream_id
        self.conn = conn
        read_in_feed_order(conn)
        self.session = Session(bind=conn)
        self.sending = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"send-{stream_id[:8]}")
        self.ahead: _ReadAhead | None = None
        self.sender: Sender | None = None
        self.config_stamp: tuple[Any, ...] | None = None
        self.lease_until: datetime | None = None
        self.holder = None if worker.postgres else worker.worker_id

    def close(self) -> None:
        self.sending.shutdown(wait=True)
        if self.sender is not None:
            self.sender.close()
        self.session.close()

    def load(self) -> LogStream | None:
        """The stream as stored now, None once it is gone."""
        self.session.expire_all()
        found = self.session.execute(select(LogStream).where(col(LogStream.id) == self.stream_id)).scalars().first()
        self.session.commit()
        return found

    def renew(self) -> None:
        """SQLite: extend the lease when a third of it is used; _StaleError when another worker took it."""
        if self.holder is None:
            return
        now = utcnow()
        lease = timedelta(seconds=self.timing.lease_seconds)
        if self.lease_until is not None and self.lease_until - now > lease * 2 / 3:
            return
        until = now + lease
        result = self.conn.execute(
            update(LogStream)
            .where(col(LogStream.id) == self.stream_id, col(LogStream.lease_holder) == self.holder)
            .values(lease_expires=until)
        )
        if result.rowcount != 1:
            raise _StaleError("lease lost")
        self.lease_until = until

    def run(self) -> None:
        """Deliver batch after batch while the stream stays active and ours."""
        stop = self.worker.stop
        while not stop.is_set():
            stream = self.load()
            if stream is None or stream.status != "active":
                return
            try:
                self.renew()
                sender = self._sender(stream)
            except _StaleError:
                return
            if sender is None:
                return
            ahead, self.ahead = self.ahead, None
            if ahead is not None and ahead.state == _state(stream):
                batch = ahead.batch
            else:
                batch = read_batch(self.session, stream, self.timing.batch_size)
                self.session.commit()
            if not batch:
                stop.wait(self.timing.poll_seconds)
                continue
            try:
                self.deliver(stream, sender, batch)
            except _StaleError:
                continue  # reload: paused, replayed, reconfigured or gone

    def _sender(self, stream: LogStream) -> Sender | None:
        """The sender of the stream's current configuration (rebuilt when it changed)."""
        stamp = (stream.updated_at, stream.type, stream.target, stream.credentials, stream.options, stream.format)
        if self.sender is not None and stamp == self.config_stamp:
            return self.sender
        if self.sender is not None:
            self.sender.close()
            self.sender = None
        try:
            spec = full_spec(self.worker.secret_key, stream)
        except (CredentialsUnreadableError, StreamKeyMissingError, ValueError) as exc:
            self._fail(stream, str(exc), final=True)
            return None
        self.sender = sender_for(spec, self.timing.timeout_seconds, self.worker.targets)
        self.config_stamp = stamp
        return self.sender

    def deliver(self, stream: LogStream, sender: Sender, batch: list[Any]) -> None:
        """Send `batch` until acknowledged, then commit the position; retry as the failure says."""
        attempt = 0
        while not self.worker.stop.is_set():
            try:
                if attempt == 0:
                    self._send_reading_ahead(stream, sender, batch)
                else:
                    sender.send(batch)
            except DeliveryError as failure:
                if self._fail(stream, str(failure), final=not failure.retryable):
                    raise _StaleError("failing") from None
                if failure.retry_after is not None:  # the receiver's own wish, up to an hour
                    delay = min(failure.retry_after, MAX_RETRY_AFTER)
                else:
                    delay = self.timing.backoff(attempt)
                attempt += 1
                self._wait(stream, delay)
                continue
            result = self.conn.execute(delivered_update(stream.id, stream.epoch, self.holder, batch[-1], len(batch)))
            if result.rowcount != 1:
                raise _StaleError("position moved")
            if self.worker.on_batch is not None:
                self.worker.on_batch(stream.id, len(batch))
            return
        raise _StaleError("stopping")

    def _send_reading_ahead(self, stream: LogStream, sender: Sender, batch: list[Any]) -> None:
        """Send `batch`; while it is in flight, read the batch after it when this one was full (a
        backlog), kept in `ahead` for the next step. Returns or raises as the send does."""
        in_flight = self.sending.submit(sender.send, batch)
        try:
            if len(batch) >= self.timing.batch_size:
                last = batch[-1]
                following = read_batch(self.session, stream, self.timing.batch_size, (last.feed_pos, last.id))
                self.session.commit()
                state = (stream.epoch, stream.updated_at, stream.status, last.feed_pos, last.id)
                self.ahead = _ReadAhead(state=state, batch=following)
        finally:
            wait([in_flight])  # never leave a send behind (a failed read releases the stream)
        in_flight.result()

    def _fail(self, stream: LogStream, message: str, *, final: bool) -> bool:
        """Record a failed attempt; mark the stream failing when `final` or failing too long. True if failing."""
        now = utcnow()
        result = self.conn.execute(
            update(LogStream)
            .where(owned(stream.id, stream.epoch, self.holder))
            .values(
                failed=col(LogStream.failed) + 1,
                last_error=message[:2048],
                last_error_at=now,
                failing_since=func.coalesce(col(LogStream.failing_since), now),
            )
        )
        if result.rowcount != 1:
            raise _StaleError("changed")
        since = self.conn.execute(select(col(LogStream.failing_since)).where(col(LogStream.id) == stream.id)).scalar()
        if not final and (since is None or now - since < self.timing.failing_after):
            log.info("stream %s: delivery failed, will retry: %s", stream.id, message)
            return False
        self.conn.execute(
            update(LogStream)
            .where(owned(stream.id, stream.epoch, self.holder), col(LogStream.status) == "active")
            .values(status="failing")
        )
        log.warning("stream %s is failing: %s", stream.id, message)
        return True

    def _wait(self, stream: LogStream, seconds: float) -> None:
        """Wait before a retry, checking now and then that the stream is still active and unchanged."""
        deadline = utcnow() + timedelta(seconds=seconds)
        step = min(1.0, self.timing.lease_seconds / 3)
        while (left := (deadline - utcnow()).total_seconds()) > 0:
            if self.worker.stop.wait(min(left, step)):
                raise _StaleError("stopping")
            now = self.load()
            if (
                now is None
                or now.status != "active"
                or now.epoch != stream.epoch
                or now.updated_at != stream.updated_at
            ):
                raise _StaleError("changed")
            self.renew()
