"""`/docs` and `/redoc` work offline: every asset they reference is served here, no other host is named."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize(("page", "script"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_the_docs_load_only_from_this_server(client: TestClient, page: str, script: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert re.findall(r"(?:https?:)?//[\w.-]+", html) == []  # no absolute or scheme-relative URL at all
    assert "fonts.googleapis" not in html
    references = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html)
    references += re.findall(r"""url['"]?:\s*['"]([^'"]+)""", html)
    assert any(ref.endswith(script) for ref in references), references
    assert "/openapi.json" in references
    for ref in references:
        assert ref.startswith("/"), ref
        asset = client.get(ref)
        assert asset.status_code == 200, ref
        assert len(asset.content) > 1000, ref
