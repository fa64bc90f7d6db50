"""The REST API: `create_api()` builds the FastAPI app; `app` serves it alone under uvicorn."""

from __future__ import annotations

from fastapi import FastAPI

from audit_app.api.app import create_api

__all__ = ["app", "create_api"]


def __getattr__(name: str) -> FastAPI:
    """`audit_app.api:app` is built on first use, so importing the package starts nothing."""
    if name == "app":
        return create_api()
    raise AttributeError(name)
