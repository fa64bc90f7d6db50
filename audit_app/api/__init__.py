"""The REST API: `create_api()` builds the FastAPI app; `app` serves it alone under uvicorn."""

from __future__ import annotations

from functools import cache

from fastapi import FastAPI

from audit_app.api.app import create_api
from audit_app.startup import checked_settings

__all__ = ["app", "create_api"]

# Importing the submodule `app.py` bound the package attribute `app` to that module; drop the
# binding so `audit_app.api:app` (uvicorn) reaches `__getattr__` below and gets the ASGI app.
globals().pop("app", None)


@cache
def _standalone_app() -> FastAPI:
    """The app of `uvicorn audit_app.api:app`: built once, with CORS (no Reflex around it)."""
    checked_settings()
    return create_api(cors=True)


def __getattr__(name: str) -> FastAPI:
    """`audit_app.api:app` is built on first use, so importing the package starts nothing."""
    if name == "app":
        return _standalone_app()
    raise AttributeError(name)
