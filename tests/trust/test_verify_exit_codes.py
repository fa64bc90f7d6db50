"""`python -m audit_app verify` reports its result even when its access record cannot be written.

Exit codes: 0 intact, 1 broken, 2 could not run, 3 intact but not recorded. The record fails
for real: the PostgreSQL database is switched to `default_transaction_read_only`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session

from audit_app.__main__ import VERIFY_BROKEN, VERIFY_NOT_RECORDED, VERIFY_NOT_RUN, VERIFY_OK, main
from audit_app.db import get_engine
from audit_app.settings import get_settings
from tests.helpers import PG_ADMIN_URL
from tests.trust.helpers import tamper, write


@contextmanager
def read_only_database(database_url: str) -> Iterator[None]:
    """The test database refuses writes from new connections, until the block ends."""
    name = make_url(database_url).database
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:  # another database: it can reset this one
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    get_engine().dispose()
    try:
        yield
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        get_engine().dispose()


def test_an_intact_chain_exits_0(session: Session, capsys: pytest.CaptureFixture[str]) -> None:
    write(session, "acme", 3)
    assert main(["verify"]) == VERIFY_OK
    assert "OK: every chain is intact." in capsys.readouterr().out


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_verification_that_cannot_be_recorded_still_reports_and_exits_3(
    session: Session, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write(session, "acme", 3)
    with read_only_database(database_url):
        assert main(["verify"]) == VERIFY_NOT_RECORDED
    out, err = capsys.readouterr()
    assert "Checked 3 events in 1 tenant chains." in out
    assert "OK: every chain is intact." in out
    assert "audit.verify access record could not be written" in err
    assert "read-only transaction" in err


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_broken_chain_exits_1_even_when_not_recorded(
    session: Session, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = write(session, "acme", 3)
    tamper(database_url, "UPDATE audit_log SET action = 'user.logout' WHERE id = :id", id=ids[1])
    with read_only_database(database_url):
        assert main(["verify"]) == VERIFY_BROKEN
    out, err = capsys.readouterr()
    assert "BROKEN: tenant 'acme'" in out
    assert "could not be written" in err


def test_an_unreachable_database_exits_2(
    settings: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUDIT_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    get_settings.cache_clear()
    assert main(["verify"]) == VERIFY_NOT_RUN
    assert "Cannot reach the database" in capsys.readouterr().err
