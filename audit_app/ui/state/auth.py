"""Who is signed in: the bearer token kept in the browser, verified on the server every time."""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec

from audit_app.auth import SCOPE_READ, AuthError, Principal, decode_token, issue_token
from audit_app.seed import DEMO_PERSONAS
from audit_app.settings import get_settings

SIGN_IN_ROUTE = "/"
HOME_ROUTE = "/events"
ROLE_LABELS = {"super_admin": "Super admin", "partner_admin": "Partner admin", "tenant_admin": "Tenant admin"}
EXPIRED_NOTICE = "Your session has expired. Sign in again to continue."


def sign_in_problem(exc: AuthError) -> str:
    """The sentence the sign-in page shows for a token that no longer verifies."""
    message = str(exc)
    if "expired" in message:
        return EXPIRED_NOTICE
    return f"Your token was not accepted: {message} Sign in again."


class AuthState(rx.State):
    """The token (browser storage, untrusted) and what the header shows about its principal."""

    token: str = rx.LocalStorage("", name="audit_console_token", sync=True)
    token_input: str = ""
    notice: str = ""
    who: str = ""
    role_label: str = ""
    scope_label: str = ""
    demo: bool = False
    personas: list[dict[str, str]] = []
    _principal: Principal | None = None

    def _verify(self) -> Principal:
        """Verify the stored token now (never trust the browser) and refresh the header."""
        principal = decode_token(self.token, get_settings())
        if principal.token_use is not None:
            raise AuthError("This token is restricted to downloads.")
        if SCOPE_READ not in principal.scopes:
            raise AuthError(f"This token lacks the {SCOPE_READ!r} scope the console needs.")
        self._principal = principal
        self.who = principal.email or principal.sub
        self.role_label = ROLE_LABELS.get(principal.role, principal.role)
        self.scope_label = principal.describes_scope
        return principal

    def _expire(self, exc: AuthError) -> EventSpec:
        """Forget the token and send the user to sign-in with the reason."""
        had_token = bool(self.token)
        self._forget()
        self.notice = sign_in_problem(exc) if had_token else "Sign in to use the console."
        return rx.redirect(SIGN_IN_ROUTE)

    def _forget(self) -> None:
        self.token = ""
        self._principal = None
        self.who = self.role_label = self.scope_label = ""

    @rx.event
    def set_token_input(self, value: str) -> None:
        """Keep what the user pastes (only submitted on Sign in)."""
        self.token_input = value[:8192]

    @rx.event
    def load_sign_in(self) -> EventSpec | None:
        """Offer the demo personas; a still-valid session goes straight to the events."""
        settings = get_settings()
        self.demo = settings.demo
        self.personas = (
            [{"key": p.key, "label": p.label, "email": p.email} for p in DEMO_PERSONAS] if settings.demo else []
        )
        if self.token:
            try:
                self._verify()
            except AuthError as exc:
                self._forget()
                self.notice = sign_in_problem(exc)
                return None
            return rx.redirect(HOME_ROUTE)
        return None

    @rx.event
    def sign_in(self, form: dict[str, str] | None = None) -> EventSpec | None:
        """Accept a pasted bearer token once the server has verified it."""
        self.token = (form or {}).get("token", self.token_input).strip()
        return self._accept_token()

    def _accept_token(self) -> EventSpec | None:
        try:
            self._verify()
        except AuthError as exc:
            self._forget()
            self.notice = f"That token was not accepted: {exc}"
            return None
        self.token_input = ""
        self.notice = ""
        return rx.redirect(HOME_ROUTE)

    @rx.event
    def sign_in_persona(self, key: str) -> EventSpec | None:
        """Demo mode only: mint a token for a demo persona on the server and sign in with it."""
        settings = get_settings()
        persona = next((p for p in DEMO_PERSONAS if p.key == key), None)
        if not settings.demo or persona is None:
            self.notice = "Demo sign-in is not available."
            return None
        self.token = issue_token(
            settings,
            role=persona.role,
            sub=persona.sub,
            email=persona.email,
            tenant_id=persona.tenant_id,
            partner_id=persona.partner_id,
            ttl=8 * 3600,
        )
        return self._accept_token()

    @rx.event
    def sign_out(self) -> EventSpec:
        """Clear the token and return to the sign-in page."""
        self._forget()
        self.notice = "You are signed out."
        return rx.redirect(SIGN_IN_ROUTE)


async def current_principal(state: rx.State) -> Principal | EventSpec:
    """The verified principal behind `state`'s session, or the redirect to sign-in."""
    auth = await state.get_state(AuthState)
    try:
        return auth._verify()
    except AuthError as exc:
        return auth._expire(exc)
