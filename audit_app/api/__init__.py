"""The REST API: `create_api()` builds the FastAPI app; `app` serves it alone under uvicorn."""

from __future__ import annotations

import sys
from functools import cache
from typing import Any

from fastapi import FastAPI

from audit_app.api.app import create_api
from audit_app.startup import checked_settings

__all__ = ["app", "create_api"]

# Importing the submodule `app.py` bound the package attribute `app` to that module; drop the
# binding so `audit_app.api:app` (uvicorn) reaches `__getattr__` below and gets the ASGI app.
globals().pop("app", None)


def _leave_forwarded_headers_to_the_app() -> None:
    """Stop uvicorn from rewriting the client address from X-Forwarded-For (ClientAddress decides).

    uvicorn wraps the app it loads in its ProxyHeadersMiddleware, trusting FORWARDED_ALLOW_IPS
    (default 127.0.0.1): any local client could choose the address access events record. It
    wraps right after importing `audit_app.api:app`, looking the class up then, so the
    pass-through set here (while the app is built) is what it uses.
    """
    config = sys.modules.get("uvicorn.config")
    if config is not None:
        config.ProxyHeadersMiddleware = _as_is  # type: ignore[attr-defined]


def _as_is(app: Any, **_options: Any) -> Any:
    return app


@cache
def _standalone_app() -> FastAPI:
    """The app of `uvicorn audit_app.api:app`: built once, with CORS (no Reflex around it)."""
    checked_settings()
    _leave_forwarded_headers_to_the_app()
    return create_api(cors=True)


def __getattr__(name: str) -> FastAPI:
    """`audit_app.api:app` is built on first use, so importing the package starts nothing."""
    if name == "app":
        return _standalone_app()
    raise AttributeError(name)
