"""Interactive API documentation, offline: Swagger UI at `/docs` and ReDoc at `/redoc`.

Their scripts, style sheet and icon ship in the `fastapi-offline` package and are served from
`/api/v1/docs-assets/`, so a browser opening the docs asks no CDN (nor Google Fonts) for anything.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_PATH = "/api/v1/docs-assets"


def add_docs(api: FastAPI) -> None:
    """Serve `/docs`, `/redoc` and their assets from the installed package (outside the schema)."""
    api.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = api.openapi_url or "/openapi.json"

    @api.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        """Swagger UI over /openapi.json (try requests with a Bearer token: Authorize)."""
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{api.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @api.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        """ReDoc over /openapi.json."""
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{api.title} - ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
