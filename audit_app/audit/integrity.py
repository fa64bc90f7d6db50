"""Tamper evidence: the canonical form of an event and its hash, chained per tenant."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from audit_app.models import utc

GENESIS_HASH = ""
HASHED_FIELDS: tuple[str, ...] = (
    "id",
    "timestamp",
    "tenant_id",
    "partner_id",
    "actor_id",
    "actor_email",
    "actor_type",
    "action",
    "resource_type",
    "resource_id",
    "result",
    "ip_address",
    "user_agent",
    "request_id",
    "session_id",
    "details",
    "chain_seq",
    "prev_hash",
)


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a `Z`, the one spelling used for hashing and export."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_form(event: dict[str, Any]) -> bytes:
    """The bytes that are hashed: the hashed fields as sorted, compact JSON."""
    doc = {name: event.get(name) for name in HASHED_FIELDS}
    doc["timestamp"] = iso_utc(event["timestamp"])
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: dict[str, Any]) -> str:
    """SHA-256 of the canonical form; it covers `prev_hash`, so each hash seals the chain so far."""
    return hashlib.sha256(canonical_form(event)).hexdigest()
