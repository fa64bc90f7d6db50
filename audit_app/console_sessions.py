"""Server-side console sessions: opened by a sign-in, named by an HttpOnly cookie, checked on every action.

The browser holds only a random secret (the `audit_session` cookie); this module keeps who signed
in, until when, and the identity provider's refresh and ID tokens, in `console_session` under the
secret's SHA-256. Sign-ins, failed sign-ins and sign-outs are recorded as audit events
(`console.sign_in`, `console.sign_in_failed`, `console.sign_out`) in the principal's tenant
(super admins and partner admins: the platform tenant).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, delete, select

from audit_app.audit.access import Client
from audit_app.audit.filters import SYSTEM_TENANT
from audit_app.audit.ingest import _valid_ip, ingest_events, insert_tenants, record_access, registered_owners
from audit_app.auth import Principal, Role, claim_at
from audit_app.db import session_scope
from audit_app.models import AuditEventIn, ConsoleSession, ConsoleSignIn, utc, utcnow
from audit_app.settings import Settings

SESSION_COOKIE = "audit_session"
SSO_COOKIE = "audit_sso"  # binds an SSO authorization request to the browser that started it
HANDOFF_TTL = timedelta(seconds=60)
SSO_REQUEST_TTL = timedelta(minutes=10)
NOTICE_TTL = timedelta(minutes=10)
MAX_SECRET_LENGTH = 128
SIGN_IN, SIGN_IN_FAILED, SIGN_OUT = "console.sign_in", "console.sign_in_failed", "console.sign_out"


class SessionEndedError(Exception):
    """The cookie names no usable session: none, signed out, or expired (the message says which)."""


EXPIRED = "Your session has expired. Sign in again to continue."
SIGNED_OUT = "You are signed out."
NO_SESSION = "Sign in to use the console."


@dataclass(frozen=True)
class Grant:
    """What a sign-in establishes: who, by which means, and until when the credential is good."""

    kind: str  # sso, token or demo
    principal: Principal
    token_expires_at: datetime
    refresh_token: str | None = None
    id_token: str | None = None


def digest(secret: str) -> str:
    """The stored name of a browser-held secret (the secret itself is never stored)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    """A fresh unguessable secret for a cookie or a one-time link."""
    return secrets.token_urlsafe(32)


def principal_of(row: ConsoleSession) -> Principal:
    """The Principal a session stands for."""
    role: Role = row.role  # type: ignore[assignment]
    return Principal(
        sub=row.sub,
        email=row.email,
        role=role,
        scopes=frozenset(row.scopes.split()),
        tenant_id=row.tenant_id,
        partner_id=row.partner_id,
    )


def _fill(row: ConsoleSession, principal: Principal) -> None:
    row.sub, row.email, row.role = principal.sub, principal.email, principal.role
    row.scopes = " ".join(sorted(principal.scopes))
    row.tenant_id, row.partner_id = principal.tenant_id, principal.partner_id


def open_session(grant: Grant, settings: Settings, client: Client) -> str:
    """Start a session for `grant` and record the sign-in; returns the cookie's secret.

    The session ends at AUDIT_SESSION_TTL from now, and never later than the credential unless the
    provider gave a refresh token (then `current` refreshes it when it runs out).
    """
    secret = new_secret()
    now = utcnow()
    row = ConsoleSession(
        id=digest(secret),
        kind=grant.kind,
        sub="",
        role="",
        created_at=now,
        expires_at=now + settings.session_ttl,
        token_expires_at=utc(grant.token_expires_at),
        refresh_token=grant.refresh_token,
        id_token=grant.id_token,
    )
    _fill(row, grant.principal)
    with session_scope() as session:
        session.add(row)
        _prune(session, now)
        record_access(
            session,
            grant.principal,
            SIGN_IN,
            resource_type="console_session",
            details={"method": grant.kind},
            ip_address=client.ip_address,
            user_agent=client.user_agent,
        )
    return secret


def _prune(session: Session, now: datetime) -> None:
    """Forget sessions and sign-ins that can no longer be used."""
    session.execute(delete(ConsoleSession).where(col(ConsoleSession.expires_at) < now - timedelta(days=1)))
    session.execute(delete(ConsoleSignIn).where(col(ConsoleSignIn.expires_at) < now))


def find(secret: str | None) -> ConsoleSession | None:
    """The session a cookie's secret names (ended or expired ones too), or None."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    with session_scope() as session:
        return session.get(ConsoleSession, digest(secret))


def needs_refresh(row: ConsoleSession, now: datetime | None = None) -> bool:
    """Whether the session is alive but its provider token ran out and a refresh token can renew it.

    Raises SessionEndedError when the session is over (signed out, past its TTL, or its credential
    expired with nothing to renew it).
    """
    now = now or utcnow()
    if row.ended_at is not None:  # an expired session is ended at its (then) expiry
        raise SessionEndedError(EXPIRED if row.ended_at >= row.expires_at else SIGNED_OUT)
    if now >= row.expires_at:
        raise SessionEndedError(EXPIRED)
    if now < row.token_expires_at:
        return False
    if row.refresh_token:
        return True
    raise SessionEndedError(EXPIRED)


def renewed_by_another(secret: str | None, used: str) -> ConsoleSession | None:
    """The cookie's session when someone else already renewed it with the refresh token `used`
    (providers rotate refresh tokens, so a second refresh with `used` is refused), else None."""
    row = find(secret)
    if row is None or row.ended_at is not None or row.refresh_token in (None, used):
        return None
    try:
        return None if needs_refresh(row) else row
    except SessionEndedError:
        return None


def store_refresh(session_id: str, grant: Grant) -> None:
    """Keep what a refresh gave: the new expiry and tokens, and the principal the new claims map to."""
    with session_scope() as session:
        row = session.get(ConsoleSession, session_id)
        if row is None:
            return
        row.token_expires_at = utc(grant.token_expires_at)
        row.refresh_token = grant.refresh_token or row.refresh_token
        row.id_token = grant.id_token or row.id_token
        _fill(row, grant.principal)
        session.add(row)
        session.commit()


def end_session(secret: str | None, client: Client, *, expired: bool = False) -> ConsoleSession | None:
    """End the session a cookie names (once) and record the sign-out; returns it, or None when there was none."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    with session_scope() as session:
        row = session.get(ConsoleSession, digest(secret))
        if row is None or row.ended_at is not None:
            return row
        row.ended_at = utcnow()
        if expired:  # so every later check says "expired", not "signed out"
            row.expires_at = row.ended_at
        row.refresh_token = None
        session.add(row)
        record_access(
            session,
            principal_of(row),
            SIGN_OUT,
            resource_type="console_session",
            details={"method": row.kind, "reason": "expired" if expired else "signed out"},
            ip_address=client.ip_address,
            user_agent=client.user_agent,
            commit=False,
        )
        session.commit()
        return row


def record_failure(
    reason: str,
    client: Client,
    claims: dict[str, Any] | None = None,
    method: str = "sso",
    tenant_claim: str = "tenant_id",
) -> None:
    """Record a refused sign-in (`console.sign_in_failed`, result failure) with its reason.

    It lands in the tenant the person's claims name (at `tenant_claim`) when that tenant is
    registered, else in the platform's own tenant.
    """
    claims = claims or {}
    named = claim_at(claims, tenant_claim)
    tenant = named if isinstance(named, str) else None
    with session_scope() as session:
        owners = registered_owners(session, [tenant]) if tenant else {}
        target = tenant if tenant in owners else SYSTEM_TENANT
        if target == SYSTEM_TENANT:
            insert_tenants(session, {SYSTEM_TENANT: None})
        sub = claims.get("sub")
        email = claims.get("email")
        event = AuditEventIn(
            tenant_id=target,
            actor_id=str(sub)[:255] if sub else "anonymous",
            actor_email=str(email)[:320] if isinstance(email, str) and "@" in email else None,
            actor_type="user",
            action=SIGN_IN_FAILED,
            resource_type="console_session",
            result="failure",
            ip_address=_valid_ip(client.ip_address),
            user_agent=(client.user_agent or "")[:1024].replace("\x00", "") or None,
            details={"method": method, "reason": reason[:1000].replace("\x00", "")},
        )
        ingest_events(session, [event], register=False)
        session.commit()


def _put(purpose: str, data: dict[str, Any], ttl: timedelta, secret: str | None = None) -> str:
    secret = secret or new_secret()
    with session_scope() as session:
        session.add(ConsoleSignIn(id=digest(secret), purpose=purpose, data=data, expires_at=utcnow() + ttl))
        session.commit()
    return secret


def _take(purpose: str, secret: str | None, *, keep: bool = False) -> dict[str, Any] | None:
    """The data stored under `secret` for `purpose` while unexpired; gone after the first take unless `keep`."""
    if not secret or len(secret) > MAX_SECRET_LENGTH:
        return None
    with session_scope() as session:
        row = session.get(ConsoleSignIn, digest(secret))
        if row is None or row.purpose != purpose:
            return None
        data = dict(row.data) if row.expires_at > utcnow() else None
        if not keep or data is None:
            session.delete(row)
            session.commit()
        return data


def hand_over(grant: Grant, next_path: str) -> str:
    """A one-time code (valid HANDOFF_TTL) that `/auth/session` turns into a session cookie.

    Pasted tokens and demo personas are accepted in the console's websocket, which cannot set an
    HttpOnly cookie; the browser then loads `/auth/session?code=...`, which opens the session.
    """
    p = grant.principal
    data = {
        "kind": grant.kind,
        "token_expires_at": utc(grant.token_expires_at).isoformat(),
        "next": next_path,
        "principal": {
            "sub": p.sub,
            "email": p.email,
            "role": p.role,
            "scopes": sorted(p.scopes),
            "tenant_id": p.tenant_id,
            "partner_id": p.partner_id,
        },
    }
    return _put("handoff", data, HANDOFF_TTL)


def take_handoff(code: str | None) -> tuple[Grant, str] | None:
    """The grant and next page of a one-time code, once; None when unknown, used or expired."""
    data = _take("handoff", code)
    if data is None:
        return None
    p = data["principal"]
    principal = Principal(
        sub=p["sub"],
        email=p["email"],
        role=p["role"],
        scopes=frozenset(p["scopes"]),
        tenant_id=p["tenant_id"],
        partner_id=p["partner_id"],
    )
    grant = Grant(data["kind"], principal, datetime.fromisoformat(data["token_expires_at"]))
    return grant, str(data["next"])


def save_sso_request(binding: str, data: dict[str, Any]) -> None:
    """Keep an SSO authorization request (state, nonce, PKCE verifier, next page) under the browser's binding."""
    _put("sso", data, SSO_REQUEST_TTL, secret=binding)


def take_sso_request(binding: str | None) -> dict[str, Any] | None:
    """The authorization request the browser's binding names, once."""
    return _take("sso", binding)


def put_notice(text: str) -> str:
    """Keep a sentence for the sign-in page (why a sign-in failed); returns its key for the URL."""
    return _put("notice", {"text": text}, NOTICE_TTL)


def read_notice(key: str | None) -> str | None:
    """The sentence a notice key names, while it is fresh (only sentences the server wrote are shown)."""
    data = _take("notice", key, keep=True)
    return str(data["text"]) if data else None


def select_sessions(session: Session, sub: str) -> list[ConsoleSession]:
    """The sessions of one person, newest first (tests and support)."""
    query = select(ConsoleSession).where(ConsoleSession.sub == sub).order_by(col(ConsoleSession.created_at).desc())
    return list(session.exec(query).all())


def hand_logout(row: ConsoleSession) -> str:
    """A one-time code with which `/auth/logout` clears this ended session's cookie (and, for SSO,
    signs out at the provider with the ID token as hint)."""
    return _put("logout", {"session": row.id, "kind": row.kind, "id_token": row.id_token}, HANDOFF_TTL)


def take_logout(code: str | None) -> dict[str, Any] | None:
    """What `hand_logout` kept for a code, once."""
    return _take("logout", code)
