"""Running domain work for a page: verify the caller, then query off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sqlmodel import Session

from audit_app.db import session_scope

T = TypeVar("T")


async def in_thread(work: Callable[[Session], T], *, writes: bool = False) -> T:
    """Run `work(session)` in a worker thread, so a slow query never stalls other browsers.

    The session is on the read database (a replica, when configured) unless the work `writes`.
    """

    def run() -> T:
        with session_scope(read=not writes) as session:
            return work(session)

    return await asyncio.to_thread(run)
