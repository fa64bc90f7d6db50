"""Retention: how long events are kept (platform default, per tenant, legal hold) and the purge.

The purge deletes each tenant's expired events from the start of its chain, in small
batches (one short transaction each), and records the last purged link as the tenant's
checkpoint, so the remaining chain still verifies from there. Only the purge may delete
audit rows: the append-only triggers let a DELETE through only inside its transactions.
An event's age counts from the earlier of its `timestamp` and its `ingested_at`, and only
a prefix of the chain is ever removed: an event stays while any event before it stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from audit_app.audit.chain import SEAL_HASH, SEAL_SEQ
from audit_app.audit.daily import recount_daily_counts
from audit_app.audit.ingest import record_access
from audit_app.audit.scope import Scope
from audit_app.auth import Principal
from audit_app.models import (
    AuditLog,
    ChainHead,
    PurgeCheckpoint,
    PurgeGuard,
    RetentionDefault,
    Tenant,
    TenantRetention,
    utcnow,
)
from audit_app.progress import Progress, no_progress

PURGE_BATCH = 1000
PURGING = "purging tenants"  # what purge_expired reports to its progress callback
MAX_RETENTION_DAYS = 36_500
PURGER = Principal(sub="retention-purge", email="", role="super_admin")


class RetentionError(ValueError):
    """A retention setting that cannot be applied (HTTP 422)."""


class UnregisteredTenantError(RetentionError):
    """A tenant's retention named a tenant that is not registered (HTTP 422 on the path's tenant_id)."""


@dataclass(frozen=True)
class TenantPolicy:
    """What applies to one tenant: its own days (None = the default), the effective days, legal hold."""

    tenant_id: str
    days: int | None
    effective_days: int | None
    legal_hold: bool


@dataclass(frozen=True)
class RetentionSettings:
    """The platform default and the policy of each tenant the caller may see."""

    default_days: int | None
    tenants: list[TenantPolicy]


@dataclass
class TenantPurge:
    """What the purge removed from one tenant's chain."""

    tenant_id: str
    retention_days: int
    cutoff: datetime
    events_purged: int = 0
    batches: int = 0
    through_seq: int = 0
    through_hash: str = ""
    oldest: datetime | None = None
    newest: datetime | None = None
    event_ids: list[str] = field(default_factory=list)  # one audit.purge event per batch


@dataclass
class PurgeReport:
    """The outcome of one purge run."""

    purged: list[TenantPurge] = field(default_factory=list)
    held: list[str] = field(default_factory=list)

    @property
    def events_purged(self) -> int:
        """Events removed in total."""
        return sum(tenant.events_purged for tenant in self.purged)


def _check_days(days: int | None) -> None:
    if days is not None and not 1 <= days <= MAX_RETENTION_DAYS:
        raise RetentionError(f"Retention must be between 1 and {MAX_RETENTION_DAYS} days, or none (keep forever).")


def default_days(session: Session) -> int | None:
    """The platform-wide retention in days (None keeps events forever)."""
    row = session.get(RetentionDefault, 1)
    return row.days if row else None


def tenant_policy(session: Session, tenant_id: str, default: int | None = None) -> TenantPolicy:
    """The retention that applies to `tenant_id`."""
    own = session.get(TenantRetention, tenant_id)
    days = own.days if own else None
    fallback = default if default is not None else default_days(session)
    return TenantPolicy(tenant_id, days, days if days is not None else fallback, bool(own and own.legal_hold))


def retention_settings(session: Session, principal: Principal) -> RetentionSettings:
    """The default and the policies of the tenants `principal` may see."""
    default = default_days(session)
    tenant_ids = Scope.of(principal).tenant_ids(session)
    return RetentionSettings(default, [tenant_policy(session, tenant_id, default) for tenant_id in tenant_ids])


def _require_super_admin(principal: Principal) -> None:
    Scope.of(principal).require_everything("Only a super admin may change retention or legal hold.")


def set_default_retention(session: Session, principal: Principal, days: int | None) -> RetentionSettings:
    """Set the platform default (super admin only); audited as `audit.retention.update`. Commits."""
    _require_super_admin(principal)
    _check_days(days)
    before = default_days(session)
    row = session.get(RetentionDefault, 1) or RetentionDefault(id=1)
    row.days, row.updated_at, row.updated_by = days, utcnow(), principal.sub
    session.add(row)
    session.commit()
    record_access(
        session,
        principal,
        "audit.retention.update",
        details={"setting": "default", "before": {"days": before}, "after": {"days": days}},
    )
    return retention_settings(session, principal)


UNSET: Any = object()


def set_tenant_retention(
    session: Session,
    principal: Principal,
    tenant_id: str,
    *,
    days: int | None = UNSET,
    legal_hold: bool | None = None,
) -> TenantPolicy:
    """Set a tenant's own retention (None = the default) and/or legal hold (super admin only).

    Audited as `audit.retention.update` in the tenant's own chain. Commits.
    """
    _require_super_admin(principal)
    if days is not UNSET:
        _check_days(days)
    Scope.of(principal).check_named(session, tenant_id)
    if session.get(Tenant, tenant_id) is None:  # its audit event must not start a chain of no tenant
        raise UnregisteredTenantError(f"tenant {tenant_id!r} is not registered; register it first")
    before = tenant_policy(session, tenant_id)
    row = session.get(TenantRetention, tenant_id) or TenantRetention(tenant_id=tenant_id)
    if days is not UNSET:
        row.days = days
    if legal_hold is not None:
        row.legal_hold = legal_hold
    row.updated_at, row.updated_by = utcnow(), principal.sub
    session.add(row)
    session.commit()
    after = tenant_policy(session, tenant_id)
    record_access(
        session,
        principal,
        "audit.retention.update",
        tenant_id=tenant_id,
        details={
            "setting": "tenant",
            "before": {"days": before.days, "legal_hold": before.legal_hold},
            "after": {"days": after.days, "legal_hold": after.legal_hold},
        },
    )
    return after


def _begin_purge(session: Session, tenant_id: str) -> None:
    """Open a purge transaction: DELETE on audit_log is allowed until it ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL audit.allow_purge = 'on'"))
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"audit.purge:{tenant_id}"})
    else:
        # The first statement writes, so this transaction holds SQLite's write lock throughout.
        session.execute(update(PurgeGuard).where(col(PurgeGuard.id) == 1).values(active=1))


def _end_purge(session: Session) -> None:
    """Close the purge window before committing (SQLite; PostgreSQL's SET LOCAL ends with the transaction)."""
    if session.get_bind().dialect.name != "postgresql":
        session.execute(update(PurgeGuard).where(col(PurgeGuard.id) == 1).values(active=0))
    session.commit()


def _save_checkpoint(session: Session, tenant_id: str, seq: int, hash_: str, removed: int, now: datetime) -> None:
    dialect = session.get_bind().dialect.name
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(PurgeCheckpoint).values(
        tenant_id=tenant_id, seq=seq, hash=hash_, events_purged=removed, purged_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id"],
            set_={
                "seq": seq,
                "hash": hash_,
                "events_purged": PurgeCheckpoint.__table__.c.events_purged + removed,  # type: ignore[attr-defined]
                "purged_at": now,
            },
        )
    )


def _purge_batch(session: Session, principal: Principal, run: TenantPurge, batch_size: int, now: datetime) -> int:
    """Delete the next expired prefix (at most `batch_size` events) of one chain; return how many.

    The same transaction moves the checkpoint and appends an `audit.purge` event recording it
    (the seal): verification checks that the checkpoint matches the newest seal, so nobody can
    delete the start of a chain and move the checkpoint without rewriting the chain after it.
    """
    tenant_id = run.tenant_id
    try:
        _begin_purge(session, tenant_id)
        checkpoint = session.execute(
            select(col(PurgeCheckpoint.seq)).where(col(PurgeCheckpoint.tenant_id) == tenant_id)
        ).scalar()
        after = checkpoint or 0
        expired = or_(col(AuditLog.timestamp) < run.cutoff, col(AuditLog.ingested_at) < run.cutoff)
        rows = session.execute(
            select(col(AuditLog.chain_seq), col(AuditLog.hash), col(AuditLog.timestamp), expired.label("expired"))
            .where(col(AuditLog.tenant_id) == tenant_id, col(AuditLog.chain_seq) > after)
            .order_by(col(AuditLog.chain_seq))
            .limit(batch_size)
        ).all()
        prefix = []
        for row in rows:
            if not row.expired:
                break
            prefix.append(row)
        if not prefix:
            session.rollback()
            return 0
        last = prefix[-1]
        session.execute(
            delete(AuditLog).where(
                col(AuditLog.tenant_id) == tenant_id,
                col(AuditLog.chain_seq) > after,
                col(AuditLog.chain_seq) <= last.chain_seq,
            )
        )
        _save_checkpoint(session, tenant_id, last.chain_seq, last.hash, len(prefix), now)
        times = [row.timestamp for row in prefix]
        seal = record_access(
            session,
            principal,
            "audit.purge",
            tenant_id=tenant_id,
            details={
                "events_purged": len(prefix),
                "from_seq": after + 1,
                SEAL_SEQ: last.chain_seq,
                SEAL_HASH: last.hash,
                "retention_days": run.retention_days,
                "cutoff": run.cutoff.isoformat(),
                "oldest_timestamp": min(times).isoformat(),
                "newest_timestamp": max(times).isoformat(),
            },
            commit=False,
        )
        _end_purge(session)
    except BaseException:
        session.rollback()
        raise
    run.event_ids.append(seal)
    run.events_purged += len(prefix)
    run.batches += 1
    run.through_seq, run.through_hash = last.chain_seq, last.hash
    run.oldest = min([*times, *([run.oldest] if run.oldest else [])])
    run.newest = max([*times, *([run.newest] if run.newest else [])])
    return len(prefix)


def purge_expired(
    session: Session,
    principal: Principal = PURGER,
    *,
    tenant_id: str | None = None,
    now: datetime | None = None,
    batch_size: int = PURGE_BATCH,
    progress: Progress = no_progress,
) -> PurgeReport:
    """Delete every expired event (of every tenant, or of `tenant_id`) and audit what was removed.

    Tenants under legal hold, and tenants without any retention, keep everything. Each batch
    appends an `audit.purge` event to the tenant's own chain saying what it removed.
    `progress` hears of the tenants done (events purged are in the report).
    """
    _require_super_admin(principal)
    now = now or utcnow()
    default = default_days(session)
    tenants = (
        [tenant_id]
        if tenant_id is not None
        else list(session.execute(select(col(ChainHead.tenant_id)).order_by(col(ChainHead.tenant_id))).scalars())
    )
    session.rollback()
    report = PurgeReport()
    for done, tenant in enumerate(tenants):
        progress(PURGING, done, len(tenants))
        policy = tenant_policy(session, tenant, default)
        session.rollback()
        if policy.legal_hold:
            report.held.append(tenant)
            continue
        if policy.effective_days is None:
            continue
        run = TenantPurge(tenant, policy.effective_days, now - timedelta(days=policy.effective_days))
        while _purge_batch(session, principal, run, batch_size, now) == batch_size:
            pass
        if run.events_purged and run.newest:
            recount_daily_counts(session, tenant, run.newest)  # /stats must not count purged events
            session.commit()
            report.purged.append(run)
    progress(PURGING, len(tenants), len(tenants))
    return report
