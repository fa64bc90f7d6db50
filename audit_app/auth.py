"""Bearer tokens: verifying a JWT into a Principal, and issuing tokens for local use."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt

from audit_app.settings import ConfigError, Settings

Role = Literal["super_admin", "partner_admin", "tenant_admin"]
ROLES: tuple[str, ...] = ("super_admin", "partner_admin", "tenant_admin")
SCOPE_READ = "audit:read"
SCOPE_EXPORT = "audit:export"
SCOPE_WRITE = "audit:write"
ALL_SCOPES = f"{SCOPE_READ} {SCOPE_EXPORT} {SCOPE_WRITE}"
DOWNLOAD_TOKEN_USE = "download"  # noqa: S105 (a claim value, not a secret)
MAX_TOKEN_LENGTH = 8192
# Claims that end up in stored columns are bounded like those columns (audit_log.actor_id, actor_email).
CLAIM_MAX_LENGTHS = {"sub": 255, "email": 320, "tenant_id": 255, "partner_id": 255}
_PROCESS_DOWNLOAD_SECRET = secrets.token_urlsafe(32)


class AuthError(Exception):
    """The caller is not authenticated (HTTP 401)."""


class ForbiddenError(Exception):
    """The caller is authenticated but may not do this (HTTP 403)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: identity, role, scopes and the tenant or partner the role is bound to."""

    sub: str
    email: str
    role: Role
    scopes: frozenset[str] = field(default_factory=frozenset)
    tenant_id: str | None = None
    partner_id: str | None = None
    token_use: str | None = None

    def require_scope(self, scope: str) -> None:
        """Raise ForbiddenError unless the token carries `scope`."""
        if scope not in self.scopes:
            raise ForbiddenError(f"This token lacks the {scope!r} scope.")

    @property
    def describes_scope(self) -> str:
        """A short human description of what this principal may see."""
        if self.role == "super_admin":
            return "all tenants"
        if self.role == "partner_admin":
            return f"tenants of partner {self.partner_id}"
        return f"tenant {self.tenant_id}"


def _verification_key(settings: Settings) -> str:
    if settings.jwt_public_key:
        return settings.jwt_public_key
    if settings.jwt_secret:
        return settings.jwt_secret
    raise ConfigError("No token key is configured (AUDIT_JWT_SECRET or AUDIT_JWT_PUBLIC_KEY).")


def decode_token(token: str, settings: Settings) -> Principal:
    """Verify a bearer token and return its Principal, or raise AuthError saying why."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise AuthError("Missing or oversized bearer token.")
    options: dict[str, Any] = {"require": ["exp", "sub"], "verify_aud": bool(settings.jwt_audience)}
    try:
        claims = jwt.decode(
            token,
            _verification_key(settings),
            algorithms=settings.jwt_algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options=options,  # type: ignore[arg-type]
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("The token has expired.") from None
    except jwt.PyJWTError as exc:  # every PyJWT failure (bad key type, algorithm, claims) is the caller's
        raise AuthError(f"Invalid token: {exc}.") from None
    if claims.get("use") == DOWNLOAD_TOKEN_USE:
        raise AuthError("A download token is not a bearer token; it only works as `download_token` of an export.")
    return principal_from_claims(claims)


def download_signing_key(settings: Settings) -> str:
    """The HS256 key of download tokens, never the bearer-token key itself.

    `AUDIT_DOWNLOAD_SECRET` when set; else derived from `AUDIT_JWT_SECRET` (so every worker
    agrees); else a random secret of this process (public-key deployments, one worker).
    """
    if settings.download_secret:
        return settings.download_secret
    if settings.jwt_secret:
        return hmac.new(settings.jwt_secret.encode(), b"audit_app download token", hashlib.sha256).hexdigest()
    return _PROCESS_DOWNLOAD_SECRET


def decode_download_token(token: str, settings: Settings) -> Principal:
    """Verify a download token (the `download_token` of an export) into its Principal."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise AuthError("Missing or oversized download token.")
    try:
        claims = jwt.decode(
            token,
            download_signing_key(settings),
            algorithms=["HS256"],
            options={"require": ["exp", "sub", "use"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("The download token has expired.") from None
    except jwt.PyJWTError as exc:
        raise AuthError(f"Invalid download token: {exc}.") from None
    if claims.get("use") != DOWNLOAD_TOKEN_USE:
        raise AuthError("Invalid download token: it is not a download token.")
    principal = principal_from_claims(claims)
    return Principal(
        sub=principal.sub,
        email=principal.email,
        role=principal.role,
        scopes=principal.scopes & {SCOPE_EXPORT},
        tenant_id=principal.tenant_id,
        partner_id=principal.partner_id,
        token_use=DOWNLOAD_TOKEN_USE,
    )


def _holds_nul(value: Any) -> bool:
    """Whether a claim value, or any string inside it, contains a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def check_claim_values(claims: dict[str, Any]) -> None:
    """Refuse claims the audit log could not store: NUL characters anywhere, over-long identities."""
    for name, value in claims.items():
        if _holds_nul(name) or _holds_nul(value):
            raise AuthError(f"Invalid token: the {name!r} claim contains a NUL character.")
    for name, limit in CLAIM_MAX_LENGTHS.items():
        value = claims.get(name)
        if value is not None and len(str(value)) > limit:
            raise AuthError(f"Invalid token: the {name!r} claim is longer than {limit} characters.")


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Check the claims a role needs and build the Principal."""
    check_claim_values(claims)
    role = claims.get("role", "tenant_admin")
    if role not in ROLES:
        raise AuthError(f"Unknown role {role!r} in token.")
    tenant_id = claims.get("tenant_id")
    partner_id = claims.get("partner_id")
    if role == "tenant_admin" and not isinstance(tenant_id, str):
        raise AuthError("A tenant_admin token must carry a tenant_id claim.")
    if role == "partner_admin" and not isinstance(partner_id, str):
        raise AuthError("A partner_admin token must carry a partner_id claim.")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise AuthError("The scope claim must be a space-separated string.")
    return Principal(
        sub=str(claims["sub"]),
        email=str(claims.get("email", "")),
        role=role,
        scopes=frozenset(scope.split()),
        tenant_id=tenant_id if role == "tenant_admin" else None,
        partner_id=partner_id if role == "partner_admin" else None,
        token_use=claims.get("use"),
    )


def issue_token(
    settings: Settings,
    *,
    role: str,
    sub: str | None = None,
    email: str | None = None,
    tenant_id: str | None = None,
    partner_id: str | None = None,
    scope: str = ALL_SCOPES,
    ttl: int = 3600,
    use: str | None = None,
) -> str:
    """Sign a token with the configured HS256 secret (local use, demo mode, tests)."""
    if not settings.jwt_secret:
        raise ConfigError(
            "Only a public key is configured (AUDIT_JWT_PUBLIC_KEY): tokens are issued by the "
            "platform's OAuth server, not here. Set AUDIT_JWT_SECRET to mint local tokens."
        )
    if role not in ROLES:
        raise ConfigError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.")
    if role == "tenant_admin" and not tenant_id:
        raise ConfigError("A tenant_admin token needs --tenant-id.")
    if role == "partner_admin" and not partner_id:
        raise ConfigError("A partner_admin token needs --partner-id.")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub or f"{role}-local",
        "email": email or f"{role.replace('_', '.')}@example.com",
        "role": role,
        "scope": scope,
        "iat": now,
        "exp": now + ttl,
        "jti": str(uuid.uuid4()),
    }
    if tenant_id and role == "tenant_admin":
        claims["tenant_id"] = tenant_id
    if partner_id and role == "partner_admin":
        claims["partner_id"] = partner_id
    if use:
        claims["use"] = use
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def issue_download_token(settings: Settings, principal: Principal, ttl: int | None = None) -> str:
    """A short-lived token that can only download an export, with the caller's own scope.

    The browser puts it in the export URL (`download_token=`), so it must be useless for
    anything else: it is signed with `download_signing_key`, and the API refuses tokens with
    `use: download` as bearer tokens. Raises ForbiddenError when `principal` may not export.
    """
    principal.require_scope(SCOPE_EXPORT)
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": principal.sub,
        "email": principal.email,
        "role": principal.role,
        "scope": SCOPE_EXPORT,
        "use": DOWNLOAD_TOKEN_USE,
        "iat": now,
        "exp": now + (ttl or settings.download_token_ttl),
        "jti": str(uuid.uuid4()),
    }
    if principal.role == "tenant_admin":
        claims["tenant_id"] = principal.tenant_id
    if principal.role == "partner_admin":
        claims["partner_id"] = principal.partner_id
    return jwt.encode(claims, download_signing_key(settings), algorithm="HS256")
