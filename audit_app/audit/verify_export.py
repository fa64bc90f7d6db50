"""Offline verification of an evidence bundle (`python -m audit_app verify-export`).

Needs only the zip and the public key (a PEM file or the published JWKS): no database, no
server settings. Each check reports what it covered and its first failure, naming the row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit_app.audit.bundle import BUNDLE_COLUMNS, EVENTS_FILE, MANIFEST_FILE, ROW_ORDERS, SIGNATURE_FILE, ChainRanges
from audit_app.audit.chain import event_hash
from audit_app.audit.export import FORMULA_PREFIXES
from audit_app.audit.signing import jwk_public_key, key_id, verify_signature
from audit_app.models import EVENT_FIELDS
from audit_app.progress import Progress, no_progress

TEXT_FIELDS: tuple[str, ...] = tuple(
    name for name in EVENT_FIELDS if name not in ("timestamp", "details")
)  # the hashed fields a CSV cell holds as text
NULL_WHEN_EMPTY = frozenset({"partner_id", "ip_address"})
"""Optional fields that never hold empty text (ingestion refuses it): an empty cell is no value."""
NULLABLE = frozenset({"actor_email", "resource_type", "resource_id", "user_agent", "request_id", "session_id"})
"""Optional fields that may hold empty text: an empty cell is no value or empty text."""
MAX_READINGS = 4096  # readings of one row tried before calling its hash wrong (2^12 ambiguous cells)
READ_CHUNK = 1 << 20
PROGRESS_ROWS = 1000  # rows checked between two progress reports
HASHING, CHECKING = "hashing events.csv (bytes)", "checking rows"


class BundleError(Exception):
    """The file is not a bundle this tool can read (missing member, bad JSON, unknown key)."""


@dataclass
class Check:
    """One verification step: what it covered and, when it failed, why (the first failure)."""

    name: str
    covered: str = ""
    failure: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the check passed."""
        return self.failure is None

    def fail(self, message: str) -> None:
        """Keep the first failure."""
        if self.failure is None:
            self.failure = message


@dataclass
class ExportVerification:
    """Every check of one bundle, in the order they ran."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(check.ok for check in self.checks)

    def report(self) -> str:
        """Human-readable lines: one per check, then the verdict."""
        lines = [f"{'OK  ' if c.ok else 'FAIL'} {c.name}: {c.covered if c.ok else c.failure}" for c in self.checks]
        lines.append("VERIFIED: the bundle is intact." if self.ok else "NOT VERIFIED: see FAIL above.")
        return "\n".join(lines)


def keys_from_url(url: str) -> list[Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS document at `url` (https://, http:// or file://)."""
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (the auditor names the URL)
        document = json.load(response)
    keys = []
    for jwk in document.get("keys", []) if isinstance(document, dict) else []:
        try:
            keys.append(jwk_public_key(jwk))
        except ValueError:
            continue  # other key types may share the set
    return keys


def _cell_readings(name: str, value: str) -> list[str | None]:
    """What the event may have held for a CSV cell, likeliest first.

    The export writes no value as an empty cell and puts a `'` before text a spreadsheet would
    run as a formula, so `''` and `'=x` each have two possible originals.
    """
    if value == "":
        return [None] if name in NULL_WHEN_EMPTY else [None, ""] if name in NULLABLE else [""]
    if value[0] == "'" and value[1:2] and value[1] in FORMULA_PREFIXES:
        return [value[1:], value]
    return [value]


def _readings(row: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The events a CSV row may stand for (usually exactly one)."""
    fixed: dict[str, Any] = {
        "timestamp": datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00")),
        "details": json.loads(row["details"]),
        "chain_seq": int(row["chain_seq"]),
        "prev_hash": row["prev_hash"],
    }
    options = [_cell_readings(name, row[name]) for name in TEXT_FIELDS]
    for values in itertools.islice(itertools.product(*options), MAX_READINGS):
        yield fixed | dict(zip(TEXT_FIELDS, values, strict=True))


def row_hash_matches(row: dict[str, str]) -> bool:
    """Whether some reading of the row hashes to its `hash` column (the canonical form of the product)."""
    return any(event_hash(event) == row["hash"] for event in _readings(row))


def _read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        return archive.read(name)
    except KeyError:
        raise BundleError(f"the zip has no {name}: it is not an evidence bundle") from None


def _sha256(stream: IO[bytes], size: int, progress: Progress) -> str:
    digest = hashlib.sha256()
    done = 0
    progress(HASHING, done, size)
    while chunk := stream.read(READ_CHUNK):
        digest.update(chunk)
        done += len(chunk)
        progress(HASHING, done, size)
    return digest.hexdigest()


def _signature_check(manifest_bytes: bytes, signature: bytes, kid: str, keys: list[Ed25519PublicKey]) -> Check:
    check = Check("signature")
    by_kid = {key_id(key): key for key in keys}
    key = by_kid.get(kid)
    if key is None:
        given = ", ".join(sorted(by_kid)) or "none"
        check.fail(f"{MANIFEST_FILE} names key {kid}, which is not among the keys given ({given})")
    elif not verify_signature(key, signature, manifest_bytes):
        check.fail(f"{SIGNATURE_FILE} is not key {kid}'s signature of {MANIFEST_FILE}: the manifest was changed")
    else:
        check.covered = f"{MANIFEST_FILE} is signed by key {kid} (Ed25519)"
    return check


def _describe(number: int, row: dict[str, str]) -> str:
    """How a failure names a row: its number in events.csv (1 = first after the header) and its identity."""
    identity = f"id {row.get('id', '?')}, tenant {row.get('tenant_id', '?')}, chain_seq {row.get('chain_seq', '?')}"
    return f"row {number} ({identity})"


def verify_bundle(path: str, keys: list[Ed25519PublicKey], *, progress: Progress = no_progress) -> ExportVerification:
    """Check a bundle: signature, CSV digest, row count, every row's hash, order, chain links, ranges and heads.

    `progress` hears the bytes of events.csv digested, then the rows checked (of the manifest's count).
    """
    result = ExportVerification()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path} is not a readable zip ({exc})") from None
    with archive:
        manifest_bytes = _read_member(archive, MANIFEST_FILE)
        signature = _read_member(archive, SIGNATURE_FILE)
        if EVENTS_FILE not in archive.namelist():
            raise BundleError(f"the zip has no {EVENTS_FILE}: it is not an evidence bundle")
        try:
            manifest = json.loads(manifest_bytes)
            kid, events = str(manifest["kid"]), manifest["events"]
        except (ValueError, KeyError, TypeError):
            raise BundleError(f"{MANIFEST_FILE} is not a bundle manifest") from None
        result.checks.append(_signature_check(manifest_bytes, signature, kid, keys))

        digest = Check("events.csv digest")
        with archive.open(EVENTS_FILE) as raw:
            found = _sha256(raw, archive.getinfo(EVENTS_FILE).file_size, progress)
        if found != events.get("sha256"):
            digest.fail(f"SHA-256 of {EVENTS_FILE} is {found}, the manifest says {events.get('sha256')}")
        else:
            digest.covered = f"SHA-256 {found} as in the manifest"
        result.checks.append(digest)

        with archive.open(EVENTS_FILE) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            result.checks.extend(_row_checks(csv.DictReader(text), manifest, progress))
    return result


def _row_checks(reader: csv.DictReader[str], manifest: dict[str, Any], progress: Progress) -> list[Check]:
    """Row count, each row's hash, the order the manifest states, chain links, and the manifest's ranges and heads."""
    expected_rows = manifest["events"].get("rows")
    total = expected_rows if isinstance(expected_rows, int) and expected_rows >= 0 else None
    count, hashes, order = Check("row count"), Check("row hashes"), Check("row order")
    links, chains = Check("chain links"), Check("chain ranges and heads")
    if tuple(reader.fieldnames or ()) != BUNDLE_COLUMNS:
        count.fail(f"the columns of {EVENTS_FILE} are not those of a bundle: {reader.fieldnames}")
        return [count]
    seen: dict[tuple[str, int], tuple[str, str, int]] = {}  # (tenant, seq) -> (hash, prev_hash, row number)
    previous: tuple[str, str] | None = None
    ascending = manifest["events"].get("order") == ROW_ORDERS["asc"]
    rows = 0
    progress(CHECKING, 0, total)
    for number, row in enumerate(reader, start=1):
        rows = number
        if number % PROGRESS_ROWS == 0:
            progress(CHECKING, number, total)
        if None in row or any(value is None for value in row.values()):
            hashes.fail(f"{_describe(number, row)} has {'more' if None in row else 'fewer'} cells than the header")
            continue
        try:
            matches = row_hash_matches(row)
        except ValueError as exc:
            hashes.fail(f"{_describe(number, row)} cannot be read: {exc}")
            continue
        if not matches:
            hashes.fail(f"{_describe(number, row)}: its fields do not hash to its hash {row['hash']}: it was edited")
        position = (row["timestamp"], row["id"])
        if previous is not None and (position < previous if ascending else position > previous):
            newer = "older" if ascending else "newer"
            order.fail(f"{_describe(number, row)} is {newer} than the row before it: rows were reordered")
        previous = position
        key = (row["tenant_id"], int(row["chain_seq"]))
        if key in seen:
            links.fail(f"{_describe(number, row)} repeats the chain_seq of row {seen[key][2]}")
        seen[key] = (row["hash"], row["prev_hash"], number)
    progress(CHECKING, rows, total)
    if rows != expected_rows:
        count.fail(f"{EVENTS_FILE} holds {rows:,} rows, the manifest says {expected_rows:,}")
    else:
        count.covered = f"{rows:,} rows, as in the manifest"
    hashes.covered = f"{rows:,} hashes recomputed from their fields"
    order.covered = (
        "oldest first (timestamp, then id, ascending)" if ascending else "newest first (timestamp, then id, descending)"
    )
    checked_links = 0
    for (tenant, seq), (_hash, prev_hash, number) in sorted(seen.items(), key=lambda item: item[1][2]):
        before = seen.get((tenant, seq - 1))
        if before is not None:
            checked_links += 1
            if prev_hash != before[0]:
                links.fail(
                    f"row {number} (tenant {tenant}, chain_seq {seq}) does not link to row {before[2]} "
                    f"(chain_seq {seq - 1}): its prev_hash is not that row's hash"
                )
    links.covered = f"{checked_links:,} links between consecutive chain_seq values in the file"
    _check_chains(chains, manifest, seen)
    return [count, hashes, order, links, chains]


def _check_chains(check: Check, manifest: dict[str, Any], seen: dict[tuple[str, int], tuple[str, str, int]]) -> None:
    """The manifest's per-tenant ranges and rows are those of the file, and no row lies past its chain head."""
    ranges = ChainRanges()
    ranges.add(sorted(seen))
    listed = {chain["tenant_id"]: chain for chain in manifest.get("chains", [])}
    if set(listed) != set(ranges.runs):
        check.fail(f"the manifest lists tenants {sorted(listed)}, the file holds {sorted(ranges.runs)}")
        return
    for tenant, chain in sorted(listed.items()):
        if chain.get("chain_seq_ranges") != ranges.ranges(tenant) or chain.get("rows") != ranges.rows(tenant):
            check.fail(
                f"tenant {tenant}: the file's chain_seq ranges {ranges.ranges(tenant)} differ from the manifest's"
            )
            return
        head_seq, head_hash = chain["head"]["chain_seq"], chain["head"]["hash"]
        last = ranges.ranges(tenant)[-1][1]
        if last > head_seq:
            check.fail(f"tenant {tenant}: chain_seq {last} lies past the chain head {head_seq} it was checked against")
            return
        at_head = seen.get((tenant, head_seq))
        if at_head is not None and at_head[0] != head_hash:
            check.fail(f"tenant {tenant}: row {at_head[2]} at the head (chain_seq {head_seq}) has not the head's hash")
            return
    check.covered = f"{len(listed)} tenant chain(s): ranges as in the manifest, every row at or before its chain head"
