"""`/openapi.json` against the published reference, and the ways the API is served."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match

from audit_app.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).parent / "reference" / "audit-api.md"
PUBLISHED = ROOT.parent / "shared" / "seed" / "audit-api.md"
DOCUMENTED_PATHS = [
    "/api/v1/admin/audit/",
    "/api/v1/admin/audit/actions",
    "/api/v1/admin/audit/resource-types",
    "/api/v1/admin/audit/stats",
    "/api/v1/admin/audit/{log_id}",
]


def routed(api: FastAPI, path: str, method: str = "GET") -> bool:
    """Whether a request for `path` reaches a route of `api` (without starting the app)."""
    scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": [], "query_string": b""}
    return any(route.matches(scope)[0] == Match.FULL for route in api.router.routes)


def parse_reference(text: str) -> dict[str, dict[str, Any]]:
    """Every endpoint of the reference page: summary, description, parameter rows, response rows."""
    endpoints: dict[str, dict[str, Any]] = {}
    for block in re.split(r"^### \*\*", text, flags=re.M)[1:]:
        block = block.split("\n---", 1)[0].split("\n## ", 1)[0]
        header = re.match(r"(\w+)\*\* `([^`]+)`", block)
        if not header:
            continue
        method, path = header.groups()
        lines = [line.strip() for line in block.splitlines()]
        summary = next(line.strip("_") for line in lines if line.startswith("_") and line.endswith("_"))
        description = lines[lines.index(f"_{summary}_") + 2]
        params: list[list[str]] = []
        responses: list[list[str]] = []
        section = None
        for line in lines:
            if line.startswith("**Parameters"):
                section = params
            elif line.startswith("**Responses"):
                section = responses
            elif line.startswith("|") and section is not None and not line.startswith(("|---", "| Name", "| Status")):
                cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
                section.append(cells)
        endpoints[path] = {
            "method": method.lower(),
            "summary": summary,
            "description": description,
            "params": params,
            "responses": responses,
        }
    return endpoints


def type_text(schema: dict[str, Any]) -> str:
    """A parameter schema written as the reference writes it, e.g. `string` (`date-time`) \\| `null`."""
    if "anyOf" in schema:
        return " \\| ".join(type_text(option) for option in schema["anyOf"])
    text = f"`{schema['type']}`"
    return f"{text} (`{schema['format']}`)" if "format" in schema else text


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_reference_copy_is_the_published_page() -> None:
    if PUBLISHED.exists():
        assert REFERENCE.read_text() == PUBLISHED.read_text()
    assert len(parse_reference(REFERENCE.read_text())) == 5


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_openapi_matches_the_reference_parameter_by_parameter(spec: dict[str, Any]) -> None:
    reference = parse_reference(REFERENCE.read_text())
    assert list(reference) == DOCUMENTED_PATHS
    for path, documented in reference.items():
        operation = spec["paths"][path][documented["method"]]
        assert operation["summary"] == documented["summary"], path
        assert operation["description"] == documented["description"], path
        actual = {(p["name"], p["in"]): p for p in operation.get("parameters", [])}
        order = []
        for name, location, required, type_cell, description in documented["params"]:
            key = (name.strip("`"), location)
            assert key in actual, (path, key)
            param = actual[key]
            assert param["required"] == (required == "yes"), (path, key)
            assert type_text(param["schema"]) == type_cell, (path, key)
            assert param.get("description", "") == description, (path, key)
            order.append(list(actual).index(key))
        assert order == sorted(order), f"{path}: documented parameters out of order"
        documented_keys = {(row[0].strip("`"), row[1]) for row in documented["params"]}
        for key, param in actual.items():
            if key not in documented_keys:  # additions must not break a client of the reference
                assert param["required"] is False, (path, key)
        statuses = {row[0].strip("`") for row in documented["responses"]}
        assert set(operation["responses"]) == statuses == {"200", "422"}
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        if "$ref" in ok:
            ok = spec["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
        assert ok.get("type") == "object", path
        invalid = operation["responses"]["422"]["content"]["application/json"]["schema"]
        assert invalid == {"$ref": "#/components/schemas/HTTPValidationError"}
    schemas = spec["components"]["schemas"]
    assert schemas["HTTPValidationError"]["properties"]["detail"]["items"] == {
        "$ref": "#/components/schemas/ValidationError"
    }
    assert {"loc", "msg", "type"} <= set(schemas["ValidationError"]["required"])
    assert "/api/v1/admin/audit" not in spec["paths"]  # the slash-less twin stays out of the schema


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_undocumented_routes_are_declared_before_log_id(spec: dict[str, Any]) -> None:
    paths = list(spec["paths"])
    assert paths[-1] == "/api/v1/admin/audit/{log_id}"
    assert {"/api/v1/admin/audit/export", "/api/v1/audit/events"} <= set(paths)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_uvicorn_target_is_the_api_with_cors(settings: Settings) -> None:
    from uvicorn.importer import import_from_string

    import audit_app.api

    audit_app.api._standalone_app.cache_clear()
    app = import_from_string("audit_app.api:app")
    assert isinstance(app, FastAPI)
    assert set(DOCUMENTED_PATHS) <= set(app.openapi()["paths"])
    client = TestClient(app)
    foreign = client.get("/api/v1/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers
    allowed = client.get("/api/v1/health", headers={"Origin": "http://localhost:3000"})
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "access-control-allow-credentials" not in allowed.headers
    preflight = client.options(
        "/api/v1/admin/audit/",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    audit_app.api._standalone_app.cache_clear()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reflex_app_mounts_the_api_and_refuses_foreign_origins(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # Reflex reads rxconfig.py from the working directory
    monkeypatch.syspath_prepend(str(ROOT))
    get_settings.cache_clear()
    import reflex as rx
    from reflex.app import App

    import audit_app.audit_app as module

    assert isinstance(module.app, rx.App)
    api = module.app.api_transformer
    assert isinstance(api, FastAPI)
    assert {*DOCUMENTED_PATHS, "/api/v1/admin/audit/export", "/api/v1/audit/events"} <= set(api.openapi()["paths"])
    for path in ("/api/v1/admin/audit", "/api/v1/admin/audit/", "/api/v1/admin/audit/stats", "/api/v1/admin/audit/x"):
        assert routed(api, path), path
    assert routed(api, "/api/v1/audit/events", "POST")
    assert not routed(api, "/not/an/api/path")
    # The CORS middleware Reflex puts around the mounted API, with the origins rxconfig passes.
    from audit_app.api import create_api

    mounted = create_api()
    App._add_cors(mounted)
    client = TestClient(mounted)
    foreign = client.get("/api/v1/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in foreign.headers
    allowed = client.get("/api/v1/health", headers={"Origin": "http://localhost:3000"})
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
