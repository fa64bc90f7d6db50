"""The FastAPI application factory."""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg
import psycopg.errors
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from audit_app import __version__
from audit_app.api import auth_routes, feed_routes, integrity_routes, routes, stream_routes, tenant_routes, view_routes
from audit_app.api.admission import WriterAdmission, WritersBusyError
from audit_app.api.docs import add_docs
from audit_app.api.limits import BodySizeLimit, HeaderSizeLimit
from audit_app.audit.access import EventNotFoundError, ExportUnavailableError
from audit_app.audit.ingest import IdempotencyConflictError, IngestError
from audit_app.audit.integrity import AccessNotRecordedError
from audit_app.audit.query import CursorError
from audit_app.audit.retention import RetentionError
from audit_app.audit.streams import StreamKeyMissingError, StreamNotFoundError
from audit_app.audit.verify_lock import VerificationBusyError
from audit_app.auth import AuthError, ForbiddenError, MissingCredentialsError
from audit_app.proxies import ClientAddress
from audit_app.settings import Settings, get_settings


def _unauthorized(_request: Request, exc: Exception) -> JSONResponse:
    """401 with the RFC 6750 challenge: `error="invalid_token"` and why, unless no token was sent."""
    challenge = "Bearer"
    if not isinstance(exc, MissingCredentialsError):
        description = "".join(c for c in str(exc) if " " <= c <= "~" and c not in '"\\')
        challenge = f'Bearer error="invalid_token", error_description="{description}"'
    return JSONResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": challenge})


def _status(code: int, headers: dict[str, str] | None = None) -> Callable[[Request, Exception], JSONResponse]:
    """A handler answering a domain error with `code` and its message as `detail`."""

    def handler(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)

    return handler


DOMAIN_ERRORS: dict[type[Exception], int] = {
    ForbiddenError: 403,
    EventNotFoundError: 404,
    StreamNotFoundError: 404,
    IdempotencyConflictError: 409,
    RetentionError: 422,
}
"""Domain errors answered with their message and a status (others have handlers of their own below)."""


def _verification_busy(_request: Request, exc: Exception) -> JSONResponse:
    """Another verification holds the chain: 429 with the seconds to wait."""
    retry_after = exc.retry_after if isinstance(exc, VerificationBusyError) else 5
    return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(retry_after)})


def _invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
    """A `cursor` this server did not hand out: the validation shape, pointing at the parameter."""
    error = {"type": "value_error", "loc": ["query", "cursor"], "msg": f"Value error, {exc}"}
    cursor = request.query_params.get("cursor")
    return JSONResponse({"detail": [error | ({"input": cursor} if _echoable(cursor) else {})]}, status_code=422)


def _invalid_batch(_request: Request, exc: Exception) -> JSONResponse:
    """An event the database layer refused: the FastAPI validation shape, pointing at the event."""
    assert isinstance(exc, IngestError)
    loc: list[str | int] = ["body", "events"]
    if exc.index is not None:
        loc.append(exc.index)
    loc.append(exc.field)
    return JSONResponse({"detail": [{"loc": loc, "msg": str(exc), "type": "value_error"}]}, status_code=422)


def _outage(exc: Exception) -> tuple[str, int] | None:
    """What a database error means to the client and the seconds to wait, or None for a defect.

    Every outage is a JSON 503 with `Retry-After`: the condition passes without a restart
    (db.py drops read-only connections; the pool reconnects after a restart).
    """
    if isinstance(exc, AccessNotRecordedError) and isinstance(exc.__cause__, Exception):
        exc = exc.__cause__  # a verification that could not be recorded is not answered
    if isinstance(exc, PoolTimeoutError):
        return "The server is busy (no database connection came free in time); retry shortly.", 2
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(error, psycopg.errors.LockNotAvailable):
        return "The tenant's audit chain is busy (locked longer than AUDIT_LOCK_TIMEOUT); retry shortly.", 2
    if isinstance(error, psycopg.errors.DiskFull):
        return "The database is out of disk space; retry later.", 30
    if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
        return "The database is read-only (maintenance or failover); retry shortly.", 5
    if isinstance(error, psycopg.OperationalError) or isinstance(exc, OperationalError):
        return "The database is unavailable; retry shortly.", 1
    return None


def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """A database outage (see `_outage`) as a JSON 503 with `Retry-After`; anything else stays a 500."""
    outage = _outage(exc)
    if outage is None:
        raise exc
    detail, retry_after = outage
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(retry_after)})


def _writers_busy(_request: Request, exc: Exception) -> JSONResponse:
    """Too many writers wait (for one tenant's chain, or in all): 503, before touching the database."""
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "2"})


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's HTTP errors, except that a body nested too deeply to parse says so (422)."""
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, RecursionError):
        error = {"type": "json_invalid", "loc": ["body"], "msg": "JSON nested too deeply (details allow 32 levels)"}
        return JSONResponse({"detail": [error]}, status_code=422)
    return await http_exception_handler(request, exc)


MAX_ECHOED_INPUT = 1024


def _echoable(value: object) -> bool:
    """Whether a rejected input can be echoed in a 422: small, finite, valid UTF-8 JSON."""
    try:
        return len(json.dumps(value, allow_nan=False, ensure_ascii=False).encode()) <= MAX_ECHOED_INPUT
    except (TypeError, ValueError):  # UnicodeEncodeError is a ValueError
        return False


def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 shape, echoing only inputs that are small and encodable (never a 500, never 5 MB back)."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        shown = {key: value for key, value in error.items() if key not in ("input", "ctx", "url")}
        if "input" in error and _echoable(error["input"]):
            shown["input"] = error["input"]
        if "ctx" in error and _echoable(error["ctx"]):
            shown["ctx"] = error["ctx"]
        shown["msg"] = str(shown.get("msg", "")).encode("utf-8", "replace").decode()
        shown["loc"] = [
            part if isinstance(part, int) else str(part).encode("utf-8", "replace").decode()
            for part in shown.get("loc", ())
        ]
        errors.append(shown)
    return JSONResponse({"detail": errors}, status_code=422)


def add_cors(api: FastAPI, settings: Settings) -> None:
    """Let the configured browser origins call the API (bearer tokens, so no cookies)."""
    api.add_middleware(
        CORSMiddleware,  # type: ignore[arg-type]
        allow_origins=settings.cors_origin_list,
        allow_credentials=False,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        expose_headers=["Content-Disposition"],
    )


def create_api(*, cors: bool = False) -> FastAPI:
    """A new FastAPI app with every route of the audit API.

    Reflex adds its own CORS middleware to the app it mounts into (`api_transformer`), so only
    the stand-alone server asks for `cors=True`.
    """
    settings = get_settings()
    settings.require_signing_key()
    api = FastAPI(title="audit_app", version=__version__, docs_url=None, redoc_url=None)
    api.state.writers = WriterAdmission(settings.max_writers, settings.tenant_writers)

    @api.get("/api/v1/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        """Liveness: the process answers (no database round trip, no worker thread)."""
        return {"status": "ok"}

    api.include_router(routes.router)
    api.include_router(routes.ingest_router)
    api.include_router(integrity_routes.router)
    api.include_router(feed_routes.router)
    api.include_router(tenant_routes.router)
    api.include_router(stream_routes.router)
    api.include_router(view_routes.router)
    api.include_router(auth_routes.router)
    # Routers with more fixed paths under /api/v1/admin/audit/ go above this line.
    api.include_router(routes.entry_router)
    api.add_exception_handler(RequestValidationError, _invalid_request)
    api.add_exception_handler(StarletteHTTPException, _http_error)
    for database_error in (OperationalError, InternalError, PoolTimeoutError, psycopg.OperationalError):
        api.add_exception_handler(database_error, _database_unavailable)
    api.add_exception_handler(psycopg.errors.ReadOnlySqlTransaction, _database_unavailable)
    api.add_exception_handler(AccessNotRecordedError, _database_unavailable)
    api.add_exception_handler(WritersBusyError, _writers_busy)
    api.add_exception_handler(AuthError, _unauthorized)
    for error, code in DOMAIN_ERRORS.items():
        api.add_exception_handler(error, _status(code))
    api.add_exception_handler(ExportUnavailableError, _status(503, {"Retry-After": "1"}))
    api.add_exception_handler(StreamKeyMissingError, _status(503))
    api.add_exception_handler(CursorError, _invalid_cursor)
    api.add_exception_handler(VerificationBusyError, _verification_busy)
    api.add_exception_handler(IngestError, _invalid_batch)
    api.add_middleware(BodySizeLimit)  # type: ignore[arg-type]
    api.add_middleware(ClientAddress, trusted=settings.trusted_proxy_networks)  # type: ignore[arg-type]
    api.add_middleware(HeaderSizeLimit)  # type: ignore[arg-type]  # outermost: checked first
    add_docs(api)
    if cors:
        add_cors(api, settings)
    return api
