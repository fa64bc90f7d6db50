"""Admission of writers: one tenant's trouble never takes the connections of all tenants.

A held chain lock (or a slow disk) makes the writers of one tenant wait in the database. Without
a bound they pile up until they hold every pooled connection and every worker thread, and then
reads and other tenants' writes fail too. So a process lets at most `AUDIT_MAX_WRITERS` writes
into the database at once (the next ones wait up to `AUDIT_POOL_TIMEOUT` in the event loop,
holding no thread), at most `AUDIT_TENANT_WRITERS` per tenant (more answer 503 at once), and the
database work of a request whose client has gone is cancelled.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from audit_app.db import session_scope

T = TypeVar("T")
POLL_SECONDS = 0.02
DISCONNECT_POLL_SECONDS = 0.25


class WritersBusyError(RuntimeError):
    """Too many writers are waiting (for one tenant, or in all): 503 with Retry-After."""


class WriterAdmission:
    """Counts the writers of one process, in all and by tenant (thread-safe, loop-agnostic)."""

    def __init__(self, max_writers: int, tenant_writers: int) -> None:
        self.max_writers = max_writers
        self.tenant_writers = tenant_writers
        self._lock = threading.Lock()
        self._running = 0
        self._by_tenant: Counter[str] = Counter()

    @asynccontextmanager
    async def admit(self, tenant_ids: Iterable[str], wait: float) -> AsyncIterator[None]:
        """Hold a writer's place for `tenant_ids`, or raise WritersBusyError."""
        tenants = sorted(set(tenant_ids))
        with self._lock:
            crowded = [t for t in tenants if self._by_tenant[t] >= self.tenant_writers]
            if crowded:
                raise WritersBusyError(
                    f"Too many writes are waiting for the audit chain of tenant {crowded[0]!r}; retry shortly."
                )
            self._by_tenant.update(tenants)
        try:
            deadline = time.monotonic() + wait
            while not self._try_start():
                if time.monotonic() > deadline:
                    raise WritersBusyError("The server is busy writing; retry shortly.")
                await asyncio.sleep(POLL_SECONDS)
            try:
                yield
            finally:
                with self._lock:
                    self._running -= 1
        finally:
            with self._lock:
                self._by_tenant.subtract(tenants)
                self._by_tenant += Counter()  # drop the zero counts

    def _try_start(self) -> bool:
        with self._lock:
            if self._running >= self.max_writers:
                return False
            self._running += 1
            return True


def _cancel(driver_connection: Any) -> None:
    """Stop the statement running on a DB-API connection, from another thread."""
    if hasattr(driver_connection, "cancel"):  # psycopg: the server cancels the statement
        driver_connection.cancel()
    else:  # sqlite3
        driver_connection.interrupt()


async def write_until_disconnect(request: Request, work: Callable[[Session], T]) -> T:
    """Run `work` on a primary session in a worker thread; cancel its database work if the client goes.

    A cancelled statement fails in the worker (`QueryCanceled` / `interrupted`), its transaction
    rolls back, and the connection returns to the pool at once instead of waiting for a lock.
    """
    connections: list[Any] = []

    def run() -> T:
        with session_scope() as session:
            connections.append(session.connection().connection.driver_connection)
            return work(session)

    task = asyncio.ensure_future(run_in_threadpool(run))
    while not task.done():
        await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
        if not task.done() and await request.is_disconnected():
            for connection in connections:
                _cancel(connection)
            break
    return await task
