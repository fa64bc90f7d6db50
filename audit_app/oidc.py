"""The identity provider's published signing keys (JWKS), found by OpenID discovery, cached and rotated."""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKClient

from audit_app.settings import Settings

log = logging.getLogger(__name__)

# The algorithms of each public key type; PyJWK's default for a key that names no `alg` comes first.
ALGORITHMS_BY_KEY_TYPE: dict[str, tuple[str, ...]] = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512", "ES256K"),
    "OKP": ("EdDSA",),
}


class ProviderKeyError(Exception):
    """The key of a token cannot be had from the provider (unreachable, or no such `kid`)."""


def discovery_url(issuer: str) -> str:
    """Where an OpenID provider publishes its metadata."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def fetch_provider_metadata(issuer: str, timeout: float) -> dict[str, Any]:
    """The provider's OpenID discovery document; raises ProviderKeyError when it cannot be read."""
    try:
        response = httpx.get(discovery_url(issuer), timeout=timeout, follow_redirects=False)
        response.raise_for_status()
        metadata = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderKeyError(f"the OpenID discovery document of {issuer} could not be read ({exc})") from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("jwks_uri"), str):
        raise ProviderKeyError(f"the OpenID discovery document of {issuer} names no jwks_uri")
    if metadata.get("issuer") != issuer:
        raise ProviderKeyError(
            f"the discovery document of {issuer} names another issuer ({metadata.get('issuer')!r}); "
            "set AUDIT_OIDC_ISSUER to exactly the provider's issuer"
        )
    return metadata


def algorithms_for(key: PyJWK) -> list[str]:
    """The algorithms a published key may verify: those of its type only (never HMAC).

    An EC key's curve fixes its one algorithm, as does an `alg` the key names; an RSA key that
    names none (Canaille's sign RS512) allows the RSA algorithms. A symmetric (`oct`) key in a
    public key set is refused: anyone could read it and sign with it.
    """
    family = ALGORITHMS_BY_KEY_TYPE.get(str(key.key_type), ())
    if key.algorithm_name not in family:
        raise ProviderKeyError(f"the provider's key {key.key_id!r} (type {key.key_type}) is not a public signing key")
    if key.key_type == "RSA" and key.algorithm_name == family[0]:
        return list(family)  # RS256 is also PyJWK's default for an RSA key without `alg`
    return [key.algorithm_name]


class ProviderKeys:
    """The provider's current key set: discovered lazily, cached, re-fetched on an unknown `kid`.

    An unknown `kid` re-fetches the set at most once per `AUDIT_JWKS_MIN_REFRESH_SECONDS`
    (PyJWKClient's cooldown), so a rotated key is picked up without a restart and a flood of
    made-up `kid`s cannot hammer the provider. While discovery fails it is retried at most as often.
    """

    def __init__(self, issuer: str | None, jwks_url: str | None, timeout: float, min_refresh: float) -> None:
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._timeout = timeout
        self._min_refresh = min_refresh
        self._client: PyJWKClient | None = None
        self._last_discovery_failure: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def _jwks_client(self) -> PyJWKClient:
        with self._lock:
            if self._client is not None:
                return self._client
            if self._last_discovery_failure is not None:
                failed_at, reason = self._last_discovery_failure
                if time.monotonic() - failed_at < self._min_refresh:
                    raise ProviderKeyError(reason)
            uri = self._jwks_url
            if uri is None:
                assert self._issuer is not None  # one of the two is configured (uses_provider_keys)
                try:
                    uri = str(fetch_provider_metadata(self._issuer, self._timeout)["jwks_uri"])
                except ProviderKeyError as exc:
                    self._last_discovery_failure = (time.monotonic(), str(exc))
                    raise
            self._client = PyJWKClient(
                uri, cache_jwk_set=True, lifespan=300, timeout=self._timeout, cooldown_duration=self._min_refresh
            )
            return self._client

    def signing_key(self, kid: str) -> PyJWK:
        """The current published key named `kid`; raises ProviderKeyError saying why not."""
        try:
            return self._jwks_client().get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise ProviderKeyError(f"the identity provider's keys could not be fetched ({exc})") from None
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, jwt.InvalidKeyError) as exc:
            raise ProviderKeyError(f"the identity provider publishes no usable key {kid!r} ({exc})") from None

    def warm_up(self) -> None:
        """Fetch the key set once at start-up; when the provider is unreachable, log one sentence and go on."""
        try:
            self._jwks_client().get_signing_keys()
        except (ProviderKeyError, jwt.PyJWKClientError, jwt.PyJWKSetError) as exc:
            log.warning(
                "The identity provider is unreachable at start-up (%s); its keys are fetched when a token needs them.",
                exc,
            )


@lru_cache(maxsize=4)
def _provider_keys(issuer: str | None, jwks_url: str | None, timeout: float, min_refresh: float) -> ProviderKeys:
    return ProviderKeys(issuer, jwks_url, timeout, min_refresh)


def forget_provider_keys() -> None:
    """Drop the cached key sets, as a restart does (a new deployment starts with no keys fetched)."""
    _provider_keys.cache_clear()


def provider_keys(settings: Settings) -> ProviderKeys:
    """The process's key set of the configured provider (one per configuration, shared by every request)."""
    return _provider_keys(
        settings.oidc_issuer,
        settings.jwt_jwks_url,
        settings.provider_timeout_seconds,
        settings.jwks_min_refresh_seconds,
    )
