"""Request headers are capped at 64 kB in total: 431, under uvicorn and in the app Reflex serves.

`make run` serves `create_api()` as Reflex's outermost app (`api_transformer` mounts the console
inside it), so the in-process check covers the console's paths too; the stand-alone
`uvicorn audit_app.api:app` is started for real.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from audit_app.settings import Settings
from tests.trust.test_feed_concurrency import api_workers


def padded(total: int) -> dict[str, str]:
    """Headers of about `total` bytes, in 8 kB values (each under any per-line limit)."""
    return {f"x-pad-{i}": "a" * 8000 for i in range(total // 8000)}


@pytest.mark.parametrize("path", ["/api/v1/health", "/events"])
def test_headers_over_64_kb_are_refused_with_431(client: TestClient, path: str) -> None:
    refused = client.get(path, headers=padded(72_000))
    assert refused.status_code == 431
    assert "64 kB" in refused.json()["detail"]
    assert client.get("/api/v1/health", headers=padded(56_000)).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the limit is the same on both
def test_uvicorn_refuses_headers_over_64_kb(settings: Settings) -> None:
    with api_workers(settings, 1) as (base,):
        assert httpx.get(f"{base}/api/v1/health", headers=padded(72_000)).status_code == 431
        assert httpx.get(f"{base}/api/v1/health", headers=padded(56_000)).status_code == 200
