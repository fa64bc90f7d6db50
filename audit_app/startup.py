"""Start-up checks of a server process: bad configuration ends it with one sentence, not a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

from audit_app.auth import ClaimsMapping
from audit_app.db import check_databases
from audit_app.oidc import provider_keys
from audit_app.settings import ConfigError, Settings, get_settings


def exit_with(exc: ConfigError) -> NoReturn:
    """Print what to fix and end the process (exit code 2)."""
    print(f"error: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def settings_or_exit() -> Settings:
    """The settings, or the end of the process when they cannot be read."""
    try:
        return get_settings()
    except ConfigError as exc:
        exit_with(exc)


def checked_settings() -> Settings:
    """Settings a server can run with: valid, a token key configured, the database reachable."""
    try:
        settings = get_settings()
        settings.require_signing_key()
        ClaimsMapping.from_settings(settings)  # AUDIT_ROLE_MAP readable
        check_databases()
    except ConfigError as exc:
        exit_with(exc)
    if settings.uses_provider_keys:
        provider_keys(settings).warm_up()  # unreachable: one log sentence, retried when a token needs it
    return settings
