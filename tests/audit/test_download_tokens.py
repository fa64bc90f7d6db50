"""Download tokens are signed with a key of their own (audit_app.auth)."""

from __future__ import annotations

import pytest

from audit_app.auth import (
    AuthError,
    ForbiddenError,
    Principal,
    decode_download_token,
    decode_token,
    download_signing_key,
    issue_download_token,
)
from audit_app.settings import Settings
from tests.principals import ACME


def test_download_tokens_have_their_own_key(settings: Settings) -> None:
    assert settings.jwt_secret
    assert download_signing_key(settings) != settings.jwt_secret
    token = issue_download_token(settings, ACME)
    principal = decode_download_token(token, settings)
    assert (principal.role, principal.tenant_id, principal.scopes) == ("tenant_admin", "acme", {"audit:export"})
    with pytest.raises(AuthError):
        decode_token(token, settings)
    settings.download_secret = "dedicated-" + "z" * 32
    assert download_signing_key(settings) == settings.download_secret
    with pytest.raises(AuthError):
        decode_download_token(token, settings)  # signed with the previous key
    with pytest.raises(ForbiddenError):
        issue_download_token(
            settings, Principal(sub="r", email="", role="super_admin", scopes=frozenset({"audit:read"}))
        )
