"""The console's sign-in routes: the only places that set or clear the HttpOnly session cookie.

- `GET /auth/login?next=PATH`: start sign-in with SSO (authorization code flow with PKCE).
- `GET /auth/callback`: the provider's redirect; verify, open the session, go to `next`.
- `GET /auth/session?code=CODE`: open the session a pasted token or demo persona was accepted
  for (a one-time code from the console's websocket, which cannot set HttpOnly cookies).
- `GET /auth/logout?code=CODE`: clear the cookie of a session the console just ended and, for
  SSO sessions, continue to the provider's end_session_endpoint.
- `GET /auth/signed-out`: where the provider returns after its logout (the post-logout redirect URI).
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from audit_app.audit.access import Client
from audit_app.auth import AuthError, UnmappedRoleError
from audit_app.console_sessions import (
    HANDOFF_TTL,
    SESSION_COOKIE,
    SSO_COOKIE,
    SSO_REQUEST_TTL,
    digest,
    new_secret,
    open_session,
    put_notice,
    record_failure,
    save_sso_request,
    take_handoff,
    take_logout,
    take_sso_request,
)
from audit_app.settings import Settings, get_settings
from audit_app.sso import SignInError, authorization_request, complete, grant_for, logout_url

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
HOME = "/events"
NO_ACCESS = "/no-access"


def safe_next(value: str | None) -> str:
    """A page of this console to return to after sign-in (path and query only), else the events page."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\", "/auth/")) or len(value) > 4096:
        return HOME
    if any(c < " " for c in value) or value in ("/", "/no-access") or value.startswith(("/?", "/no-access?")):
        return HOME
    return value


def _client(request: Request) -> Client:
    return Client(request.client.host if request.client else None, request.headers.get("user-agent"))


def set_session_cookie(response: Response, secret: str, settings: Settings) -> None:
    """The session cookie: HttpOnly (no page script reads it), SameSite=Lax, Secure over https."""
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(settings.session_ttl.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def _refused(notice: str, *, page: str = "/") -> RedirectResponse:
    key = put_notice(notice)
    return RedirectResponse(f"{page}?" + urlencode({"notice": key}), status_code=303)


@router.get("/auth/login")
async def sso_login(request: Request, next: str | None = None) -> Response:
    """Send the browser to the identity provider, remembering (server-side) where it wanted to go."""
    settings = get_settings()
    if not settings.sso_enabled:
        return await asyncio.to_thread(_refused, "Sign-in with SSO is not configured (AUDIT_OIDC_ISSUER).")
    try:
        url, kept = await authorization_request(request, settings)
    except SignInError as exc:
        await asyncio.to_thread(record_failure, str(exc), _client(request))
        return await asyncio.to_thread(_refused, str(exc))
    binding = new_secret()
    await asyncio.to_thread(save_sso_request, binding, {"authlib": kept, "next": safe_next(next)})
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        SSO_COOKIE,
        binding,
        max_age=int(SSO_REQUEST_TTL.total_seconds()),
        path="/auth/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return response


@router.get("/auth/callback")
async def sso_callback(request: Request) -> Response:
    """The provider's redirect: verify everything, open the session, return to the requested page."""
    settings = get_settings()
    client = _client(request)
    kept = await asyncio.to_thread(take_sso_request, request.cookies.get(SSO_COOKIE))
    claims = None
    try:
        if not settings.sso_enabled:
            raise SignInError("Sign-in with SSO is not configured (AUDIT_OIDC_ISSUER).")
        if kept is None:
            raise SignInError(
                "This sign-in was not started in this browser, was already completed, or took too long. Sign in again."
            )
        token, claims = await complete(request, settings, kept["authlib"])
        grant = grant_for(token, claims, settings)
        secret = await asyncio.to_thread(open_session, grant, settings, client)
    except (SignInError, AuthError) as exc:
        reason = str(exc)
        await asyncio.to_thread(record_failure, reason, client, claims, "sso", settings.tenant_claim)
        if isinstance(exc, UnmappedRoleError):
            response = await asyncio.to_thread(_refused, reason, page=NO_ACCESS)
        else:
            response = await asyncio.to_thread(_refused, f"Sign-in with SSO failed: {reason}")
        response.delete_cookie(SSO_COOKIE, path="/auth/")
        return response
    response = RedirectResponse(safe_next(kept.get("next")), status_code=303)
    set_session_cookie(response, secret, settings)
    response.delete_cookie(SSO_COOKIE, path="/auth/")
    return response


@router.get("/auth/session")
async def hand_over_session(request: Request, code: str | None = None) -> Response:
    """Open the session the console accepted a pasted token or demo persona for (one-time code)."""
    settings = get_settings()
    taken = await asyncio.to_thread(take_handoff, code)
    if taken is None:
        return await asyncio.to_thread(
            _refused,
            f"That sign-in link is used or older than {int(HANDOFF_TTL.total_seconds())} seconds. Sign in again.",
        )
    grant, next_path = taken
    secret = await asyncio.to_thread(open_session, grant, settings, _client(request))
    response = RedirectResponse(safe_next(next_path), status_code=303)
    set_session_cookie(response, secret, settings)
    return response


@router.get("/auth/logout")
async def sign_out(request: Request, code: str | None = None) -> Response:
    """Clear the cookie of the session the console just ended, then (SSO) sign out at the provider too.

    The code proves the console ended this very session, so a link from elsewhere signs nobody out.
    """
    settings = get_settings()
    cookie = request.cookies.get(SESSION_COOKIE)
    ended = await asyncio.to_thread(take_logout, code)
    if ended is None or not cookie or ended.get("session") != digest(cookie):
        return RedirectResponse("/", status_code=303)
    target = "/?signed_out=1"
    if ended.get("kind") == "sso" and settings.sso_enabled:
        target = await logout_url(settings, request, ended.get("id_token")) or target
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=settings.secure_cookies)
    return response


@router.get("/auth/signed-out")
async def signed_out() -> Response:
    """The provider's post-logout redirect: on to the sign-in page, which says so."""
    return RedirectResponse("/?signed_out=1", status_code=303)
