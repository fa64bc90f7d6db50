"""Retention: the purge removes expired events in batches, keeps the chains verifiable and is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from audit_app.__main__ import main
from audit_app.audit.integrity import verify_chains
from audit_app.audit.retention import (
    RetentionError,
    purge_expired,
    retention_settings,
    set_default_retention,
    set_tenant_retention,
)
from audit_app.auth import ForbiddenError, Principal
from audit_app.models import AuditDailyCount, AuditLog, PurgeCheckpoint, utcnow
from tests.helpers import search_index_errors
from tests.principals import SUPER
from tests.trust.helpers import chain_ids, tamper, write

OLD = utcnow() - timedelta(days=60)


def _count(session: Session, tenant: str, action: str | None = None) -> int:
    stmt = select(func.count()).select_from(AuditLog).where(col(AuditLog.tenant_id) == tenant)
    if action:
        stmt = stmt.where(col(AuditLog.action) == action)
    return int(session.execute(stmt).scalar_one())


def test_purge_removes_expired_prefix_in_batches_and_stays_verifiable(session: Session) -> None:
    old = write(session, "acme", 7, when=OLD)
    recent = write(session, "acme", 3)
    late_old = write(session, "acme", 2, when=OLD)  # behind a recent event: kept (only a prefix goes)
    set_default_retention(session, SUPER, 30)
    report = purge_expired(session, SUPER, batch_size=3)
    (run,) = report.purged
    assert (run.tenant_id, run.events_purged, run.batches, run.through_seq) == ("acme", 7, 3, 7)
    remaining = chain_ids(session, "acme")
    assert remaining[:5] == recent + late_old
    assert not set(old) & set(remaining)
    checkpoint = session.get(PurgeCheckpoint, "acme")
    assert checkpoint is not None
    assert (checkpoint.seq, checkpoint.events_purged) == (7, 7)
    seals = [session.get(AuditLog, event_id) for event_id in run.event_ids]
    assert [(seal.action, seal.details["events_purged"]) for seal in seals if seal] == [("audit.purge", 3)] * 2 + [
        ("audit.purge", 1)
    ]
    assert seals[-1] is not None
    assert (seals[-1].details["through_seq"], seals[-1].details["through_hash"]) == (7, checkpoint.hash)
    verified = verify_chains(session, SUPER)
    assert verified.ok, verified.first_broken
    assert {chain.tenant_id: chain.first_seq for chain in verified.chains} == {"acme": 8, "platform": 1}
    # The daily counts behind /stats forget the purged events too.
    counted = session.execute(
        select(func.sum(AuditDailyCount.count)).where(col(AuditDailyCount.tenant_id) == "acme")
    ).scalar_one()
    assert counted == _count(session, "acme")
    if session.get_bind().dialect.name == "sqlite":  # and SQLite's search index (its delete trigger)
        assert search_index_errors(session) == {"stray": 0, "miscounted": 0, "unfound": 0}
    assert purge_expired(session, SUPER).events_purged == 0


def test_legal_hold_and_tenant_retention_override_the_default(session: Session) -> None:
    for tenant in ("held", "longer", "plain", "forever"):
        write(session, tenant, 4, when=OLD)
    set_default_retention(session, SUPER, 30)
    set_tenant_retention(session, SUPER, "held", legal_hold=True)
    set_tenant_retention(session, SUPER, "longer", days=90)
    set_tenant_retention(session, SUPER, "plain", days=10)
    report = purge_expired(session, SUPER)
    assert report.held == ["held"]
    assert {run.tenant_id: run.events_purged for run in report.purged} == {"forever": 4, "plain": 4}
    assert _count(session, "held") == _count(session, "longer") == 4 + 1  # + the audit.retention.update event
    set_tenant_retention(session, SUPER, "held", legal_hold=False)
    assert purge_expired(session, SUPER, tenant_id="held").events_purged == 4
    assert verify_chains(session, SUPER).ok


def test_retention_changes_are_audited_and_reserved_to_super_admins(session: Session) -> None:
    write(session, "acme", 1, partner="p1")
    set_default_retention(session, SUPER, 400)
    set_tenant_retention(session, SUPER, "acme", days=30, legal_hold=True)
    changes = session.execute(
        select(col(AuditLog.tenant_id), col(AuditLog.details)).where(col(AuditLog.action) == "audit.retention.update")
    ).all()
    assert [(tenant, details["setting"], details["after"]) for tenant, details in changes] == [
        ("platform", "default", {"days": 400}),
        ("acme", "tenant", {"days": 30, "legal_hold": True}),
    ]
    partner = Principal(sub="pa", email="", role="partner_admin", partner_id="p1", scopes=frozenset({"audit:read"}))
    with pytest.raises(ForbiddenError):
        set_tenant_retention(session, partner, "acme", legal_hold=False)
    with pytest.raises(ForbiddenError):
        purge_expired(session, partner)
    with pytest.raises(RetentionError):
        set_default_retention(session, SUPER, 0)
    seen = retention_settings(session, partner)
    assert seen.default_days == 400
    assert [(p.tenant_id, p.effective_days, p.legal_hold) for p in seen.tenants] == [("acme", 30, True)]


def test_cli_verify_purge_and_retention(
    session: Session, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write(session, "acme", 3, when=OLD)
    write(session, "acme", 1)
    assert main(["retention", "--default", "30"]) == 0
    assert main(["retention", "--tenant", "acme", "--days", "20", "--legal-hold", "off"]) == 0
    assert "acme: 20 days" in capsys.readouterr().out
    assert main(["purge"]) == 0
    assert "acme: purged 3 events older than 20 days" in capsys.readouterr().out
    assert main(["verify", "--tenant", "acme"]) == 0
    assert "OK: every chain is intact." in capsys.readouterr().out
    session.expire_all()
    purger = session.execute(select(col(AuditLog.actor_id)).where(col(AuditLog.action) == "audit.purge")).scalar_one()
    assert purger.startswith("cli:")
    assert main(["retention", "--default", "0"]) == 2


def test_a_checkpoint_moved_outside_the_purge_is_found(session: Session, database_url: str) -> None:
    write(session, "acme", 10, when=OLD)
    recent = write(session, "acme", 3)
    write(session, "globex", 4, when=OLD)
    set_default_retention(session, SUPER, 30)
    purge_expired(session, SUPER)
    assert verify_chains(session, SUPER).ok
    sealed = session.get(PurgeCheckpoint, "acme")
    assert sealed is not None
    sealed_at = f"{sealed.seq}:{sealed.hash}"
    # An attacker deletes the oldest remaining event and moves the checkpoint past it, so the links still hold.
    victim = session.get(AuditLog, recent[0])
    assert victim is not None
    forged = (victim.chain_seq, victim.hash)
    tamper(
        database_url,
        "DELETE FROM audit_log WHERE id = :id",
        "UPDATE purge_checkpoint SET seq = :seq, hash = :hash WHERE tenant_id = 'acme'",
        id=recent[0],
        seq=forged[0],
        hash=forged[1],
    )
    broken = verify_chains(session, SUPER, "acme").first_broken
    assert broken is not None
    assert (broken.check, broken.expected, broken.found) == ("checkpoint", sealed_at, f"{forged[0]}:{forged[1]}")
    # A checkpoint no purge ever sealed is found too.
    first = chain_ids(session, "initech") or write(session, "initech", 2)
    head = session.get(AuditLog, first[0])
    assert head is not None
    head_hash = head.hash
    tamper(
        database_url,
        "DELETE FROM audit_log WHERE id = :id",
        "INSERT INTO purge_checkpoint (tenant_id, seq, hash, events_purged, purged_at) "
        "VALUES ('initech', 1, :hash, 1, CURRENT_TIMESTAMP)",
        id=first[0],
        hash=head_hash,
    )
    broken = verify_chains(session, SUPER, "initech").first_broken
    assert broken is not None
    assert (broken.check, broken.event_id, broken.found) == ("checkpoint", None, f"1:{head_hash}")
