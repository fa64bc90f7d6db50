"""The hash chain's bottom layer: the canonical form of an event, its hash, and the seal constants.

Every event's `hash` covers its canonical form including `prev_hash`, so each hash seals its
tenant's chain so far. Ingest computes it, integrity re-computes it, export spells times the
same way, and the retention purge seals its checkpoint with `SEAL_SEQ`/`SEAL_HASH`. This module
imports nothing else of `audit/`, so everything can import it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from audit_app.models import EVENT_FIELDS, utc

GENESIS_HASH = ""
HASHED_FIELDS: tuple[str, ...] = (*EVENT_FIELDS, "chain_seq", "prev_hash")
PURGE_ACTION = "audit.purge"
SEAL_SEQ, SEAL_HASH = "through_seq", "through_hash"  # the checkpoint an audit.purge event seals


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a `Z`, the one spelling used for hashing and export."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_json(value: Any) -> Any:
    """`value` with numbers spelled the same however the database hands them back.

    PostgreSQL's JSONB keeps numbers as decimals: a float such as `1e+20` or `2.0` comes back
    as the integer `100000000000000000000` or the float `2.0`. Whole-valued floats therefore
    hash as the exact integer of their decimal spelling; other floats keep their shortest
    round-trip spelling, which JSONB preserves.
    """
    if isinstance(value, dict):
        return {key: _canonical_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical_json(item) for item in value]
    if isinstance(value, float):
        exact = Decimal(repr(value))
        return int(exact) if exact == exact.to_integral_value() else value
    return value


# Sorted keys; dates, dataclasses and subclasses of str, int, dict or list refused (json spells or refuses them).
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
# What json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) builds per call, built once.
_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _holds_float(value: Any) -> bool:
    """Whether a float is left anywhere in `value` (orjson spells floats otherwise than `json`)."""
    if isinstance(value, dict):
        return any(_holds_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_float(item) for item in value)
    return isinstance(value, float)


def canonical_form(event: dict[str, Any]) -> bytes:
    """The bytes that are hashed: the hashed fields as sorted, compact JSON.

    orjson writes the same bytes as `_CANONICAL_ENCODER` (four times faster) for documents of
    strings, integers up to 64 bits, booleans and nulls; a float, a larger integer or a key that
    is not a string (orjson refuses the last two) is spelled by `json`.
    """
    doc = {name: event.get(name) for name in HASHED_FIELDS}
    doc["timestamp"] = iso_utc(event["timestamp"])
    doc["details"] = _canonical_json(doc["details"])
    if not _holds_float(doc["details"]):
        try:
            return orjson.dumps(doc, option=_ORJSON_OPTIONS)
        except orjson.JSONEncodeError:
            pass
    return _CANONICAL_ENCODER.encode(doc).encode()


def event_hash(event: dict[str, Any]) -> str:
    """SHA-256 of the canonical form; it covers `prev_hash`, so each hash seals the chain so far."""
    return hashlib.sha256(canonical_form(event)).hexdigest()
