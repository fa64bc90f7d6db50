"""The export-signing keys: Ed25519 keys that sign evidence bundles, published as a JWKS.

The current private key (`AUDIT_EXPORT_SIGNING_KEY`, PEM) signs new bundles; the public keys of
retired keys (`AUDIT_EXPORT_PUBLIC_KEYS`, PEM blocks) stay published so bundles signed before a
rotation still verify. A key is named by its `kid`, the RFC 7638 JWK thumbprint of its public key,
so the name follows from the key itself and needs no configuration.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit_app.settings import ConfigError, Settings

DEMO_EXPORT_KEY_FILE = Path(".demo-export-key.pem")
SIGNATURE_ALGORITHM = "EdDSA"
NO_SIGNING_KEY = (
    "Evidence bundles need an export-signing key: set AUDIT_EXPORT_SIGNING_KEY "
    "(an Ed25519 private key in PEM), or AUDIT_DEMO=1 for a local demo."
)
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.DOTALL)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The key as a JWK (RFC 8037: kty OKP, crv Ed25519) with its `kid`, `alg` and `use`."""
    x = _b64url(_raw(public_key))
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": key_id(public_key), "alg": SIGNATURE_ALGORITHM, "use": "sig"}


def key_id(public_key: Ed25519PublicKey) -> str:
    """The RFC 7638 thumbprint of the public key (base64url SHA-256 of its required JWK members)."""
    members = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw(public_key))}, separators=(",", ":"))
    return _b64url(hashlib.sha256(members.encode()).digest())


def jwk_public_key(jwk: dict[str, Any]) -> Ed25519PublicKey:
    """The Ed25519 public key of a JWK; ValueError when it is not one."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
        raise ValueError("not an Ed25519 JWK (kty OKP, crv Ed25519)")
    return Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (a private key's PEM gives its public key); ValueError otherwise."""
    data = pem.encode() if isinstance(pem, str) else pem
    key: Any
    if b"PRIVATE KEY" in data:
        key = serialization.load_pem_private_key(data, password=None).public_key()
    else:
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the key is not an Ed25519 key")
    return key


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether `signature` is the key's Ed25519 signature of `message`."""
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class ExportKeys:
    """The key that signs new bundles (None: bundles are off) and every public key still published."""

    signing: Ed25519PrivateKey | None
    published: tuple[Ed25519PublicKey, ...]

    def signer(self) -> Ed25519PrivateKey:
        """The signing key; ConfigError saying what to set when there is none."""
        if self.signing is None:
            raise ConfigError(NO_SIGNING_KEY)
        return self.signing

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The published keys as a JSON Web Key Set, the signing key first."""
        return {"keys": [public_jwk(key) for key in self.published]}


def _demo_export_key() -> str:
    """A local Ed25519 key for demo mode, kept in a file so restarts sign with the same key."""
    if DEMO_EXPORT_KEY_FILE.exists():
        return DEMO_EXPORT_KEY_FILE.read_text()
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    DEMO_EXPORT_KEY_FILE.write_bytes(pem)
    DEMO_EXPORT_KEY_FILE.chmod(0o600)
    return pem.decode()


def export_keys(settings: Settings) -> ExportKeys:
    """The export keys the settings describe; ConfigError naming the variable when one does not parse."""
    pem = settings.export_signing_key or (_demo_export_key() if settings.demo else None)
    signing: Ed25519PrivateKey | None = None
    if pem:
        try:
            key = serialization.load_pem_private_key(pem.replace("\\n", "\n").encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"Invalid AUDIT_EXPORT_SIGNING_KEY: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("Invalid AUDIT_EXPORT_SIGNING_KEY: the key must be an Ed25519 key")
        signing = key
    published: list[Ed25519PublicKey] = [signing.public_key()] if signing else []
    for block in _PEM_BLOCK.finditer((settings.export_public_keys or "").replace("\\n", "\n")):
        try:
            public = load_public_key(block.group(0))
        except ValueError as exc:
            raise ConfigError(f"Invalid AUDIT_EXPORT_PUBLIC_KEYS: {exc}") from None
        if all(_raw(public) != _raw(known) for known in published):
            published.append(public)
    return ExportKeys(signing, tuple(published))
