"""Sign-in with the organisation's identity provider: OpenID Connect authorization code flow with PKCE.

Authlib does the protocol: discovery, the authorization request (S256 code challenge, `state`,
`nonce`), the code exchange, the ID token's verification (signature by the provider's JWKS,
`iss`, `aud`, `exp`, `iat`, `nonce`), refresh, and the RP-initiated logout URL. This module
only keeps Authlib's per-request data on the server (`console_sessions`) instead of in a cookie,
and maps the verified claims to a Principal.
"""

from __future__ import annotations

import time
import warnings
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from joserfc.errors import JoseError
from starlette.requests import Request

from audit_app.auth import SCOPE_READ, AuthError, ClaimsMapping, Principal, principal_from_claims
from audit_app.console_sessions import Grant
from audit_app.oidc import discovery_url
from audit_app.settings import Settings

# Authlib 1.9 warns on import that its httpx integration moves to `httpx2` (not installed here);
# one sentence on bad configuration must stay one sentence, so the warning is not printed.
with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401 (its import puts an "always" filter first; the one below goes before it)

    warnings.simplefilter("ignore")
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App

CALLBACK_PATH = "/auth/callback"
SIGNED_OUT_PATH = "/auth/signed-out"  # where the provider returns after RP-initiated logout
ID_TOKEN_LEEWAY = 30  # seconds of clock skew allowed on the ID token's `exp` and `iat`


class SignInError(Exception):
    """A sign-in with SSO that cannot complete; the message says why, for the person and the audit log."""


@lru_cache(maxsize=4)
def _client(issuer: str, client_id: str, secret: str | None, scopes: str, timeout: float) -> StarletteOAuth2App:
    kwargs: dict[str, Any] = {"scope": scopes, "code_challenge_method": "S256", "timeout": timeout}
    if not secret:
        kwargs["token_endpoint_auth_method"] = "none"  # noqa: S105 (a public client: PKCE alone)
    app = OAuth().register(
        "sso",
        client_id=client_id,
        client_secret=secret,
        server_metadata_url=discovery_url(issuer),
        client_kwargs=kwargs,
    )
    assert isinstance(app, StarletteOAuth2App)
    return app


def sso_client(settings: Settings) -> StarletteOAuth2App:
    """The process's Authlib client of the configured provider."""
    assert settings.oidc_issuer
    assert settings.oidc_client_id
    return _client(
        settings.oidc_issuer,
        settings.oidc_client_id,
        settings.oidc_client_secret or None,
        settings.oidc_scopes,
        settings.provider_timeout_seconds,
    )


def forget_sso_clients() -> None:
    """Drop the cached clients and the provider metadata they hold (tests changing configuration)."""
    _client.cache_clear()


def public_base(settings: Settings, request: Request) -> str:
    """Where the console is reached: AUDIT_PUBLIC_URL, else the origin of this request."""
    return settings.public_url or str(request.base_url).rstrip("/")


async def _metadata(app: StarletteOAuth2App, settings: Settings) -> dict[str, Any]:
    try:
        metadata: dict[str, Any] = await app.load_server_metadata()
    except Exception as exc:  # httpx errors, a document that is not JSON: the provider cannot be used now
        raise SignInError(
            f"The identity provider could not be reached ({type(exc).__name__}); try again shortly."
        ) from None
    if metadata.get("issuer") != settings.oidc_issuer:
        app.server_metadata = {}  # read it again next time
        raise SignInError(
            f"The identity provider names another issuer ({metadata.get('issuer')!r}) than AUDIT_OIDC_ISSUER."
        )
    return metadata


async def authorization_request(request: Request, settings: Settings) -> tuple[str, dict[str, Any]]:
    """The provider URL to send the browser to, and the request's secrets to keep on the server.

    Authlib generates `state`, `nonce` and the PKCE verifier; they are returned (with the redirect
    URI) so the caller keeps them server-side, bound to this browser.
    """
    app = sso_client(settings)
    await _metadata(app, settings)
    kept: dict[str, Any] = {}
    request.scope["session"] = kept  # Authlib writes its per-request data here
    redirect_uri = public_base(settings, request) + CALLBACK_PATH
    response = await app.authorize_redirect(request, redirect_uri)
    return str(response.headers["location"]), kept


def _expiry(token: dict[str, Any], claims: dict[str, Any]) -> datetime:
    """When the provider's tokens run out: the access token's `expires_at`, else the ID token's `exp`."""
    expires = token.get("expires_at") or claims.get("exp") or time.time()
    return datetime.fromtimestamp(float(expires), UTC)


def principal_for(claims: dict[str, Any], settings: Settings) -> Principal:
    """The Principal verified ID-token claims map to (AUDIT_*_CLAIM, AUDIT_ROLE_MAP); raises AuthError.

    UnmappedRoleError (an AuthError) when the person's roles or groups map to no role of this product.
    """
    principal = principal_from_claims(claims, ClaimsMapping.from_settings(settings))
    if SCOPE_READ not in principal.scopes:
        raise AuthError(f"Your account is not granted the {SCOPE_READ!r} scope the console needs.")
    return principal


async def complete(request: Request, settings: Settings, kept: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Finish the flow at the callback: check `state`, exchange the code (with the PKCE verifier) and
    verify the ID token. Returns the provider's token response and the ID token's verified claims.

    Raises SignInError (the provider refused, the state does not match, the ID token is invalid).
    """
    app = sso_client(settings)
    await _metadata(app, settings)
    request.scope["session"] = kept
    try:
        token = await app.authorize_access_token(request, leeway=ID_TOKEN_LEEWAY)
    except OAuthError as exc:
        raise SignInError(
            f"The identity provider refused the sign-in ({exc.error}: {exc.description or ''}).".replace(": )", ")")
        ) from None
    except JoseError as exc:
        raise SignInError(f"The ID token is not valid ({exc.error}: {exc.description or exc}).") from None
    except Exception as exc:  # the token endpoint unreachable, or an answer that is not a token
        raise SignInError(
            f"The sign-in could not be completed with the identity provider ({type(exc).__name__})."
        ) from None
    claims = dict(token.get("userinfo") or {})
    if not claims:
        raise SignInError("The identity provider returned no ID token (is the `openid` scope granted?).")
    return dict(token), claims


def grant_for(token: dict[str, Any], claims: dict[str, Any], settings: Settings) -> Grant:
    """The session grant of a completed sign-in; raises AuthError when the claims map to no usable role."""
    return Grant(
        "sso",
        principal_for(claims, settings),
        _expiry(token, claims),
        refresh_token=token.get("refresh_token"),
        id_token=token.get("id_token"),
    )


async def refresh(settings: Settings, grant_principal: Principal, refresh_token: str) -> Grant:
    """Renew the provider's tokens with the refresh token; the new ID token, when given, is verified
    and mapped again (a person whose groups changed gets the new role, or none). Raises SignInError."""
    app = sso_client(settings)
    await _metadata(app, settings)
    try:
        token = await app.fetch_access_token(grant_type="refresh_token", refresh_token=refresh_token)
        claims = dict(await app.parse_id_token(token, nonce=None, leeway=ID_TOKEN_LEEWAY) or {})
    except OAuthError as exc:
        raise SignInError(f"The identity provider refused to renew the session ({exc.error}).") from None
    except JoseError as exc:
        raise SignInError(f"The renewed ID token is not valid ({exc.error}).") from None
    except Exception as exc:
        raise SignInError(
            f"The session could not be renewed with the identity provider ({type(exc).__name__})."
        ) from None
    principal = principal_for(claims, settings) if claims else grant_principal
    return Grant("sso", principal, _expiry(token, claims), token.get("refresh_token"), token.get("id_token"))


async def logout_url(settings: Settings, request: Request, id_token: str | None) -> str | None:
    """The provider's end-session URL (RP-initiated logout) coming back to the sign-in page, or None
    when the provider offers none (or cannot be reached)."""
    app = sso_client(settings)
    try:
        metadata = await _metadata(app, settings)
    except SignInError:
        return None
    if not metadata.get("end_session_endpoint"):
        return None
    back = public_base(settings, request) + SIGNED_OUT_PATH
    result = await app.create_logout_url(post_logout_redirect_uri=back, id_token_hint=id_token, client_id=app.client_id)
    return str(result["url"])
