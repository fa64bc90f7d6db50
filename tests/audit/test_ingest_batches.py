"""Ingestion: partners of registered tenants, batch hashes, idempotent replays (audit.ingest)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from audit_app.audit.ingest import authorize_ingest, batch_hash, ingest_batch, insert_tenants
from audit_app.auth import (
    ForbiddenError,
    Principal,
)
from audit_app.db import engine_for
from audit_app.models import AuditEventIn, AuditLog
from audit_app.settings import Settings
from tests.principals import NORTHWIND, SUPER


def test_authorize_ingest_fills_the_partner_of_registered_tenants(session: Session) -> None:
    events = [AuditEventIn(tenant_id="newco", actor_id="a", action="x")]
    with pytest.raises(ForbiddenError):
        authorize_ingest(session, NORTHWIND, events)  # not registered yet
    insert_tenants(session, {"newco": "northwind"})
    (authorized,) = authorize_ingest(session, NORTHWIND, events)
    assert authorized.partner_id == "northwind"
    assert authorize_ingest(session, SUPER, events) == events
    reader = Principal(sub="r", email="", role="super_admin", scopes=frozenset({"audit:read"}))
    with pytest.raises(ForbiddenError):
        authorize_ingest(session, reader, events)


def test_batch_hash_tells_batches_apart() -> None:
    one = [AuditEventIn(tenant_id="t", actor_id="a", action="x")]
    assert batch_hash(one) == batch_hash([AuditEventIn(tenant_id="t", actor_id="a", action="x")])
    assert batch_hash(one) != batch_hash([AuditEventIn(tenant_id="t", actor_id="a", action="y")])
    assert batch_hash(one) != batch_hash(one * 2)


def test_ingest_batch_replays_by_caller_and_key(session: Session) -> None:
    events = [AuditEventIn(tenant_id="t", actor_id="a", action="x")]
    first = ingest_batch(session, SUPER, events, idempotency_key="k")
    again = ingest_batch(session, SUPER, events, idempotency_key="k")
    assert (again.ids, again.replayed, first.replayed) == (first.ids, True, False)
    other = Principal(sub="other", email="", role="super_admin", scopes=SUPER.scopes)
    assert ingest_batch(session, other, events, idempotency_key="k").ids != first.ids


def test_concurrent_deliveries_of_one_key_write_once(settings: Settings) -> None:
    """Two deliveries racing with the same key: one writes, the other gets the same ids."""
    engine = engine_for(settings.database_url)
    events = [AuditEventIn(tenant_id="t", actor_id="a", action=f"x.{n}") for n in range(50)]
    barrier = threading.Barrier(2)

    def deliver() -> list[str]:
        with Session(engine) as own:
            barrier.wait()
            return ingest_batch(own, SUPER, events, idempotency_key="race").ids

    with ThreadPoolExecutor(2) as pool:
        first, second = (future.result() for future in [pool.submit(deliver), pool.submit(deliver)])
    assert first == second
    with Session(engine) as check:
        actions = [row[0] for row in check.execute(select(col(AuditLog.action))).all()]
        assert sorted(actions) == sorted([f"x.{n}" for n in range(50)] + ["tenant.create"])  # "t" registered once
