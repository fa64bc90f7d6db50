"""Who is signed in: a server-side session named by an HttpOnly cookie, checked on every action.

The browser holds no token: only the `audit_session` cookie, which page scripts cannot read and
which only the `/auth/*` routes set or clear (a websocket event cannot set an HttpOnly cookie).
A pasted token or a demo persona is verified here, then handed to `/auth/session` by a one-time
code; sign-in with SSO goes to `/auth/login`. The state reads the cookie from the headers of its
websocket, which a page load (every redirect from those routes is one) renews.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from datetime import UTC, datetime
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlencode

import jwt
import reflex as rx
from reflex.event import EventSpec
from reflex.state import BaseState

from audit_app.audit.access import Client
from audit_app.auth import SCOPE_ADMIN, SCOPE_READ, AuthError, Principal, decode_token, issue_token
from audit_app.console_sessions import (
    EXPIRED,
    NO_SESSION,
    SESSION_COOKIE,
    SIGNED_OUT,
    Grant,
    SessionEndedError,
    end_session,
    find,
    hand_logout,
    hand_over,
    needs_refresh,
    principal_of,
    read_notice,
    record_failure,
    renewed_by_another,
    store_refresh,
)
from audit_app.demo import DEMO_PERSONAS
from audit_app.models import ConsoleSession
from audit_app.settings import get_settings
from audit_app.sso import SignInError, refresh

SIGN_IN_ROUTE = "/"
HOME_ROUTE = "/events"
ROLE_LABELS = {"super_admin": "Super admin", "partner_admin": "Partner admin", "tenant_admin": "Tenant admin"}
EXPIRED_NOTICE = EXPIRED
# one lock per session being refreshed; a lock lives while a refresh holds or awaits it
_refreshing: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
RENEWED_ELSEWHERE_CHECKS = (0.0, 0.5, 1.0)  # seconds to wait before each look for another worker's refresh


def _go(url: str) -> EventSpec:
    """A full page load of `url` (the `/auth/*` routes are HTTP routes, not pages of the app)."""
    return rx.call_script(f"window.location.assign({json.dumps(url)})")


def _cookie_secret(header: str) -> str | None:
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(header or "")
    except CookieError:
        return None
    morsel = cookies.get(SESSION_COOKIE)
    return morsel.value if morsel is not None else None


def _next_of(path: str, query: str) -> str:
    """The page (path and query) to come back to after sign-in, for the sign-in page's URL."""
    if not path.startswith("/") or path == SIGN_IN_ROUTE or path.startswith("/no-access"):
        return ""
    return path.rstrip("/") + (f"?{query}" if query else "")


async def _reset_page_states(state: rx.State, keep: type[rx.State]) -> None:
    """Put every page state of the console back to its defaults (sign-out, or another person's session).

    So nothing of the previous person's views - figures, pickers, an open event - stays in the
    tab's server-side state to be sent again.
    """
    for cls in sorted(_console_states(rx.State), key=lambda c: c.get_full_name()):
        if cls is keep:
            continue
        page = await state.get_state(cls)
        page.reset()


def _console_states(root: type[BaseState]) -> list[type[BaseState]]:
    """Every state class of the console below `root`, nested ones too (the drawer's lives under the events')."""
    found: list[type[BaseState]] = []
    for cls in root.get_substates():
        if cls.__module__.startswith("audit_app."):
            found.append(cls)
        found.extend(_console_states(cls))
    return found


class AuthState(rx.State):
    """What the header shows about the session's principal, and the sign-in page's choices."""

    token_input: str = ""
    notice: str = ""
    who: str = ""
    role_label: str = ""
    scope_label: str = ""
    can_admin: bool = False  # the principal has audit:admin (the Streams page is offered)
    demo: bool = False
    sso: bool = False
    personas: list[dict[str, str]] = []
    next_page: str = ""
    _principal: Principal | None = None
    _session: str = ""  # the stored name of the session this tab's page states belong to

    def _secret(self) -> str | None:
        return _cookie_secret(self.router.headers.cookie)

    def _client(self) -> Client:
        return Client(self.router.session.client_ip, self.router.headers.user_agent)

    async def _check(self) -> Principal:
        """The principal of the cookie's session, checked now (never trust the browser); refreshes
        the provider's tokens when they ran out. Raises SessionEndedError saying why not."""
        secret = self._secret()
        row = await asyncio.to_thread(find, secret)
        if row is None:
            raise SessionEndedError(NO_SESSION)
        principal = principal_of(row)
        if needs_refresh(row):
            principal = await self._refresh(row, secret)
        if self._session != row.id:
            if self._session:
                # another session's page states: reset them. A tab not yet bound to any session
                # (a new tab, or after sign-out) holds only defaults, as every page loads through
                # here: resetting those would only send the whole state tree again.
                await _reset_page_states(self, AuthState)
            self._session = row.id
        self._principal = principal
        self.who = principal.email or principal.sub
        self.role_label = ROLE_LABELS.get(principal.role, principal.role)
        self.scope_label = principal.describes_scope
        self.can_admin = SCOPE_ADMIN in principal.scopes
        return principal

    async def _refresh(self, row: ConsoleSession, secret: str | None) -> Principal:
        """Renew an SSO session's tokens with its refresh token (once, however many events ask at once).

        Providers rotate refresh tokens, so a second refresh with the same token is refused: a
        refusal ends the session only when no other event or worker renewed it meanwhile."""
        lock = _refreshing.get(row.id)
        if lock is None:
            lock = _refreshing[row.id] = asyncio.Lock()
        async with lock:
            current = await asyncio.to_thread(find, secret)
            if current is None or not needs_refresh(current):
                return principal_of(current or row)
            used = current.refresh_token
            assert used is not None
            try:
                grant = await refresh(get_settings(), principal_of(current), used)
            except (SignInError, AuthError) as exc:
                renewed = await _renewed_elsewhere(secret, used)
                if renewed is not None:
                    return principal_of(renewed)
                await asyncio.to_thread(end_session, secret, self._client(), expired=True)
                await asyncio.to_thread(record_failure, f"refresh: {exc}", self._client(), None, "sso")
                raise SessionEndedError(EXPIRED) from None
            await asyncio.to_thread(store_refresh, current.id, grant)
            return grant.principal

    def _forget(self) -> None:
        self._principal = None
        self.who = self.role_label = self.scope_label = ""
        self.can_admin = False

    def _expire(self, exc: SessionEndedError) -> EventSpec:
        """Send the user to sign-in with the reason, remembering the page they asked for."""
        self._forget()
        self.notice = str(exc)
        next_page = _next_of(self.router.url.path, self.router.url.query)
        return rx.redirect(SIGN_IN_ROUTE + (f"?{urlencode({'next': next_page})}" if next_page else ""))

    @rx.event
    def set_token_input(self, value: str) -> None:
        """Keep what the user pastes (only submitted on Sign in)."""
        self.token_input = value[:8192]

    @rx.event
    async def load_sign_in(self) -> EventSpec | None:
        """Offer SSO and the demo personas; a live session goes straight on to the page asked for."""
        settings = get_settings()
        self.demo, self.sso = settings.demo, settings.sso_enabled
        self.personas = (
            [{"key": p.key, "label": p.label, "email": p.email} for p in DEMO_PERSONAS] if settings.demo else []
        )
        params = self.router.url.query_parameters
        self.next_page = str(params.get("next", ""))[:4096]
        if params.get("signed_out"):
            self.notice = SIGNED_OUT
        if params.get("notice"):
            notice = await asyncio.to_thread(read_notice, str(params["notice"]))
            self.notice = notice or self.notice
        try:
            await self._check()
        except SessionEndedError:
            self._forget()
            return None
        return rx.redirect(self.next_page or HOME_ROUTE)

    @rx.event
    async def load_no_access(self) -> None:
        """Show why the provider's sign-in gave no access (a notice only the server wrote)."""
        self._forget()
        key = self.router.url.query_parameters.get("notice")
        notice = await asyncio.to_thread(read_notice, str(key)) if key else None
        self.notice = notice or ""

    @rx.event
    async def sign_in(self, form: dict[str, str] | None = None) -> EventSpec | None:
        """Accept a pasted bearer token once the server has verified it."""
        token = (form or {}).get("token", self.token_input).strip()
        settings = get_settings()
        try:
            principal = await asyncio.to_thread(decode_token, token, settings)
            if principal.token_use is not None:
                raise AuthError("This token is restricted to downloads.")
            if SCOPE_READ not in principal.scopes:
                raise AuthError(f"This token lacks the {SCOPE_READ!r} scope the console needs.")
        except AuthError as exc:
            self._forget()
            self.notice = f"That token was not accepted: {exc}"
            await asyncio.to_thread(record_failure, str(exc), self._client(), None, "token")
            return None
        expires = jwt.decode(token, options={"verify_signature": False})["exp"]
        self.token_input = ""
        return await self._hand_over(Grant("token", principal, datetime.fromtimestamp(float(expires), UTC)))

    async def _hand_over(self, grant: Grant) -> EventSpec:
        """Let `/auth/session` open the session (it sets the HttpOnly cookie) and go on to the page asked for."""
        self.notice = ""
        code = await asyncio.to_thread(hand_over, grant, self.next_page or HOME_ROUTE)
        return _go("/auth/session?" + urlencode({"code": code}))

    @rx.event
    async def sign_in_persona(self, key: str) -> EventSpec | None:
        """Demo mode only: mint a token for a demo persona on the server and sign in with it."""
        settings = get_settings()
        persona = next((p for p in DEMO_PERSONAS if p.key == key), None)
        if not settings.demo or persona is None:
            self.notice = "Demo sign-in is not available."
            return None
        ttl = int(settings.session_ttl.total_seconds())
        token = issue_token(
            settings,
            role=persona.role,
            sub=persona.sub,
            email=persona.email,
            tenant_id=persona.tenant_id,
            partner_id=persona.partner_id,
            ttl=ttl,
        )
        principal = decode_token(token, settings)
        expires = datetime.fromtimestamp(jwt.decode(token, options={"verify_signature": False})["exp"], UTC)
        return await self._hand_over(Grant("demo", principal, expires))

    @rx.event
    def sign_in_sso(self) -> EventSpec:
        """Start sign-in with the identity provider, coming back to the page asked for."""
        return _go("/auth/login?" + urlencode({"next": self.next_page or HOME_ROUTE}))

    @rx.event
    async def sign_out(self) -> EventSpec:
        """End the session (recorded), reset every page state, then let `/auth/logout` clear the
        cookie and, for SSO, sign out at the provider."""
        secret = self._secret()
        row = await asyncio.to_thread(end_session, secret, self._client())
        await _reset_page_states(self, AuthState)
        self.reset()
        self.notice = SIGNED_OUT
        if row is None:
            return rx.redirect(SIGN_IN_ROUTE)
        code = await asyncio.to_thread(hand_logout, row)
        return _go("/auth/logout?" + urlencode({"code": code}))


async def _renewed_elsewhere(secret: str | None, used: str) -> ConsoleSession | None:
    """The session when another event or worker renewed it with the refresh token `used` (its
    refresh may still be on its way back from the provider, so look a few times), else None."""
    for wait in RENEWED_ELSEWHERE_CHECKS:
        await asyncio.sleep(wait)
        row = await asyncio.to_thread(renewed_by_another, secret, used)
        if row is not None:
            return row
    return None


async def current_principal(state: rx.State) -> Principal | EventSpec:
    """The verified principal behind `state`'s session, or the redirect to sign-in."""
    auth = await state.get_state(AuthState)
    try:
        return await auth._check()
    except SessionEndedError as exc:
        return auth._expire(exc)
