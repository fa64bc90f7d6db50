"""`sort` on the list and the export: newest first by default, `asc` oldest first, ties on time by id."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session, col

from audit_app.audit.verify_export import verify_bundle
from audit_app.models import AuditLog, utc
from audit_app.settings import get_settings
from tests.api.helpers import LIST, World, at, event, write

EXPORT = LIST + "export"


def listed(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get(LIST, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def keys(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(item["timestamp"], item["id"]) for item in body["items"]]


@pytest.fixture
def ties(session: Session, world: World) -> list[str]:
    """Nine more acme events, three instants shared by three each; acme's 13 ids, oldest first (by time, then id)."""
    write(session, [event("acme", at(day, 6), actor_id=f"tie-{day}-{n}") for day in (1, 2, 3) for n in range(3)])
    stored = session.execute(
        select(col(AuditLog.timestamp), col(AuditLog.id)).where(col(AuditLog.tenant_id) == "acme")
    ).all()
    return [event_id for _stamp, event_id in sorted((utc(stamp), event_id) for stamp, event_id in stored)]


def test_asc_lists_oldest_first_and_is_the_default_reversed(
    client: TestClient, as_super: dict[str, str], world: World
) -> None:
    newest = listed(client, as_super, per_page=500)
    assert keys(newest) == keys(listed(client, as_super, per_page=500, sort="desc"))
    oldest = listed(client, as_super, per_page=500, sort="asc")
    assert keys(oldest) == sorted(keys(oldest))
    assert keys(oldest) == keys(newest)[::-1]
    assert oldest["total"] == newest["total"] == len(world.all)
    acme = listed(client, as_super, tenant_id="acme", sort="asc")  # with a filter: the same rows, in time order
    assert [item["tenant_id"] for item in acme["items"]] == ["acme"] * 4
    assert keys(acme) == sorted(keys(acme))


def test_ascending_pages_are_stable_with_ties_broken_by_id(
    client: TestClient, as_acme: dict[str, str], ties: list[str]
) -> None:
    whole = listed(client, as_acme, sort="asc", per_page=500)
    assert [item["id"] for item in whole["items"]] == ties  # ties: id ascending, as the time is
    assert len(ties) == 13
    for per_page in (2, 3, 5):
        by_offset: list[str] = []
        for page in range(1, -(-len(ties) // per_page) + 1):
            body = listed(client, as_acme, sort="asc", per_page=per_page, page=page)
            assert body["pages"] == -(-len(ties) // per_page)
            by_offset += [item["id"] for item in body["items"]]
        assert by_offset == ties, per_page
        by_cursor: list[str] = []
        params: dict[str, Any] = {"sort": "asc", "per_page": per_page}
        while True:
            body = listed(client, as_acme, **params)
            by_cursor += [item["id"] for item in body["items"]]
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        assert by_cursor == ties, per_page
    again = [item["id"] for n in (1, 2, 3) for item in listed(client, as_acme, sort="asc", per_page=5, page=n)["items"]]
    assert again == ties  # asked again: the same pages


@pytest.mark.parametrize("path", [LIST, EXPORT])
@pytest.mark.parametrize("value", ["ascending", "ASC", "", "time", "asc,desc"])
def test_any_other_sort_is_422_in_the_validation_shape(
    client: TestClient, as_super: dict[str, str], path: str, value: str
) -> None:
    response = client.get(path, params={"sort": value}, headers=as_super)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "sort"]
    assert {"loc", "msg", "type"} <= set(error)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "ocsf"])
def test_export_follows_sort(
    client: TestClient, as_acme: dict[str, str], ties: list[str], session: Session, fmt: str
) -> None:
    def exported(**params: str) -> list[str]:
        window = {"end_time": at(5).isoformat()}  # leaves out the records of these exports (written now)
        response = client.get(EXPORT, params={"format": fmt, **window, **params}, headers=as_acme)
        assert response.status_code == 200, response.text
        if fmt == "csv":
            return [row["id"] for row in csv.DictReader(io.StringIO(response.text, newline=""))]
        lines = [json.loads(line) for line in response.text.splitlines()]
        return [line["metadata"]["uid"] if fmt == "ocsf" else line["id"] for line in lines]

    assert exported(sort="asc") == ties
    assert exported() == exported(sort="desc") == ties[::-1]


def test_an_ascending_bundle_says_so_and_verifies(
    client: TestClient,
    as_acme: dict[str, str],
    ties: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    monkeypatch.setenv("AUDIT_EXPORT_SIGNING_KEY", pem.decode())
    get_settings.cache_clear()
    response = client.get(
        EXPORT, params={"format": "bundle", "sort": "asc", "end_time": at(5).isoformat()}, headers=as_acme
    )
    assert response.status_code == 200, response.text
    bundle = tmp_path / "asc.zip"
    bundle.write_bytes(response.content)
    with zipfile.ZipFile(bundle) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("events.csv").decode(), newline="")))
        manifest = json.loads(archive.read("manifest.json"))
    assert [row["id"] for row in rows] == ties
    assert manifest["events"]["order"] == "timestamp ascending, then id ascending"
    result = verify_bundle(str(bundle), [key.public_key()])
    assert result.ok, result.report()
    assert "oldest first" in result.report()
    # the same rows stated newest first no longer verify: the manifest's order is signed and checked
    reordered = tmp_path / "reordered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(reordered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "events.csv":
                header, *lines = data.split(b"\r\n")[:-1]
                data = b"\r\n".join([header, *lines[::-1]]) + b"\r\n"
            dst.writestr(name, data)
    failed = verify_bundle(str(reordered), [key.public_key()])
    assert not failed.ok
    assert any(check.name == "row order" and not check.ok for check in failed.checks)


def test_openapi_documents_sort_on_list_and_export(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in (LIST, EXPORT):
        (param,) = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "sort"]
        assert param["in"] == "query"
        assert param["required"] is False
        assert param["schema"]["enum"] == ["desc", "asc"]
        assert param["schema"]["default"] == "desc"
