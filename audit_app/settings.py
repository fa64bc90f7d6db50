"""All configuration, read once from the environment (and a `.env` file)."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from audit_app.proxies import IPNetwork, parse_networks

SUPPORTED_DRIVERS = ("sqlite", "postgresql+psycopg", "postgresql")
DEMO_SECRET_FILE = Path(".demo-secret")
DEMO_STREAM_KEY_FILE = Path(".demo-stream-key")
DEFAULT_PORT = 3000  # the console's port when nothing else says (Makefile PORT ?= 3000)


class ConfigError(RuntimeError):
    """Configuration that cannot work; the message says what to fix."""


class Settings(BaseSettings):
    """The settings of audit_app; each field is the `AUDIT_`-prefixed variable."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///audit.db"
    read_database_url: str | None = None
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    demo: bool = False
    cors_origins: str | None = None  # unset: the origins of the port the app is served on
    download_token_ttl: int = 120
    export_rows_per_second: int = Field(0, ge=0)  # caps the pace of every export stream; 0: no cap
    download_secret: str | None = None
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid email profile"
    public_url: str | None = None
    session_ttl: timedelta = timedelta(hours=8)
    jwt_jwks_url: str | None = None
    jwks_min_refresh_seconds: float = 60.0
    provider_timeout_seconds: float = 5.0
    role_claim: str = "role"
    tenant_claim: str = "tenant_id"
    partner_claim: str = "partner_id"
    scope_claim: str = "scope"
    role_map: str | None = None
    export_signing_key: str | None = None
    export_public_keys: str | None = None
    max_future_skew: timedelta = timedelta(days=1)
    trusted_proxies: str = ""
    min_event_time: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    pool_timeout: float = Field(10.0, gt=0)
    lock_timeout: float = Field(5.0, gt=0)
    max_writers: int = Field(8, ge=1)
    tenant_writers: int = Field(4, ge=1)
    secret_key: str | None = None
    stream_batch_size: int = Field(1000, ge=1, le=10_000)
    stream_poll_seconds: float = Field(0.5, gt=0)
    stream_retry_base_seconds: float = Field(1.0, gt=0)
    stream_retry_max_seconds: float = Field(300.0, gt=0)
    stream_failing_after: timedelta = timedelta(hours=24)
    stream_lease_seconds: float = Field(30.0, gt=0)
    stream_claim_seconds: float = Field(2.0, gt=0)
    stream_timeout_seconds: float = Field(10.0, gt=0)
    stream_allowed_networks: str = ""  # special-purpose networks streams may reach anyway (stream_targets)

    @field_validator("min_event_time")
    @classmethod
    def _aware_min_time(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("trusted_proxies", "stream_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @property
    def trusted_proxy_networks(self) -> list[IPNetwork]:
        """The peers whose X-Forwarded-For names the client (AUDIT_TRUSTED_PROXIES; default none)."""
        return parse_networks(self.trusted_proxies)

    @field_validator("max_future_skew")
    @classmethod
    def _non_negative_skew(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative (seconds, or an ISO 8601 duration such as P1D)")
        return value

    @field_validator("stream_failing_after")
    @classmethod
    def _positive_failing_after(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive (seconds, or an ISO 8601 duration such as PT24H)")
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_secret_key(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if len(value.strip()) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -base64 32`)")
        return value.strip()

    @field_validator("database_url", "read_database_url")
    @classmethod
    def _known_database(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or (info.field_name == "read_database_url" and not value.strip()):
            return None  # no replica: reads use the primary
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"{value!r} is not a database URL") from exc
        if url.drivername not in SUPPORTED_DRIVERS:
            raise ValueError(
                f"the driver {url.drivername!r} is not supported; use sqlite:///FILE "
                "or postgresql+psycopg://USER@HOST:PORT/DB"
            )
        if url.drivername == "postgresql":
            value = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return value

    @field_validator("oidc_issuer", "jwt_jwks_url", "public_url")
    @classmethod
    def _web_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/") if info.field_name == "public_url" else value

    @field_validator("session_ttl")
    @classmethod
    def _positive_ttl(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive (seconds, or an ISO 8601 duration such as PT8H)")
        return value

    @field_validator("oidc_scopes")
    @classmethod
    def _openid_scope(cls, value: str) -> str:
        scopes = value.split()
        if "openid" not in scopes:
            raise ValueError(f"{value!r} lacks the `openid` scope that sign-in with SSO needs")
        return " ".join(scopes)

    @model_validator(mode="after")
    def _replica_needs_postgres(self) -> Settings:
        if self.read_database_url and (self.is_sqlite or self.read_database_url.startswith("sqlite")):
            raise ValueError(
                "AUDIT_READ_DATABASE_URL (a read replica) needs PostgreSQL for both it and AUDIT_DATABASE_URL"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        """True when the embedded SQLite database is configured."""
        return self.database_url.startswith("sqlite")

    @property
    def cors_origin_list(self) -> list[str]:
        """The browser origins allowed to call the API and open the console's websocket.

        AUDIT_CORS_ORIGINS when set; otherwise localhost and 127.0.0.1 on the port the app is
        served on (read when asked, so a server started with another port agrees with itself).
        """
        if self.cors_origins is not None:
            return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]
        port = served_port()
        return [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]

    @property
    def jwt_algorithms(self) -> list[str]:
        """The signature algorithms accepted: only those of the configured key's type."""
        return list(public_key_algorithms(self.jwt_public_key)) if self.jwt_public_key else ["HS256"]

    @property
    def uses_provider_keys(self) -> bool:
        """True when tokens are verified by the keys an identity provider publishes (JWKS)."""
        return bool(self.oidc_issuer or self.jwt_jwks_url)

    @property
    def sso_enabled(self) -> bool:
        """True when the console offers **Sign in with SSO** (an issuer and a client id are configured)."""
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def secure_cookies(self) -> bool:
        """Session cookies carry `Secure` when the console is served over https (AUDIT_PUBLIC_URL)."""
        return bool(self.public_url and self.public_url.startswith("https://"))

    @property
    def token_issuer(self) -> str | None:
        """The `iss` every bearer token must carry: AUDIT_JWT_ISSUER, else the OpenID issuer."""
        return self.jwt_issuer or self.oidc_issuer

    @property
    def token_audience(self) -> str | None:
        """The `aud` every bearer token must carry: AUDIT_JWT_AUDIENCE, else (provider keys) the client id."""
        if self.jwt_audience:
            return self.jwt_audience
        return self.oidc_client_id if self.uses_provider_keys else None

    def require_signing_key(self) -> None:
        """Fail with a clear sentence when tokens could not be verified."""
        if not (self.jwt_secret or self.jwt_public_key or self.uses_provider_keys):
            raise ConfigError(
                "No token key is configured: set AUDIT_JWT_SECRET (HS256), AUDIT_JWT_PUBLIC_KEY (PEM), "
                "AUDIT_OIDC_ISSUER or AUDIT_JWT_JWKS_URL, or AUDIT_DEMO=1 for a local demo."
            )
        if self.uses_provider_keys and not self.token_audience:
            raise ConfigError(
                "Tokens of an identity provider need an audience: set AUDIT_JWT_AUDIENCE "
                "(or AUDIT_OIDC_CLIENT_ID) to the `aud` its access tokens carry for this API."
            )
        if self.jwt_public_key and not self.jwt_algorithms:
            raise ConfigError(
                "AUDIT_JWT_PUBLIC_KEY is not a PEM public key of RSA (RS256) or EC P-256 (ES256); "
                "paste the key including its BEGIN/END PUBLIC KEY lines."
            )


@lru_cache(maxsize=4)
def public_key_algorithms(pem: str) -> tuple[str, ...]:
    """The one algorithm a PEM public key verifies: RS256 for RSA, ES256 for EC P-256, none otherwise.

    So a token naming the other algorithm is refused as such (401) instead of reaching the wrong
    kind of key; `require_signing_key` stops start-up when the key is of neither kind.
    """
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return ()
    if isinstance(key, rsa.RSAPublicKey):
        return ("RS256",)
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return ("ES256",)
    return ()


def served_port() -> int:
    """The port the console is served on: what `reflex run --frontend-port` set, else PORT, else 3000.

    `reflex run` publishes its port to its server processes as REFLEX_FRONTEND_PORT; `make run`
    passes PORT on as that flag.
    """
    for name in ("REFLEX_FRONTEND_PORT", "PORT"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and 0 < int(value) < 65536:
            return int(value)
    return DEFAULT_PORT


def _demo_secret(path: Path = DEMO_SECRET_FILE) -> str:
    """A local secret for demo mode, kept in a file so the CLI, the server and the stream worker agree."""
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


def load_settings() -> Settings:
    """Read the settings, turning validation errors into one clear ConfigError."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "AUDIT_" + str(first["loc"][0]).upper() if first["loc"] else "configuration"
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"Invalid {field}: {msg}") from None
    if settings.demo and not (settings.jwt_secret or settings.jwt_public_key):
        settings.jwt_secret = _demo_secret()
    if settings.demo and not settings.secret_key:
        settings.secret_key = _demo_secret(DEMO_STREAM_KEY_FILE)
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear with `get_settings.cache_clear()`)."""
    return load_settings()
