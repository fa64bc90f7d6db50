"""Stream test fixtures: settings with a stream key, fast worker timing, a worker in a thread, events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from audit_app.settings import Settings, get_settings
from tests.streams.helpers import ALLOWED_NETWORKS, STREAM_KEY


@pytest.fixture
def stream_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The test settings plus AUDIT_SECRET_KEY, and loopback's 127.0.0.1 allowed as a target."""
    monkeypatch.setenv("AUDIT_SECRET_KEY", STREAM_KEY)
    monkeypatch.setenv("AUDIT_STREAM_ALLOWED_NETWORKS", ALLOWED_NETWORKS)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
