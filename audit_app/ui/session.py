"""Running domain work for a page: verify the caller, then query off the event loop."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar, get_type_hints

import reflex as rx
from sqlmodel import Session

from audit_app.auth import Principal
from audit_app.db import session_scope
from audit_app.ui.state.auth import current_principal

T = TypeVar("T")
S = TypeVar("S", bound=rx.State)
P = ParamSpec("P")


async def in_thread(work: Callable[[Session], T], *, writes: bool = False) -> T:
    """Run `work(session)` in a worker thread, so a slow query never stalls other browsers.

    The session is on the read database (a replica, when configured) unless the work `writes`.
    """

    def run() -> T:
        with session_scope(read=not writes) as session:
            return work(session)

    return await asyncio.to_thread(run)


def signed_in(
    handler: Callable[Concatenate[S, Principal, P], AsyncIterator[Any]],
) -> Callable[Concatenate[S, P], AsyncIterator[Any]]:
    """The one sign-in check of the console's event handlers.

    Wraps an async-generator handler `handler(self, principal, *args)`: the stored token is
    verified on the server first; without a valid one the handler does not run and the browser
    goes to sign-in. Reflex sees the handler's own arguments only (principal left out).
    """

    @functools.wraps(handler)
    async def run(self: S, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[Any]:
        principal = await current_principal(self)
        if not isinstance(principal, Principal):
            yield principal
            return
        async for update in handler(self, principal, *args, **kwargs):
            yield update

    signature = inspect.signature(handler)
    parameters = list(signature.parameters.values())
    run.__signature__ = signature.replace(parameters=[parameters[0], *parameters[2:]])  # type: ignore[attr-defined]
    # resolved here, against the handler's module (Reflex converts the event's payload by them)
    run.__annotations__ = {k: v for k, v in get_type_hints(handler).items() if k != parameters[1].name}
    del run.__wrapped__  # type: ignore[attr-defined]
    return run
