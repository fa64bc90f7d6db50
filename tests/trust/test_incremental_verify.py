"""Incremental verification: only links appended since the remembered one, `full=true` for super admins,
one verification per chain at a time (429), and a remembered link that never hides a changed chain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from audit_app.audit.integrity import verify_chains
from audit_app.audit.retention import purge_expired, set_default_retention
from audit_app.audit.verify_lock import VerificationBusyError, chains_locked
from audit_app.auth import ForbiddenError
from audit_app.models import VerifiedLink, VerifyLease, utcnow
from audit_app.settings import Settings
from tests.helpers import TokenFactory
from tests.principals import ACME, SUPER
from tests.trust.helpers import chain_ids, tamper, write

VERIFY = "/api/v1/admin/audit/verify"


def _checked(session: Session, tenant: str, *, full: bool = False) -> tuple[bool, int, int | None]:
    report = verify_chains(session, SUPER, tenant, full=full)
    (chain,) = report.chains
    return report.ok, chain.events_checked, chain.resumed_after


def test_a_verification_walks_only_what_was_appended_since_the_last(session: Session) -> None:
    write(session, "acme", 10)
    assert _checked(session, "acme") == (True, 10, None)  # nothing remembered: the whole chain
    # The audit.verify record went into acme's chain: the next run checks it alone, after link 10.
    assert _checked(session, "acme") == (True, 1, 10)
    write(session, "acme", 4)
    assert _checked(session, "acme") == (True, 5, 11)
    assert _checked(session, "acme", full=True) == (True, 17, None)


def test_an_old_tampered_row_is_found_by_full_only(settings: Settings, session: Session) -> None:
    ids = write(session, "acme", 6)
    assert _checked(session, "acme")[0]
    tamper(settings.database_url, "UPDATE audit_log SET actor_id = 'mallory' WHERE id = :id", id=ids[2])
    assert _checked(session, "acme")[0]  # the stated limit: links before the remembered one are not re-read
    broken = verify_chains(session, SUPER, "acme", full=True).first_broken
    assert broken is not None
    assert (broken.event_id, broken.check) == (ids[2], "hash")
    # A broken chain is not remembered further: the next incremental run still starts where it did.
    remembered = session.get(VerifiedLink, "acme")
    assert remembered is not None
    session.refresh(remembered)
    assert remembered.seq == 7  # link 7 (the first audit.verify record) was the head the last intact run saw


@pytest.mark.parametrize(
    ("statement", "broken_at"),
    [
        ("UPDATE audit_log SET actor_id = 'mallory' WHERE id = :id", (5, "hash")),  # the remembered event's content
        ("UPDATE audit_log SET hash = 'f00d' WHERE id = :id", (5, "hash")),  # its stored hash
        ("DELETE FROM audit_log WHERE id = :id", (6, "chain_seq")),  # the event gone: link 6 where 5 belongs
    ],
)
def test_a_changed_remembered_link_sends_the_walk_back_to_the_start(
    settings: Settings, session: Session, statement: str, broken_at: tuple[int, str]
) -> None:
    ids = write(session, "acme", 5)
    assert _checked(session, "acme") == (True, 5, None)
    tamper(settings.database_url, statement, id=ids[-1])
    report = verify_chains(session, SUPER, "acme")
    assert report.chains[0].resumed_after is None
    assert report.first_broken is not None
    assert (report.first_broken.chain_seq, report.first_broken.check) == broken_at


def test_a_purge_reanchors_the_chain_and_discards_the_remembered_link(settings: Settings, session: Session) -> None:
    write(session, "acme", 6, when=utcnow() - timedelta(days=60))
    assert _checked(session, "acme") == (True, 6, None)
    set_default_retention(session, SUPER, 30)
    assert purge_expired(session, SUPER, tenant_id="acme").events_purged == 6
    ok, checked, resumed = _checked(session, "acme")
    assert (ok, resumed) == (True, None)  # walked from the new checkpoint: the audit.verify and audit.purge events
    assert checked == len(chain_ids(session, "acme")) - 1  # every remaining link but this run's own record
    assert _checked(session, "acme")[2] is not None  # remembered again, after the new checkpoint
    # A purge event forged later with another seal is still found by the incremental walk.
    write(session, "acme", 1)
    tamper(
        settings.database_url,
        "UPDATE purge_checkpoint SET seq = seq + 1 WHERE tenant_id = 'acme'",
    )
    assert not verify_chains(session, SUPER, "acme").ok


def test_full_is_for_super_admins(session: Session, client: TestClient, make_token: TokenFactory) -> None:
    write(session, "acme", 3, partner="p1")
    with pytest.raises(ForbiddenError):
        verify_chains(session, ACME, "acme", full=True)
    tenant_admin = {"Authorization": f"Bearer {make_token('tenant_admin', tenant_id='acme')}"}
    refused = client.get(VERIFY, params={"full": "true"}, headers=tenant_admin)
    assert refused.status_code == 403
    assert "full=true" in refused.json()["detail"]
    assert client.get(VERIFY, headers=tenant_admin).json()["chains"][0]["resumed_after_seq"] is None
    assert client.get(VERIFY, headers=tenant_admin).json()["chains"][0]["resumed_after_seq"] == 3
    as_super = {"Authorization": f"Bearer {make_token('super_admin')}"}
    walked = client.get(VERIFY, params={"full": "true", "tenant_id": "acme"}, headers=as_super).json()
    assert (walked["ok"], walked["chains"][0]["events_checked"], walked["chains"][0]["resumed_after_seq"]) == (
        True,
        5,
        None,
    )


def test_one_verification_per_chain_at_a_time(session: Session) -> None:
    write(session, "acme", 3)
    write(session, "globex", 2)
    with Session(session.get_bind()) as other, chains_locked(other, ["acme"]):
        with pytest.raises(VerificationBusyError):
            verify_chains(session, SUPER)  # every chain, acme among them: none is walked
        with pytest.raises(VerificationBusyError):
            verify_chains(session, SUPER, "acme")
        assert verify_chains(session, SUPER, "globex").ok  # another chain is free
    assert verify_chains(session, SUPER, "acme").ok  # released on exit


def test_a_busy_chain_answers_429_with_retry_after(
    session: Session, client: TestClient, make_token: TokenFactory
) -> None:
    write(session, "acme", 2)
    as_super = {"Authorization": f"Bearer {make_token('super_admin')}"}
    with Session(session.get_bind()) as other, chains_locked(other, ["acme"]):
        busy = client.get(VERIFY, params={"tenant_id": "acme"}, headers=as_super)
        assert busy.status_code == 429
        assert 1 <= int(busy.headers["Retry-After"]) <= 5
        assert "acme" in busy.json()["detail"]
    assert client.get(VERIFY, params={"tenant_id": "acme"}, headers=as_super).status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_expired_sqlite_lease_does_not_hold_the_chain(session: Session) -> None:
    write(session, "acme", 2)
    session.add(VerifyLease(tenant_id="acme", holder="a-process-that-died", expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert verify_chains(session, SUPER, "acme").ok
    session.add(VerifyLease(tenant_id="acme", holder="a-live-process", expires_at=utcnow() + timedelta(minutes=5)))
    session.commit()
    with pytest.raises(VerificationBusyError) as busy:
        verify_chains(session, SUPER, "acme")
    assert busy.value.retry_after == 5
