"""Download tokens are single-use: the `jti` of each is spent, in the database, on first use."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from audit_app.models import SpentDownloadToken


def spend_download_token(session: Session, jti: str, expires_at: datetime, now: datetime) -> bool:
    """Mark `jti` spent; False when it already was. Forgets tokens that expired before `now`.

    In the database, not in a worker's memory, so a token spent through one API worker is
    refused by every other. The caller commits.
    """
    session.execute(delete(SpentDownloadToken).where(col(SpentDownloadToken.expires_at) < now))
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(SpentDownloadToken).values(jti=jti, expires_at=expires_at).on_conflict_do_nothing()
    return session.execute(stmt.returning(col(SpentDownloadToken.jti))).scalar() is not None
