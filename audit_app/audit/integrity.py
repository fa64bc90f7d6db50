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
from audit_app.auth import Principal
from audit_app.models import AuditLog, ChainHead, PurgeCheckpoint
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


def verify_chain(
    session: Session, tenant_id: str, *, attempts: int = 3, progress: Callable[[int], None] = lambda _checked: None
) -> ChainReport:
    """Walk one tenant's chain from its purge checkpoint (or the start) to its head.

    The head is read first and only links up to it are checked, so events appended while
    verifying are left for the next run; a purge that moves the checkpoint meanwhile makes
    the walk start again from the new checkpoint.
    """
    for _ in range(attempts - 1):
        checkpoint = _checkpoint(session, tenant_id)  # before the head: a purge in between is then seen
        head = _head(session, tenant_id)
        report = _walk(session, tenant_id, checkpoint, head, progress)
        broken = report.broken
        moved = broken is not None and broken.check in ("chain_seq", "checkpoint")
        if not moved or _checkpoint(session, tenant_id) == checkpoint:
            return report
    checkpoint = _checkpoint(session, tenant_id)
    return _walk(session, tenant_id, checkpoint, _head(session, tenant_id), progress)


def _walk(
    session: Session,
    tenant_id: str,
    checkpoint: tuple[int, str],
    head: tuple[int, str] | None,
    progress: Callable[[int], None],
) -> ChainReport:
    seq, prev = checkpoint
    first_seq = seq + 1
    checked = 0
    last_id: str | None = None
    columns = [getattr(AuditLog, name) for name in (*HASHED_FIELDS, "hash")]

    def broken(event_id: str | None, at: int, check: str, expected: str, found: str, message: str) -> ChainReport:
        link = BrokenLink(tenant_id, event_id, at, check, expected, found, message)
        return ChainReport(tenant_id, checked, first_seq, seq, prev, link)

    seal: tuple[str, Any, Any] | None = None  # the newest audit.purge event: (id, through_seq, through_hash)
    cursor = -1
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
    if checkpoint != (0, GENESIS_HASH) and (seal is None or (seal[1], seal[2]) != checkpoint):
        return broken(
            seal[0] if seal else None,
            checkpoint[0],
            "checkpoint",
            f"{seal[1]}:{seal[2]}" if seal else "an audit.purge event sealing the checkpoint",
            f"{checkpoint[0]}:{checkpoint[1]}",
            "the purge checkpoint does not match the newest audit.purge event: events were removed outside the purge",
        )
    return ChainReport(tenant_id, checked, first_seq, seq, prev)


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
    ip_address: str | None = None,
    user_agent: str | None = None,
    progress: Progress = no_progress,
) -> VerifyReport:
    """Verify every chain `principal` may see (or `tenant_id`'s) and record an `audit.verify` event.

    Raises ForbiddenError when `tenant_id` is outside the caller's scope, and
    AccessNotRecordedError (holding the report) when the record cannot be written, e.g. while
    the database is read-only or full. Commits the session.
    """
    tenants = tenants_to_verify(session, principal, tenant_id)
    total = _links_to_verify(session, tenants)
    chains: list[ChainReport] = []
    verified = 0  # links checked in the chains before this one
    for tenant in tenants:

        def walked(checked: int, before: int = verified) -> None:
            progress(VERIFYING, before + checked, total)

        chains.append(verify_chain(session, tenant, progress=walked))
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
    details = report.summary() | ({"tenant_id": tenant_id} if tenant_id is not None else {})
    try:
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
