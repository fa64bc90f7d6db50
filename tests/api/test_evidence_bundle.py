"""Evidence bundles (`format=bundle`), their offline verification, the signing keys, and the CSV for Excel."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from audit_app.__main__ import main
from audit_app.audit.bundle import BUNDLE_COLUMNS
from audit_app.audit.signing import DEMO_EXPORT_KEY_FILE, export_keys, key_id
from audit_app.audit.verify_export import ExportVerification, verify_bundle
from audit_app.models import AuditLog, ChainHead
from audit_app.settings import get_settings
from tests.api.helpers import LIST, World, at, event, write

EXPORT = LIST + "export"
KEYS = LIST + "export-keys"


def private_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def use_keys(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Configure the export keys: use_keys(signing, *retired) (the settings are read again)."""

    def configure(signing: Ed25519PrivateKey | None, *retired: Ed25519PrivateKey) -> None:
        if signing is None:
            monkeypatch.delenv("AUDIT_EXPORT_SIGNING_KEY", raising=False)
        else:
            monkeypatch.setenv("AUDIT_EXPORT_SIGNING_KEY", private_pem(signing))
        monkeypatch.setenv("AUDIT_EXPORT_PUBLIC_KEYS", "".join(public_pem(key) for key in retired))
        get_settings.cache_clear()

    return configure


@pytest.fixture
def key(use_keys: Callable[..., None]) -> Ed25519PrivateKey:
    """The export-signing key configured for the test."""
    signing = Ed25519PrivateKey.generate()
    use_keys(signing)
    return signing


@pytest.fixture
def tricky(session: Session, world: World) -> list[str]:
    """Events whose CSV cells are ambiguous or unusual: formulas, empty text, no value, non-ASCII, floats."""
    return write(
        session,
        [
            event(
                "acme",
                at(4, 8),
                actor_email='=HYPERLINK("http://evil")',
                resource_id="'=already quoted",
                resource_type="",
                user_agent='say "hi", then\r\nleave',
                request_id=None,
                session_id="",
                actor_id="Zoë 王 🙂",
                details={"ratio": 2.0, "big": 1e20, "pi": 3.14159, "name": "Ærø"},
            ),
            event("acme", at(4, 9), action="-dash", resource_type=None, resource_id=None, actor_email=None),
        ],
    )


def export_bundle(client: TestClient, headers: dict[str, str], path: Path, **params: str) -> Path:
    response = client.get(EXPORT, params={"format": "bundle", **params}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    path.write_bytes(response.content)
    return path


def failures(result: ExportVerification) -> dict[str, str]:
    return {check.name: check.failure or "" for check in result.checks if not check.ok}


def rewrite(bundle: Path, out: Path, **members: bytes) -> Path:
    """A copy of `bundle` with some members replaced."""
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, members.get(name.replace(".", "_"), src.read(name)))
    return out


def csv_lines(bundle: Path) -> list[bytes]:
    with zipfile.ZipFile(bundle) as archive:
        return io.BytesIO(archive.read("events.csv")).read().split(b"\r\n")


@pytest.mark.usefixtures("tricky")
def test_a_bundle_verifies_and_its_manifest_says_what_was_exported(
    client: TestClient, as_super: dict[str, str], key: Ed25519PrivateKey, session: Session, tmp_path: Path
) -> None:
    params = {"start_time": "2026-03-01T00:00:00Z", "end_time": "2026-03-05T00:00:00Z", "partner_id": "northwind"}
    response = client.get(EXPORT, params={"format": "bundle", **params}, headers=as_super)
    assert response.headers["content-disposition"] == (
        'attachment; filename="audit-partner-northwind-20260301T0000Z-20260305T0000Z.zip"'
    )
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(response.content)
    result = verify_bundle(str(bundle), [key.public_key()])
    assert result.ok, result.report()

    with zipfile.ZipFile(bundle) as archive:
        assert archive.namelist() == ["events.csv", "manifest.json", "manifest.sig"]  # manifest after the rows
        rows = list(csv.DictReader(io.StringIO(archive.read("events.csv").decode(), newline="")))
        manifest = json.loads(archive.read("manifest.json"))
    assert tuple(rows[0]) == BUNDLE_COLUMNS
    stored = session.execute(select(AuditLog).where(AuditLog.tenant_id.in_(["acme", "globex"]))).scalars().all()  # type: ignore[attr-defined]
    assert {row["id"] for row in rows} == {e.id for e in stored}
    by_id = {e.id: e for e in stored}
    for row in rows:
        assert (row["prev_hash"], int(row["chain_seq"])) == (by_id[row["id"]].prev_hash, by_id[row["id"]].chain_seq)
    assert manifest["kid"] == key_id(key.public_key()) == manifest["signature"]["kid"]
    assert manifest["filters"] == {
        "partner_id": "northwind",
        **{k: v.replace("Z", "+00:00") for k, v in params.items() if k != "partner_id"},
    }
    assert manifest["window"] == {
        "start_time": "2026-03-01T00:00:00.000000Z",
        "end_time": "2026-03-05T00:00:00.000000Z",
    }
    assert manifest["exported_by"]["role"] == "super_admin"
    assert manifest["exported_by"]["scope"] == "all tenants"
    assert manifest["events"]["rows"] == len(rows) == 8
    heads = {h.tenant_id: h for h in session.execute(select(ChainHead)).scalars()}
    chains = {chain["tenant_id"]: chain for chain in manifest["chains"]}
    assert chains.keys() == {"acme", "globex"}
    for tenant, chain in chains.items():
        seqs = sorted(int(row["chain_seq"]) for row in rows if row["tenant_id"] == tenant)
        assert chain["chain_seq_ranges"] == [[seqs[0], seqs[-1]]]
        assert chain["head"] == {"chain_seq": heads[tenant].seq, "hash": heads[tenant].hash}

    (record,) = session.execute(select(AuditLog).where(AuditLog.action == "audit.export.end")).scalars()  # type: ignore[arg-type]
    assert record.details["format"] == "bundle"
    assert record.details["sha256"] == manifest["events"]["sha256"]
    assert record.details["rows"] == 8
    assert record.details["complete"] is True


@pytest.mark.usefixtures("tricky")
def test_every_change_fails_verification_naming_what_failed(
    client: TestClient, as_super: dict[str, str], key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    bundle = export_bundle(client, as_super, tmp_path / "b.zip", tenant_id="initech")
    lines = csv_lines(bundle)
    header, first, second, rest = lines[0], lines[1], lines[2], lines[3:]
    second_id = second.split(b",")[0].decode()

    edited = rewrite(
        bundle,
        tmp_path / "edited.zip",
        events_csv=b"\r\n".join([header, first, second.replace(b"alice", b"alicf", 1), *rest]),
    )
    found = failures(verify_bundle(str(edited), [key.public_key()]))
    assert found.keys() == {"events.csv digest", "row hashes"}
    assert found["row hashes"].startswith(f"row 2 (id {second_id}, tenant initech")

    deleted = rewrite(bundle, tmp_path / "deleted.zip", events_csv=b"\r\n".join([header, first, *rest]))
    found = failures(verify_bundle(str(deleted), [key.public_key()]))
    assert {"events.csv digest", "row count", "chain ranges and heads"} <= found.keys()
    assert "rows, the manifest says" in found["row count"]

    reordered = rewrite(bundle, tmp_path / "reordered.zip", events_csv=b"\r\n".join([header, second, first, *rest]))
    found = failures(verify_bundle(str(reordered), [key.public_key()]))
    assert found.keys() == {"events.csv digest", "row order"}
    assert found["row order"].startswith("row 2 ")

    with zipfile.ZipFile(bundle) as archive:
        manifest = archive.read("manifest.json")
    changed = rewrite(
        bundle,
        tmp_path / "manifest.zip",
        manifest_json=manifest.replace(b'"tenant_id": "initech"', b'"tenant_id": "initecx"', 1),
    )
    found = failures(verify_bundle(str(changed), [key.public_key()]))
    assert "the manifest was changed" in found["signature"]

    other = Ed25519PrivateKey.generate()
    resigned = rewrite(bundle, tmp_path / "other.zip", manifest_sig=other.sign(manifest))
    assert "the manifest was changed" in failures(verify_bundle(str(resigned), [key.public_key()]))["signature"]
    found = failures(verify_bundle(str(bundle), [other.public_key()]))  # the auditor holds another key
    assert found.keys() == {"signature"}
    assert f"names key {key_id(key.public_key())}, which is not among the keys given" in found["signature"]


@pytest.mark.usefixtures("world")
def test_the_cli_verifies_offline_and_exits_non_zero_naming_the_row(
    client: TestClient,
    as_acme: dict[str, str],
    key: Ed25519PrivateKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = export_bundle(client, as_acme, tmp_path / "acme.zip")
    pem = tmp_path / "export-key.pem"
    pem.write_text(public_pem(key))
    assert main(["verify-export", str(bundle), "--key", str(pem)]) == 0
    out = capsys.readouterr().out
    for said in (
        "OK   signature",
        "OK   events.csv digest",
        "4 rows, as in the manifest",
        "4 hashes recomputed",
        "VERIFIED",
    ):
        assert said in out
    lines = csv_lines(bundle)
    tampered = rewrite(
        bundle,
        tmp_path / "t.zip",
        events_csv=b"\r\n".join([*lines[:3], lines[3].replace(b"success", b"failure"), *lines[4:]]),
    )
    assert main(["verify-export", str(tampered), "--key", str(pem)]) == 1
    out = capsys.readouterr().out
    assert "FAIL row hashes: row 3 (id " in out
    assert "NOT VERIFIED" in out
    assert main(["verify-export", str(tmp_path / "missing.zip"), "--key", str(pem)]) == 2


@pytest.mark.usefixtures("world")
def test_a_rotated_key_still_verifies_old_bundles_through_the_published_key_set(
    client: TestClient, as_super: dict[str, str], use_keys: Callable[..., None], tmp_path: Path
) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    use_keys(old)
    old_bundle = export_bundle(client, as_super, tmp_path / "old.zip", tenant_id="initech")
    use_keys(new, old)  # rotation: the new key signs, the old one stays published
    new_bundle = export_bundle(client, as_super, tmp_path / "new.zip", tenant_id="initech")
    jwks = client.get(KEYS).json()  # public: no token needed
    assert [jwk["kid"] for jwk in jwks["keys"]] == [key_id(new.public_key()), key_id(old.public_key())]
    assert all(jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA" for jwk in jwks["keys"])
    published = tmp_path / "export-keys.json"
    published.write_text(json.dumps(jwks))
    for bundle in (old_bundle, new_bundle):
        assert main(["verify-export", str(bundle), "--keys-url", published.as_uri()]) == 0
    use_keys(new)  # the old key dropped from the set: its bundles no longer verify
    published.write_text(json.dumps(client.get(KEYS).json()))
    assert main(["verify-export", str(old_bundle), "--keys-url", published.as_uri()]) == 1


@pytest.mark.usefixtures("world")
def test_without_a_signing_key_bundles_are_refused_and_demo_mode_keeps_one(
    client: TestClient, as_super: dict[str, str], use_keys: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys(None)
    response = client.get(EXPORT, params={"format": "bundle"}, headers=as_super)
    assert response.status_code == 503
    assert "AUDIT_EXPORT_SIGNING_KEY" in response.json()["detail"]
    assert client.get(KEYS).json() == {"keys": []}
    monkeypatch.setenv("AUDIT_DEMO", "1")
    get_settings.cache_clear()
    first = export_keys(get_settings())
    assert DEMO_EXPORT_KEY_FILE.exists()
    assert oct(DEMO_EXPORT_KEY_FILE.stat().st_mode & 0o777) == "0o600"
    again = export_keys(get_settings())
    assert first.jwks() == again.jwks() == client.get(KEYS).json()
    assert len(first.jwks()["keys"]) == 1
    assert client.get(EXPORT, params={"format": "bundle"}, headers=as_super).status_code == 200


def test_a_bad_signing_key_is_a_clear_configuration_error(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setenv("AUDIT_EXPORT_SIGNING_KEY", "not a pem")
    get_settings.cache_clear()
    with pytest.raises(Exception, match="Invalid AUDIT_EXPORT_SIGNING_KEY"):
        export_keys(get_settings())


def test_the_csv_for_excel_has_a_bom_crlf_and_opens_with_the_right_characters(
    client: TestClient, as_super: dict[str, str], session: Session
) -> None:
    names = ["José Müller", "王小明", "Zoë 🙂🎉", "=SUM(A1)"]
    write(session, [event("acme", at(5, hour), actor_id=name, actor_email=None) for hour, name in enumerate(names)])
    response = client.get(EXPORT, params={"excel": "1", "tenant_id": "acme"}, headers=as_super)
    data = response.content
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == len(names) + 1
    assert data.count(b"\n") == data.count(b"\r\n")
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8")
    assert next(iter(frame.columns)) == "id"  # the mark is not part of the first header
    assert sorted(frame["actor_id"]) == sorted([*names[:3], "'=SUM(A1)"])  # neutralised exactly as before
    plain = client.get(EXPORT, params={"tenant_id": "acme"}, headers=as_super).content
    assert not plain.startswith(b"\xef\xbb\xbf")

    def events(text: bytes) -> list[bytes]:  # without the audit.export records of the first export
        return [
            line for line in text.split(b"\r\n") if b",audit.export," not in line and b",audit.export.end," not in line
        ]

    assert events(data[3:]) == events(plain)
    assert client.get(EXPORT, params={"excel": "1", "format": "jsonl"}, headers=as_super).status_code == 422
