"""Tamper evidence: verification of the per-tenant hash chains (their links, heads and purge checkpoints)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from audit_app.audit.chain import GENESIS_HASH, HASHED_FIELDS, PURGE_ACTION, SEAL_HASH, SEAL_SEQ, event_hash
from audit_app.audit.ingest import record_access
from audit_app.audit.scope import Scope
from audit_app.audit.verify_lock import chains_locked
from audit_app.auth import Principal
from audit_app.models import AuditLog, ChainHead, PurgeCheckpoint, VerifiedLink, utcnow
from audit_app.progress import Progress, no_progress

VERIFY_BATCH = 5000
VERIFYING = "verifying chains"  # what verify_chains reports to its progress callback


@dataclass(frozen=True)
class BrokenLink:
    """Where a chain stops proving itself: the event (None past the tail), what was expected, what was found."""

    tenant_id: str
    event_id: str | None
    chain_seq: int
    check: str  # "hash", "prev_hash", "chain_seq", "head" or "checkpoint"
    expected: str
    found: str
    message: str


@dataclass(frozen=True)
class ChainReport:
    """One tenant's chain: events checked, where it starts (after a purge) and ends, and its first break."""

    tenant_id: str
    events_checked: int
    first_seq: int
    head_seq: int
    head_hash: str
    broken: BrokenLink | None = None
    resumed_after: int | None = None  # the remembered link this walk started after; None = from the start
    checkpoint: tuple[int, str] = (0, GENESIS_HASH)  # the purge checkpoint the chain starts after

    @property
    def ok(self) -> bool:
        """True when every link of this chain holds."""
        return self.broken is None


@dataclass(frozen=True)
class VerifyReport:
    """The result of walking every chain in the caller's scope (or one tenant's)."""

    events_checked: int
    tenants_checked: int
    chains: list[ChainReport] = field(default_factory=list)
    first_broken: BrokenLink | None = None
    event_id: str | None = None  # the audit.verify event that records this check

    @property
    def ok(self) -> bool:
        """True when every chain checked is intact."""
        return self.first_broken is None

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (for the audit.verify event, the CLI and the API)."""
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "tenants_checked": self.tenants_checked,
            "broken_tenants": sum(1 for chain in self.chains if not chain.ok),
            "first_broken": asdict(self.first_broken) if self.first_broken else None,
        }


class AccessNotRecordedError(RuntimeError):
    """The chains were verified, but the `audit.verify` record could not be written; `report` holds the result."""

    def __init__(self, report: VerifyReport, cause: Exception) -> None:
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        super().__init__(f"The audit.verify access record could not be written: {reason}")
        self.report = report


def _row_event(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in (*HASHED_FIELDS, "hash")}


def _checkpoint(session: Session, tenant_id: str) -> tuple[int, str]:
    """The tenant's last purged link (seq, hash), read afresh, or the genesis."""
    stmt = select(col(PurgeCheckpoint.seq), col(PurgeCheckpoint.hash)).where(
        col(PurgeCheckpoint.tenant_id) == tenant_id
    )
    row = session.execute(stmt).first()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def _head(session: Session, tenant_id: str) -> tuple[int, str] | None:
    stmt = select(col(ChainHead.seq), col(ChainHead.hash)).where(col(ChainHead.tenant_id) == tenant_id)
    row = session.execute(stmt).first()
    return (row[0], row[1]) if row else None


def _links_to_verify(session: Session, tenants: list[str]) -> int:
    """How many links the chains of `tenants` hold between their purge checkpoints and heads."""
    heads = select(func.coalesce(func.sum(ChainHead.seq), 0)).where(col(ChainHead.tenant_id).in_(tenants))
    purged = select(func.coalesce(func.sum(PurgeCheckpoint.seq), 0)).where(col(PurgeCheckpoint.tenant_id).in_(tenants))
    return int(session.execute(heads).scalar_one()) - int(session.execute(purged).scalar_one())


def resume_point(session: Session, tenant_id: str, checkpoint: tuple[int, str]) -> tuple[int, str] | None:
    """The remembered verified link (seq, hash) a walk may start after, or None to walk from the checkpoint.

    It counts only while the chain before it is as it was: the purge checkpoint is the one it
    was verified from (a purge re-anchors the chain and discards it), and the event at that
    link is still there with the remembered hash, its content matching it. Links before it
    are not re-read: `full=true` does that.
    """
    remembered = session.get(VerifiedLink, tenant_id)
    if remembered is None or (remembered.checkpoint_seq, remembered.checkpoint_hash) != checkpoint:
        return None
    columns = [getattr(AuditLog, name) for name in (*HASHED_FIELDS, "hash")]
    row = session.execute(
        select(*columns).where(col(AuditLog.tenant_id) == tenant_id, col(AuditLog.chain_seq) == remembered.seq)
    ).first()
    if row is None or row.hash != remembered.hash or event_hash(_row_event(row)) != remembered.hash:
        return None
    return remembered.seq, remembered.hash


def verify_chain(
    session: Session,
    tenant_id: str,
    *,
    full: bool = True,
    attempts: int = 3,
    progress: Callable[[int], None] = lambda _checked: None,
) -> ChainReport:
    """Walk one tenant's chain to its head: from its purge checkpoint (or the start), or with
    `full=False` from its remembered verified link (see `resume_point`) when it still holds.

    The head is read first and only links up to it are checked, so events appended while
    verifying are left for the next run; a purge that moves the checkpoint meanwhile makes
    the walk start again from the new checkpoint.
    """
    for attempt in range(attempts):
        checkpoint = _checkpoint(session, tenant_id)  # before the head: a purge in between is then seen
        head = _head(session, tenant_id)
        start = None if full else resume_point(session, tenant_id, checkpoint)
        report = _walk(session, tenant_id, checkpoint, head, progress, start)
        broken = report.broken
        moved = broken is not None and broken.check in ("chain_seq", "checkpoint")
        if attempt == attempts - 1 or not moved or _checkpoint(session, tenant_id) == checkpoint:
            break
    return report


def _walk(
    session: Session,
    tenant_id: str,
    checkpoint: tuple[int, str],
    head: tuple[int, str] | None,
    progress: Callable[[int], None],
    start: tuple[int, str] | None = None,
) -> ChainReport:
    first_seq = checkpoint[0] + 1
    seq, prev = start or checkpoint
    checked = 0
    last_id: str | None = None
    columns = [getattr(AuditLog, name) for name in (*HASHED_FIELDS, "hash")]

    def broken(event_id: str | None, at: int, check: str, expected: str, found: str, message: str) -> ChainReport:
        link = BrokenLink(tenant_id, event_id, at, check, expected, found, message)
        return ChainReport(tenant_id, checked, first_seq, seq, prev, link, resumed_after, checkpoint)

    resumed_after = start[0] if start else None
    seal: tuple[str, Any, Any] | None = None  # the newest audit.purge event: (id, through_seq, through_hash)
    cursor = seq if start else -1
    while True:
        stmt = (
            select(*columns)
            .where(col(AuditLog.tenant_id) == tenant_id, col(AuditLog.chain_seq) > cursor)
            .order_by(col(AuditLog.chain_seq))
            .limit(VERIFY_BATCH)
        )
        if head is not None:
            stmt = stmt.where(col(AuditLog.chain_seq) <= head[0])
        rows = session.execute(stmt).all()
        if not rows:
            break
        for row in rows:
            event = _row_event(row)
            if event["chain_seq"] != seq + 1:
                return broken(
                    event["id"],
                    event["chain_seq"],
                    "chain_seq",
                    str(seq + 1),
                    str(event["chain_seq"]),
                    f"expected link {seq + 1} of the chain, found {event['chain_seq']}: events are missing or moved",
                )
            computed = event_hash(event)
            if computed != event["hash"]:
                return broken(
                    event["id"],
                    event["chain_seq"],
                    "hash",
                    computed,
                    event["hash"],
                    "the event's content does not match its hash: it was altered",
                )
            if event["prev_hash"] != prev:
                return broken(
                    event["id"],
                    event["chain_seq"],
                    "prev_hash",
                    prev,
                    event["prev_hash"],
                    "the event does not link to the event before it",
                )
            if event["action"] == PURGE_ACTION and isinstance(event["details"], dict):
                seal = (event["id"], event["details"].get(SEAL_SEQ), event["details"].get(SEAL_HASH))
            seq, prev, last_id = event["chain_seq"], event["hash"], event["id"]
            checked += 1
        cursor = seq
        progress(checked)
    head_seq, head_hash = head or (0, GENESIS_HASH)
    if (head_seq, head_hash) != (seq, prev):
        return broken(
            last_id,
            seq,
            "head",
            f"{head_seq}:{head_hash}",
            f"{seq}:{prev}",
            "the chain does not end at its recorded head: events at the end are missing or unrecorded",
        )
    # Resumed without a newer audit.purge event: the remembered walk found the checkpoint sealed.
    sealed = (seal[1], seal[2]) == checkpoint if seal else start is not None
    if checkpoint != (0, GENESIS_HASH) and not sealed:
        return broken(
            seal[0] if seal else None,
            checkpoint[0],
            "checkpoint",
            f"{seal[1]}:{seal[2]}" if seal else "an audit.purge event sealing the checkpoint",
            f"{checkpoint[0]}:{checkpoint[1]}",
            "the purge checkpoint does not match the newest audit.purge event: events were removed outside the purge",
        )
    return ChainReport(tenant_id, checked, first_seq, seq, prev, None, resumed_after, checkpoint)


def remember_verified(session: Session, chains: list[ChainReport]) -> None:
    """Remember the head of each intact chain (and its checkpoint) as where the next walk resumes."""
    for chain in chains:
        if not chain.ok or chain.head_seq <= chain.checkpoint[0]:
            continue
        session.merge(
            VerifiedLink(
                tenant_id=chain.tenant_id,
                seq=chain.head_seq,
                hash=chain.head_hash,
                checkpoint_seq=chain.checkpoint[0],
                checkpoint_hash=chain.checkpoint[1],
                verified_at=utcnow(),
            )
        )


def tenants_to_verify(session: Session, principal: Principal, tenant_id: str | None = None) -> list[str]:
    """The tenants whose chains `principal` may verify: one, when named (403 outside the scope), or all visible."""
    scope = Scope.of(principal)
    if tenant_id is not None:
        scope.check_named(session, tenant_id)
        return [tenant_id]
    return scope.tenant_ids(session)


def verify_chains(
    session: Session,
    principal: Principal,
    tenant_id: str | None = None,
    *,
    full: bool = False,
    ip_address: str | None = None,
    user_agent: str | None = None,
    progress: Progress = no_progress,
) -> VerifyReport:
    """Verify every chain `principal` may see (or `tenant_id`'s) and record an `audit.verify` event.

    Each chain is walked from its remembered verified link (only what was appended since), or
    from its start with `full=True`, which only a super admin may ask for. One verification
    per chain runs at a time (`verify_lock`); the heads of intact chains are remembered.
    Raises ForbiddenError when `tenant_id` is outside the caller's scope or `full` is not the
    super admin's, VerificationBusyError when another verification holds one of the chains,
    and AccessNotRecordedError (holding the report) when the record cannot be written, e.g.
    while the database is read-only or full. Commits the session.
    """
    if full:
        Scope.of(principal).require_everything("Only a super admin may verify whole chains (full=true).")
    tenants = tenants_to_verify(session, principal, tenant_id)
    with chains_locked(session, tenants):
        return _verify_and_record(session, principal, tenants, tenant_id, full, ip_address, user_agent, progress)


def _verify_and_record(
    session: Session,
    principal: Principal,
    tenants: list[str],
    tenant_id: str | None,
    full: bool,
    ip_address: str | None,
    user_agent: str | None,
    progress: Progress,
) -> VerifyReport:
    """Walk the chains of `tenants` (held by the caller), remember the intact ones, record `audit.verify`."""
    total = _links_to_verify(session, tenants)
    chains: list[ChainReport] = []
    verified = 0  # links checked in the chains before this one
    for tenant in tenants:

        def walked(checked: int, before: int = verified) -> None:
            progress(VERIFYING, before + checked, total)

        chains.append(verify_chain(session, tenant, full=full, progress=walked))
        verified += chains[-1].events_checked
    session.rollback()  # end the read transaction before writing the audit event
    first_broken = next((chain.broken for chain in chains if chain.broken), None)
    report = VerifyReport(
        events_checked=sum(chain.events_checked for chain in chains),
        tenants_checked=len(chains),
        chains=chains,
        first_broken=first_broken,
    )
    # Recorded in the tenant checked when it has a chain; a name that matches nothing must not create a tenant.
    known = tenant_id is not None and _head(session, tenant_id) is not None
    details = report.summary() | {"full": full} | ({"tenant_id": tenant_id} if tenant_id is not None else {})
    try:
        remember_verified(session, chains)  # committed with the audit.verify record
        session.flush()  # a failing write is reported as itself, not as the autoflush of a later query
        event_id = record_access(
            session,
            principal,
            "audit.verify",
            tenant_id=tenant_id if known else None,
            details=details,
            ip_address=ip_address,
            user_agent=user_agent,
        )
    except (DBAPIError, psycopg.Error) as exc:
        session.rollback()
        raise AccessNotRecordedError(report, exc) from exc
    return VerifyReport(report.events_checked, report.tenants_checked, chains, first_broken, event_id)
