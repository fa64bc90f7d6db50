"""OCSF output: every action of the demo data maps through the catalog to a valid OCSF 1.5.0 event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from ocsf_emitter import models, validate
from sqlalchemy import select
from sqlmodel import Session

from audit_app.audit.catalog import CATALOG, catalog_entry
from audit_app.audit.ingest import ingest_events
from audit_app.audit.ocsf import MODELS, OCSF_VERSION, to_ocsf
from audit_app.models import RESULTS, AuditEventIn, AuditLog
from audit_app.seed import ACTIONS, generate_events

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
EXPECTED_CLASS = {
    "user.login": (3002, 1),
    "user.logout": (3002, 2),
    "user.create": (3001, 1),
    "user.password_reset": (3001, 4),
    "user.mfa_enroll": (3001, 10),
    "api_key.create": (3001, 1),
    "api_key.revoke": (3001, 6),
    "role.assign": (3005, 1),
    "role.revoke": (3005, 2),
    "group.member_add": (3006, 3),
    "group.member_remove": (3006, 4),
    "tenant.settings_change": (6003, 3),
    "audit.view": (6003, 2),
}


def _validated(event: dict[str, Any]) -> None:
    """Raise unless `event` is a valid OCSF event of its class (schema and invariants)."""
    validate(MODELS.get(event["class_uid"], models.ApiActivity).model_validate(event))


def test_every_demo_action_is_catalogued() -> None:
    assert set(ACTIONS) <= set(CATALOG)
    assert all(entry.description and entry.catalogued for entry in CATALOG.values())


def test_every_demo_action_and_result_is_a_valid_ocsf_event(session: Session) -> None:
    made = [
        AuditEventIn(
            tenant_id="acme",
            actor_id="u-1",
            actor_email="u1@acme.example",
            action=action,
            resource_type=resource_type,
            resource_id="r-1",
            result=result,
            ip_address="203.0.113.9",
            user_agent="curl/8.0",
            session_id="s-1",
            request_id="req-1",
            timestamp=AS_OF,
        )
        for action, (resource_type, _weight, _failures) in ACTIONS.items()
        for result in RESULTS
    ]
    ingest_events(session, [*made, *generate_events(1500, seed=3, now=AS_OF)])
    session.commit()
    rows = session.execute(select(AuditLog)).scalars().all()
    assert {row.action for row in rows} >= set(ACTIONS)
    for row in rows:
        event = to_ocsf(row)
        _validated(event)
        entry = catalog_entry(row.action)
        assert entry.catalogued
        assert (event["class_uid"], event["activity_id"]) == (entry.ocsf_class.uid, int(entry.activity))
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
        assert event["time"] == int(row.timestamp.timestamp() * 1000)
        assert event["status_id"] == (1 if row.result == "success" else 2)
        assert event["metadata"]["uid"] == row.id
        assert event["metadata"]["tenant_uid"] == row.tenant_id
        assert event["metadata"]["version"] == OCSF_VERSION
        assert event["actor"]["user"]["uid"] == row.actor_id
        assert event["unmapped"]["id"] == row.id
        if row.ip_address:
            assert event["src_endpoint"]["ip"] == row.ip_address
        if row.user_agent:
            assert event["http_request"]["user_agent"] == row.user_agent
        if row.session_id:
            assert event["actor"]["session"]["uid"] == row.session_id
    by_action = {row.action: to_ocsf(row) for row in rows if row.session_id == "s-1"}
    for action, expected in EXPECTED_CLASS.items():
        if action in by_action:
            assert (by_action[action]["class_uid"], by_action[action]["activity_id"]) == expected, action


@pytest.mark.parametrize("action", ["billing.invoice_paid", "x"])
def test_an_unknown_action_is_api_activity_other_and_uncatalogued(session: Session, action: str) -> None:
    (event_id,) = ingest_events(session, [AuditEventIn(tenant_id="acme", actor_id="u", action=action)])
    session.commit()
    row = session.get(AuditLog, event_id)
    assert row is not None
    event = to_ocsf(row)
    _validated(event)
    assert (event["class_uid"], event["activity_id"], event["type_uid"]) == (6003, 99, 600399)
    assert not catalog_entry(action).catalogued
