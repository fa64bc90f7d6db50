"""Concurrent writers, a verifier and the purge at once: no forks, no gaps, every chain verifies."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session, col

from audit_app.audit.ingest import ingest_events
from audit_app.audit.integrity import verify_chain, verify_chains
from audit_app.audit.retention import purge_expired, set_default_retention
from audit_app.db import engine_for
from audit_app.models import AuditEventIn, AuditLog, utcnow
from audit_app.settings import Settings
from tests.principals import SUPER
from tests.trust.helpers import write

WRITERS = 6
BATCHES = 8


def _event(tenant: str, writer: int, batch: int, index: int) -> AuditEventIn:
    return AuditEventIn(
        tenant_id=tenant, actor_id=f"writer-{writer}", action="user.update", details={"b": batch, "i": index}
    )


def _run_all(workers: list[Callable[[], None]]) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_concurrent_ingest_verify_and_purge(settings: Settings, session: Session) -> None:
    engine = engine_for(settings.database_url)
    write(session, "shared", 30, when=utcnow() - timedelta(days=90))
    set_default_retention(session, SUPER, 30)
    done = threading.Event()

    def writer(number: int) -> Callable[[], None]:
        def work() -> None:
            for batch in range(BATCHES):
                events = [_event("shared", number, batch, i) for i in range(3)]
                events += [_event(f"own-{number}", number, batch, i) for i in range(2)]
                if batch % 2:
                    events.append(_event(f"own-{(number + 1) % WRITERS}", number, batch, 9))
                with Session(engine) as own:
                    ingest_events(own, events)
                    own.commit()

        return work

    def verifier() -> None:
        with Session(engine) as own:
            while not done.is_set():
                report = verify_chain(own, "shared")
                assert report.ok, report.broken
                own.rollback()

    def purger() -> None:
        with Session(engine) as own:
            purge_expired(own, SUPER, tenant_id="shared", batch_size=4)

    verify_errors: list[BaseException] = []
    background = threading.Thread(target=lambda: verify_errors.extend(_run_all([verifier])))
    background.start()
    errors = _run_all([*(writer(n) for n in range(WRITERS)), purger])
    done.set()
    background.join(timeout=60)
    assert errors == []
    assert verify_errors == []

    per_batch_own = 2 * BATCHES + BATCHES // 2
    rows = session.execute(select(col(AuditLog.tenant_id), col(AuditLog.chain_seq))).all()
    chains: dict[str, list[int]] = {}
    for tenant, seq in rows:
        chains.setdefault(tenant, []).append(seq)
    shared = sorted(chains["shared"])
    seals = session.execute(
        select(col(AuditLog.id)).where(col(AuditLog.tenant_id) == "shared", col(AuditLog.action) == "audit.purge")
    ).all()
    assert len(seals) == 8  # 30 old events in batches of 4, one audit.purge event each
    assert len(shared) == WRITERS * BATCHES * 3 + len(seals)  # the old 30 are gone
    assert shared == list(range(31, 31 + len(shared)))  # contiguous after the checkpoint: no gaps, no forks
    for number in range(WRITERS):
        assert sorted(chains[f"own-{number}"]) == list(range(1, per_batch_own + 1))
    report = verify_chains(session, SUPER)
    assert report.ok, report.first_broken
    assert report.tenants_checked == WRITERS + 2  # + shared, + platform (retention change)
