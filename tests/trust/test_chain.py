"""Tamper evidence: the chains verify, and any edit, deletion or reordering is found at that event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlmodel import Session, col

from audit_app.audit.chain import HASHED_FIELDS, _canonical_json, canonical_form, event_hash
from audit_app.audit.ingest import ingest_events
from audit_app.audit.integrity import verify_chains
from audit_app.auth import ForbiddenError, Principal
from audit_app.db import engine_for
from audit_app.models import AuditEventIn, AuditLog
from tests.principals import SUPER
from tests.trust.helpers import chain_ids, tamper, write


def test_intact_chains_verify_and_the_check_is_audited(session: Session) -> None:
    write(session, "acme", 12, partner="p1")
    write(session, "acme", 3)
    write(session, "globex", 5, partner="p2")
    report = verify_chains(session, SUPER)
    assert report.ok
    assert (report.events_checked, report.tenants_checked) == (20, 2)
    assert {chain.tenant_id: chain.head_seq for chain in report.chains} == {"acme": 15, "globex": 5}
    logged = session.get(AuditLog, report.event_id)
    assert logged is not None
    assert (logged.action, logged.actor_id, logged.tenant_id) == ("audit.verify", "root", "platform")
    assert logged.details["events_checked"] == 20
    assert logged.details["ok"] is True
    # The audit.verify event is itself chained: the next run checks it, and only it (incremental).
    assert verify_chains(session, SUPER).events_checked == 1
    assert verify_chains(session, SUPER, full=True).events_checked == 22


def test_numbers_hash_the_same_after_the_database_round_trip(session: Session) -> None:
    details: dict[str, Any] = {"big": 1e20, "whole": 2.0, "negzero": -0.0, "tenth": 0.1, "huge": 1e300, "tiny": 5e-324}
    details |= {"int": 12345678901234567890, "nested": [1.5e-7, {"x": 3.0}], "unicode": "ünï\u202e😀"}
    ingest_events(session, [AuditEventIn(tenant_id="t", actor_id="a", action="x.y", details=details)])
    session.commit()
    assert verify_chains(session, SUPER).ok


def test_canonical_form_is_stable_json() -> None:
    from datetime import UTC, datetime

    event = {"id": "e1", "timestamp": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "details": {"b": 1, "a": 2.0}}
    doc = json.loads(canonical_form(event))
    assert doc["timestamp"] == "2026-01-02T03:04:05.000006Z"
    assert doc["details"] == {"a": 2, "b": 1}
    assert event_hash(event) == event_hash(dict(reversed(list(event.items()))))


HOSTILE_TEXT = [
    "".join(map(chr, range(0x20))) + '"\\/\x7f',
    "\u2028\u2029\ufeff\uffff\U0010ffff ünï\u202e😀 中文",
    "",
]
HOSTILE_DETAILS: list[dict[str, Any]] = [
    {},
    {text: text for text in HOSTILE_TEXT},
    {"z": [1, -2, True, False, None, 2**63 - 1, -(2**63), 2**64 - 1], "a": {"é": "x", "e": "y", "😀": 1, "\uffff": 2}},
    {"whole": 2.0, "negzero": -0.0, "big": 1e20, "list": [3.0, [4.0]]},  # whole floats are hashed as integers
    {"tenth": 0.1, "nested": [1.5e-7, {"x": 3.5}]},  # floats: json spells them
    {"past 64 bits": 2**64, "negative": -(2**63) - 1},  # orjson refuses them: json spells them
    {"deep": [[[[{"k": [None]}]]]]},
]


@pytest.mark.parametrize("details", HOSTILE_DETAILS, ids=range(len(HOSTILE_DETAILS)))
@pytest.mark.parametrize("text", HOSTILE_TEXT, ids=range(len(HOSTILE_TEXT)))
def test_canonical_form_is_the_json_encoders(details: dict[str, Any], text: str) -> None:
    """orjson writes the very bytes of json.dumps(sort_keys, compact, ensure_ascii=False), or json does."""
    from datetime import UTC, datetime

    event: dict[str, Any] = {name: text for name in HASHED_FIELDS} | {"chain_seq": 2**40, "partner_id": None}
    event |= {"timestamp": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "details": details}
    reference = {name: event.get(name) for name in HASHED_FIELDS}
    reference |= {"timestamp": "2026-01-02T03:04:05.000006Z", "details": _canonical_json(details)}
    expected = json.dumps(reference, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical_form(event) == expected


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor_id", "'mallory'"), ("details", "'{\"n\": 99}'"), ("result", "'failure'"), ("prev_hash", "'00'")],
)
def test_an_edited_event_breaks_the_chain_at_that_event(
    session: Session, database_url: str, column: str, value: str
) -> None:
    ids = write(session, "acme", 10)
    stored = session.get(AuditLog, ids[4])
    assert stored is not None
    tamper(database_url, f"UPDATE audit_log SET {column} = {value} WHERE id = :id", id=ids[4])
    session.expire_all()
    report = verify_chains(session, SUPER)
    broken = report.first_broken
    assert broken is not None
    assert not report.ok
    assert (broken.event_id, broken.chain_seq, broken.check) == (ids[4], 5, "hash")
    assert broken.found == stored.hash
    assert broken.expected != stored.hash
    assert report.events_checked == 4


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(session: Session, database_url: str) -> None:
    ids = write(session, "acme", 6)
    row = session.get(AuditLog, ids[2])
    assert row is not None
    original, forged = row.hash, row.model_dump() | {"actor_id": "mallory"}
    tamper(
        database_url,
        "UPDATE audit_log SET actor_id = 'mallory', hash = :hash WHERE id = :id",
        id=ids[2],
        hash=event_hash(forged),
    )
    session.expire_all()
    broken = verify_chains(session, SUPER).first_broken
    assert broken is not None
    assert (broken.event_id, broken.check, broken.expected, broken.found) == (
        ids[3],
        "prev_hash",
        event_hash(forged),
        original,
    )


def test_a_deleted_event_is_found_where_it_is_missing(session: Session, database_url: str) -> None:
    ids = write(session, "acme", 8)
    write(session, "globex", 3)
    tamper(database_url, "DELETE FROM audit_log WHERE id = :id", id=ids[3])
    report = verify_chains(session, SUPER)
    broken = report.first_broken
    assert broken is not None
    assert (broken.tenant_id, broken.event_id, broken.check, broken.expected, broken.found) == (
        "acme",
        ids[4],
        "chain_seq",
        "4",
        "5",
    )
    assert [chain.ok for chain in report.chains] == [False, True]  # the other tenant is still checked


def test_a_deleted_tail_is_found_against_the_chain_head(session: Session, database_url: str) -> None:
    ids = write(session, "acme", 5)
    last = session.get(AuditLog, ids[-1])
    assert last is not None
    last_hash = last.hash
    tamper(database_url, "DELETE FROM audit_log WHERE id = :id", id=ids[-1])
    broken = verify_chains(session, SUPER, "acme").first_broken
    assert broken is not None
    assert (broken.event_id, broken.check) == (ids[-2], "head")
    assert broken.expected == f"5:{last_hash}"


def test_reordered_events_are_found_at_the_first_moved_event(session: Session, database_url: str) -> None:
    ids = write(session, "acme", 8)
    tamper(
        database_url,
        "UPDATE audit_log SET chain_seq = -1 WHERE id = :a",
        "UPDATE audit_log SET chain_seq = 4 WHERE id = :b",
        "UPDATE audit_log SET chain_seq = 5 WHERE id = :a",
        a=ids[3],
        b=ids[4],
    )
    broken = verify_chains(session, SUPER).first_broken
    assert broken is not None
    assert (broken.event_id, broken.chain_seq, broken.check) == (ids[4], 4, "hash")
    assert chain_ids(session, "acme")[3] == ids[4]


def test_verify_stays_in_the_callers_scope(session: Session) -> None:
    write(session, "acme", 2, partner="p1")
    write(session, "initech", 2, partner="p1")
    write(session, "globex", 3, partner="p2")
    partner = Principal(sub="pa", email="", role="partner_admin", partner_id="p1")
    report = verify_chains(session, partner)
    assert sorted(chain.tenant_id for chain in report.chains) == ["acme", "initech"]
    assert report.events_checked == 4
    tenant = Principal(sub="ta", email="", role="tenant_admin", tenant_id="globex")
    assert [chain.tenant_id for chain in verify_chains(session, tenant).chains] == ["globex"]
    for outsider, tenant_id in ((partner, "globex"), (tenant, "acme"), (tenant, "no-such-tenant")):
        with pytest.raises(ForbiddenError):
            verify_chains(session, outsider, tenant_id)
    # Each verification is recorded where its caller can see it.
    actions = session.execute(
        select(col(AuditLog.tenant_id), col(AuditLog.actor_id)).where(col(AuditLog.action) == "audit.verify")
    ).all()
    assert sorted(actions) == [("globex", "ta"), ("platform", "pa")]


def test_direct_update_and_delete_are_refused(session: Session, database_url: str) -> None:
    (event_id,) = write(session, "acme", 1)
    engine = engine_for(database_url)
    refusals = ["UPDATE audit_log SET actor_id = 'x'", "DELETE FROM audit_log"]
    if engine.dialect.name == "postgresql":
        refusals.append("TRUNCATE audit_log")
    refusals.append(
        "INSERT INTO purge_checkpoint (tenant_id, seq, hash, events_purged, purged_at) "
        "VALUES ('acme', 1, 'x', 1, CURRENT_TIMESTAMP)"
    )
    for statement in refusals:
        with pytest.raises(Exception, match=r"append-only|retention purge") as caught, engine.begin() as conn:
            conn.execute(text(statement))
        assert "append-only" in str(caught.value) or "purge" in str(caught.value)
    session.expire_all()
    assert chain_ids(session, "acme") == [event_id]
    assert verify_chains(session, SUPER).ok
