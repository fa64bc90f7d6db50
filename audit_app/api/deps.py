"""Dependencies of the routes: the database session, the settings and the authenticated caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Header, Query
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from audit_app.audit.download_tokens import spend_download_token
from audit_app.auth import (
    SCOPE_ADMIN,
    SCOPE_EXPORT,
    SCOPE_READ,
    SCOPE_WRITE,
    TOKEN_LEEWAY,
    AuthError,
    MissingCredentialsError,
    Principal,
    decode_download_token,
    decode_token,
)
from audit_app.db import close_session, read_only_session, session_scope
from audit_app.models import utcnow
from audit_app.settings import Settings, get_settings


def get_session() -> Iterator[Session]:
    """A session on the primary database for one request (writes, and reads that must see them)."""
    with session_scope() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_snapshot_session() -> Iterator[Session]:
    """A session on the read database whose statements share one transaction (one snapshot)."""
    with session_scope(read=True) as session:
        yield session


SnapshotSessionDep = Annotated[Session, Depends(get_snapshot_session)]


async def get_read_session() -> AsyncIterator[Session]:
    """A transaction-less session on the read database for a request that only reads.

    Async, so opening and closing it costs no hop to a worker thread: it connects on its first
    query, in the endpoint's thread, and closing it sends nothing to the database.
    """
    session = read_only_session()
    try:
        yield session
    finally:
        close_session(session)


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


async def current_settings() -> Settings:
    """The process-wide settings (cached; no thread hop, unlike a plain `def` dependency)."""
    return get_settings()


SettingsDep = Annotated[Settings, Depends(current_settings)]


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or AuthError (401)."""
    if not authorization:
        raise MissingCredentialsError("Missing Authorization header; send `Authorization: Bearer <token>`.")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthError("Malformed Authorization header; send `Authorization: Bearer <token>`.")
    return token


async def verified_principal(token: str, settings: Settings) -> Principal:
    """`decode_token`, in a worker thread when it may fetch the identity provider's keys."""
    if settings.uses_provider_keys:
        return await run_in_threadpool(decode_token, token, settings)
    return decode_token(token, settings)


async def get_principal(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The caller of a bearer-token request."""
    return await verified_principal(bearer_token(authorization), settings)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_reader(principal: CurrentPrincipal) -> Principal:
    """A caller allowed to read audit logs (`audit:read`)."""
    principal.require_scope(SCOPE_READ)
    return principal


async def get_writer(principal: CurrentPrincipal) -> Principal:
    """A caller allowed to write events (`audit:write`)."""
    principal.require_scope(SCOPE_WRITE)
    return principal


async def get_administrator(principal: CurrentPrincipal) -> Principal:
    """A caller allowed to make administrative changes (`audit:admin`): retention, legal hold, tenants."""
    principal.require_scope(SCOPE_ADMIN)
    return principal


async def get_exporter(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
    download_token: Annotated[
        str | None,
        Query(description="A short-lived download token (browser downloads), instead of the Authorization header"),
    ] = None,
) -> Principal:
    """A caller allowed to export (`audit:export`), by bearer token or by download token."""
    if download_token is not None:
        principal = decode_download_token(download_token, settings)
        await run_in_threadpool(spend, principal)
    else:
        principal = await verified_principal(bearer_token(authorization), settings)
    principal.require_scope(SCOPE_EXPORT)
    return principal


def spend(download: Principal) -> None:
    """Spend a download token's `jti`, or AuthError when it was used before (single use)."""
    assert download.token_id is not None
    assert download.token_expires is not None
    expires = datetime.fromtimestamp(download.token_expires + TOKEN_LEEWAY, UTC)
    with session_scope() as session:
        fresh = spend_download_token(session, download.token_id, expires, utcnow())
        session.commit()
    if not fresh:
        raise AuthError("This download token was already used; start the export again from the console.")


ReaderPrincipal = Annotated[Principal, Depends(get_reader)]
WriterPrincipal = Annotated[Principal, Depends(get_writer)]
ExporterPrincipal = Annotated[Principal, Depends(get_exporter)]
AdminPrincipal = Annotated[Principal, Depends(get_administrator)]
