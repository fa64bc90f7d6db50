"""The documents streams send are serialised straight from the feed rows (no pydantic model per
event): the same JSON documents - fields, order, values - as validating each row as
AuditLogPublic and `json.dumps` gave before, for every type's body (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session

from audit_app.audit.ingest import ingest_events
from audit_app.audit.ocsf import to_ocsf
from audit_app.audit.stream_delivery import document, encode, ndjson, sample_event, syslog_message
from audit_app.audit.streams import SyslogStream, read_batch
from audit_app.models import AuditEventIn, AuditLogPublic, utcnow
from tests.streams.helpers import load, new_stream

DETAILS: list[dict[str, Any]] = [
    {},
    {"n": 1, "float": 1e-07, "two": 2.0, "big": 2**70, "neg": -(2**63), "ok": True, "none": None},
    {"text": 'caf\u00e9 \u2028 line\u2029sep \U0001f600 \x01\x1f tab\t quote" back\\slash </script>'},
    {"nested": {"list": [1, "two", {"three": [3.5, None, False]}], "empty": {}, "e": []}},
    {"key with spaces": "v", "\u00fcnicode-key": "x", "": "empty key"},
]


def old_document(event: Any, fmt: str) -> dict[str, Any]:
    """The serialiser before: each event validated as AuditLogPublic, dumped for JSON."""
    if fmt == "ocsf":
        return to_ocsf(event)
    return AuditLogPublic.model_validate(event, from_attributes=True).model_dump(mode="json")


def ordered(text: str | bytes) -> Any:
    """A JSON text parsed keeping key order (lists of pairs), so order counts in comparisons."""
    return json.loads(text, object_pairs_hook=list)


def rows(session: Session) -> list[Any]:
    stream = new_stream(session, type="http", target="https://siem.example.com/", credentials={"secret": "s" * 20})
    events = [
        AuditEventIn(
            tenant_id="acme",
            actor_id=f"actor-{i}",
            actor_email="\u00e9ve@example.com" if i % 2 else None,
            action=("user.login", "role.assign", "user.update")[i % 3],
            result=("success", "failure", "denied", "error")[i % 4],
            resource_type="user" if i % 2 else None,
            resource_id=f"u-{i}",
            ip_address="2001:db8::1" if i % 2 else "10.1.2.3",
            user_agent="agent \u2603" if i % 3 else None,
            request_id=f"req-{i}",
            session_id=None if i % 2 else f"sess-{i}",
            details=details,
        )
        for i, details in enumerate(DETAILS * 3)
    ]
    ingest_events(session, events, register=True)
    session.commit()
    batch = read_batch(session, load(session, stream.id), 1000)
    session.commit()
    assert len(batch) == len(events) + 1  # and the stream's own audit.stream.create
    return batch


def test_documents_are_the_validated_models_json(session: Session) -> None:
    batch = [*rows(session), sample_event("sid", "s", "acme", None, utcnow())]
    for fmt in ("json", "ocsf"):
        body = ndjson(batch, fmt)
        lines = body.split(b"\n")
        assert lines[-1] == b""  # one line per event, each ended
        assert len(lines) == len(batch) + 1
        for event, line in zip(batch, lines, strict=False):
            before = json.dumps(old_document(event, fmt))
            assert ordered(line) == ordered(before)
            assert encode(document(event, fmt)) == encode(old_document(event, fmt))  # byte for byte, compact


def test_every_types_body_carries_the_same_documents(session: Session) -> None:
    """Splunk's `event`, Datadog's `message`, Elasticsearch's source and the syslog message hold
    the documents the old serialiser wrote."""
    batch = rows(session)
    spec = SyslogStream.model_validate({"name": "s", "type": "syslog", "target": "siem.example.com:514"})
    for event in batch:
        before = ordered(json.dumps(old_document(event, "json")))
        message = syslog_message(event, spec, "host").decode()
        assert ordered(message.split("] ", 1)[1]) == before
        datadog_message = json.loads(encode({"message": encode(document(event, "json")).decode()}))["message"]
        assert ordered(datadog_message) == before


def test_a_lone_surrogate_is_escaped_as_before(session: Session) -> None:
    """A string JSON cannot carry in UTF-8 (a lone surrogate, which SQLite's JSON text can hold)
    is written escaped, as json.dumps did, instead of failing the batch."""
    event = sample_event("sid", "s", "acme", None, utcnow())
    event.details = {"odd": "\ud800", "fine": "\u00e9"}
    line = ndjson([event], "json")
    assert ordered(line) == ordered(json.dumps(old_document(event, "json")))
    assert b"\\ud800" in line
