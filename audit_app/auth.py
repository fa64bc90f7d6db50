"""Bearer tokens: verifying a JWT into a Principal, and issuing tokens for local use."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import jwt

from audit_app.oidc import ProviderKeyError, algorithms_for, provider_keys
from audit_app.settings import ConfigError, Settings

Role = Literal["super_admin", "partner_admin", "tenant_admin"]
ROLES: tuple[str, ...] = ("super_admin", "partner_admin", "tenant_admin")
SCOPE_READ = "audit:read"
SCOPE_EXPORT = "audit:export"
SCOPE_WRITE = "audit:write"
SCOPE_ADMIN = "audit:admin"  # administrative changes: retention, legal hold, the tenant registry
ALL_SCOPES = f"{SCOPE_READ} {SCOPE_EXPORT} {SCOPE_WRITE}"
SUPER_ADMIN_SCOPES = f"{ALL_SCOPES} {SCOPE_ADMIN}"
DOWNLOAD_TOKEN_USE = "download"  # noqa: S105 (a claim value, not a secret)
MAX_TOKEN_LENGTH = 8192
TOKEN_LEEWAY = 5  # seconds of clock skew allowed on `exp`/`nbf`
# Claims that end up in stored columns are bounded like those columns (audit_log.actor_id, actor_email).
CLAIM_MAX_LENGTHS = {"sub": 255, "email": 320, "tenant_id": 255, "partner_id": 255}
_PROCESS_DOWNLOAD_SECRET = secrets.token_urlsafe(32)


class AuthError(Exception):
    """The caller is not authenticated (HTTP 401)."""


class MissingCredentialsError(AuthError):
    """The request carries no bearer token at all (HTTP 401 without an error code)."""


class ForbiddenError(Exception):
    """The caller is authenticated but may not do this (HTTP 403)."""


def default_scopes(role: str) -> str:
    """The scopes a locally issued token of `role` holds unless told otherwise.

    `audit:admin` only changes anything for a super admin, so only its tokens carry it by default.
    """
    return SUPER_ADMIN_SCOPES if role == "super_admin" else ALL_SCOPES


class UnmappedRoleError(AuthError):
    """The token is genuine, but its role claim maps to no role of this product (AUDIT_ROLE_MAP)."""


@dataclass(frozen=True)
class RoleGrant:
    """What one entry of AUDIT_ROLE_MAP grants: a role and scopes added to the token's own."""

    role: Role
    scopes: frozenset[str]


@dataclass(frozen=True)
class ClaimsMapping:
    """Where a provider's token holds role, tenant, partner and scopes (AUDIT_*_CLAIM, AUDIT_ROLE_MAP)."""

    role_claim: str = "role"
    tenant_claim: str = "tenant_id"
    partner_claim: str = "partner_id"
    scope_claim: str = "scope"
    role_map: tuple[tuple[str, RoleGrant], ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ClaimsMapping:
        """The mapping configured; raises ConfigError when AUDIT_ROLE_MAP cannot be read."""
        return _claims_mapping(
            settings.role_claim, settings.tenant_claim, settings.partner_claim, settings.scope_claim, settings.role_map
        )

    def grant_for(self, values: list[str]) -> RoleGrant | None:
        """The first AUDIT_ROLE_MAP entry (in its order) naming one of the token's role values."""
        return next((grant for name, grant in self.role_map if name in values), None)


OWN_CLAIMS = ClaimsMapping()  # the claim names of tokens this product issues itself


def parse_role_map(text: str) -> tuple[tuple[str, RoleGrant], ...]:
    """Read AUDIT_ROLE_MAP: `group=role:scope scope,other-group=role:scope` (scopes optional)."""
    entries: list[tuple[str, RoleGrant]] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, equals, grant = entry.rpartition("=")
        role, _, scopes = grant.partition(":")
        role = role.strip()
        if not equals or not name.strip() or role not in ROLES:
            raise ConfigError(
                f"Invalid AUDIT_ROLE_MAP entry {entry!r}: write PROVIDER_ROLE=ROLE:SCOPES with ROLE one of "
                f"{', '.join(ROLES)}, e.g. audit-viewers=tenant_admin:audit:read"
            )
        entries.append((name.strip(), RoleGrant(role=role, scopes=frozenset(scopes.split()))))  # type: ignore[arg-type]
    return tuple(entries)


@lru_cache(maxsize=8)
def _claims_mapping(role: str, tenant: str, partner: str, scope: str, role_map: str | None) -> ClaimsMapping:
    return ClaimsMapping(role, tenant, partner, scope, parse_role_map(role_map) if role_map else ())


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted claim path (`realm_access.roles`), or None."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _strings(value: Any, claim: str) -> list[str]:
    """A claim holding a string (space-separated for scopes) or a list of strings, as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise AuthError(f"The {claim!r} claim must be a string or a list of strings.")


def _single(value: Any, claim: str) -> str | None:
    """A tenant or partner claim: one string, or a list holding exactly one."""
    values = _strings(value, claim)
    if len(values) > 1:
        raise AuthError(f"The {claim!r} claim names {len(values)} values; it must name one.")
    return values[0] if values else None


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
    token_id: str | None = None  # the `jti` of a download token, spent on its first use
    token_expires: int | None = None  # its `exp`

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


@dataclass(frozen=True)
class TokenCheck:
    """How one bearer token is verified: key, algorithms, expected issuer and audience, claim names."""

    key: Any
    algorithms: list[str]
    issuer: str | None
    audience: str | None
    mapping: ClaimsMapping
    local: bool = False  # the local key (AUDIT_JWT_SECRET or AUDIT_JWT_PUBLIC_KEY), not a provider's


def _token_check(token: str, settings: Settings) -> TokenCheck:
    """Provider tokens (those naming a `kid`, when a JWKS is configured) go to the provider's key
    of that `kid`; every other token to the local key (AUDIT_JWT_SECRET or AUDIT_JWT_PUBLIC_KEY)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise AuthError(f"Invalid token: {exc}.") from None
    local_key = settings.jwt_public_key or settings.jwt_secret
    if settings.uses_provider_keys and (kid is not None or not local_key):
        if not isinstance(kid, str) or not kid:
            raise AuthError("Invalid token: it names no signing key (`kid` header) of the identity provider.")
        try:
            key = provider_keys(settings).signing_key(kid)
            algorithms = algorithms_for(key)
        except ProviderKeyError as exc:
            raise AuthError(f"The token's signing key is unavailable: {exc}.") from None
        return TokenCheck(
            key.key,  # the bare public key: a PyJWK would pin PyJWT to its one default algorithm
            algorithms,
            settings.token_issuer,
            settings.token_audience,
            ClaimsMapping.from_settings(settings),
        )
    if not local_key:
        raise ConfigError("No token key is configured (AUDIT_JWT_SECRET or AUDIT_JWT_PUBLIC_KEY).")
    return TokenCheck(
        local_key, settings.jwt_algorithms, settings.jwt_issuer, settings.jwt_audience, OWN_CLAIMS, local=True
    )


LocalCheck = tuple[bool, str | None, tuple[str, ...], str | None, str | None]
"""What verifies a token with the local key: (provider keys in use, key, algorithms, issuer, audience)."""


def _local_check(settings: Settings) -> LocalCheck:
    return (
        settings.uses_provider_keys,
        settings.jwt_public_key or settings.jwt_secret,
        tuple(settings.jwt_algorithms),
        settings.jwt_issuer,
        settings.jwt_audience,
    )


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    check: LocalCheck
    usable_until: float  # `exp` plus the leeway, as PyJWT accepts it


class VerifiedTokens:
    """Bearer tokens verified with the local key, and their Principals, for as long as they are valid.

    Verifying a token (its header, signature and claims) took about a tenth of a list request's
    own work; a client sends the same token with each request. A token is answered from here only
    while it has not expired (`exp` plus TOKEN_LEEWAY, as when verified) and only if what verified it
    (key, algorithms, issuer, audience) is still what the settings say: the Principal is the one
    verification gave, so nothing here can widen a scope. Tokens of an identity provider (verified
    with its published keys, which rotate) are not kept. At most `size` tokens, the least recently
    used dropped first.
    """

    def __init__(self, size: int = 1024, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.clock = clock
        self._kept: OrderedDict[str, _Verified] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, check: LocalCheck) -> Principal | None:
        """The Principal of `token` if it was verified with `check` and is still valid, else None."""
        with self._lock:
            kept = self._kept.get(token)
            if kept is None:
                return None
            if kept.check != check or self.clock() >= kept.usable_until:
                del self._kept[token]
                return None
            self._kept.move_to_end(token)
            return kept.principal

    def keep(self, token: str, check: LocalCheck, principal: Principal, expires: int) -> None:
        """Remember that `token`, valid until `expires` (its `exp`), was verified with `check` as `principal`."""
        with self._lock:
            self._kept[token] = _Verified(principal, check, expires + TOKEN_LEEWAY)
            self._kept.move_to_end(token)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def clear(self) -> None:
        """Forget every token (tests)."""
        with self._lock:
            self._kept.clear()


VERIFIED_TOKENS = VerifiedTokens()


def decode_token(token: str, settings: Settings) -> Principal:
    """Verify a bearer token and return its Principal, or raise AuthError saying why.

    With provider keys configured, the first token naming a new `kid` may fetch the provider's
    key set (a blocking HTTP call): async callers run this in a worker thread. A token verified
    with the local key is answered from VERIFIED_TOKENS until it expires.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise AuthError("Missing or oversized bearer token.")
    local = _local_check(settings)
    known = VERIFIED_TOKENS.get(token, local)
    if known is not None:
        return known
    check = _token_check(token, settings)
    options: dict[str, Any] = {"require": ["exp", "sub"], "verify_aud": bool(check.audience)}
    try:
        claims = jwt.decode(
            token,
            check.key,
            algorithms=check.algorithms,
            audience=check.audience,
            issuer=check.issuer,
            options=options,  # type: ignore[arg-type]
            leeway=TOKEN_LEEWAY,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("The token has expired.") from None
    except jwt.PyJWTError as exc:  # every PyJWT failure (bad key type, algorithm, claims) is the caller's
        raise AuthError(f"Invalid token: {exc}.") from None
    if claims.get("use") == DOWNLOAD_TOKEN_USE:
        raise AuthError("A download token is not a bearer token; it only works as `download_token` of an export.")
    principal = principal_from_claims(claims, check.mapping)
    if check.local:
        VERIFIED_TOKENS.keep(token, local, principal, int(claims["exp"]))
    return principal


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
            options={"require": ["exp", "sub", "use", "jti"]},
            leeway=TOKEN_LEEWAY,
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
        token_id=str(claims["jti"])[:64],
        token_expires=int(claims["exp"]),
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


def role_and_scopes(claims: dict[str, Any], mapping: ClaimsMapping) -> tuple[Role, frozenset[str]]:
    """The role a token's role claim gives (through AUDIT_ROLE_MAP when set) and the scopes that adds."""
    values = _strings(claim_at(claims, mapping.role_claim), mapping.role_claim)
    if mapping.role_map:
        grant = mapping.grant_for(values)
        if grant is None:
            raise UnmappedRoleError(
                f"No role: the {mapping.role_claim!r} claim ({', '.join(values) or 'absent'}) matches no "
                "entry of AUDIT_ROLE_MAP, so this person may not see audit logs."
            )
        return grant.role, grant.scopes
    if not values:
        return "tenant_admin", frozenset()
    role = next((value for value in values if value in ROLES), None)
    if role is None:
        raise AuthError(f"Unknown role {values[0]!r} in token.")
    return role, frozenset()  # type: ignore[return-value]


def principal_from_claims(claims: dict[str, Any], mapping: ClaimsMapping = OWN_CLAIMS) -> Principal:
    """Check the claims a role needs and build the Principal, reading them where `mapping` says."""
    check_claim_values(claims)
    role, granted_scopes = role_and_scopes(claims, mapping)
    tenant_id = _single(claim_at(claims, mapping.tenant_claim), mapping.tenant_claim)
    partner_id = _single(claim_at(claims, mapping.partner_claim), mapping.partner_claim)
    for name, value in (("tenant_id", tenant_id), ("partner_id", partner_id)):
        if value is not None and len(value) > CLAIM_MAX_LENGTHS[name]:
            raise AuthError(f"Invalid token: the {name} is longer than {CLAIM_MAX_LENGTHS[name]} characters.")
    if role == "tenant_admin" and tenant_id is None:
        raise AuthError(f"A tenant_admin token must carry a {mapping.tenant_claim} claim.")
    if role == "partner_admin" and partner_id is None:
        raise AuthError(f"A partner_admin token must carry a {mapping.partner_claim} claim.")
    scopes = {
        scope
        for value in _strings(claim_at(claims, mapping.scope_claim), mapping.scope_claim)
        for scope in value.split()
    }
    return Principal(
        sub=str(claims["sub"]),
        email=str(claims.get("email", "")),
        role=role,
        scopes=frozenset(scopes) | granted_scopes,
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
    scope: str | None = None,
    ttl: int = 3600,
    use: str | None = None,
) -> str:
    """Sign a token with the configured HS256 secret (local use, demo mode, tests).

    `scope` defaults to what `default_scopes(role)` gives the role.
    """
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
        "scope": default_scopes(role) if scope is None else scope,
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


def issue_download_token(
    settings: Settings, principal: Principal, ttl: int | None = None, *, token_id: str | None = None
) -> str:
    """A short-lived token that can only download an export, with the caller's own scope.

    `token_id` is its `jti` (default: a new UUID); the console passes its own to follow the
    export's progress (audit/export_progress.py).

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
        "jti": token_id or str(uuid.uuid4()),
    }
    if principal.role == "tenant_admin":
        claims["tenant_id"] = principal.tenant_id
    if principal.role == "partner_admin":
        claims["partner_id"] = principal.partner_id
    return jwt.encode(claims, download_signing_key(settings), algorithm="HS256")
