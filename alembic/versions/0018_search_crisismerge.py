"""search: SQLite's free-text table merges its segments a little at a time, never all at once in one batch

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02

FTS5 merges a level's segments in two ways: a little after each write once `automerge` of them
exist (16 since migration 0015), and all at once, inside the write that brings a level to
`crisismerge` segments (default 16). With both at 16 the incremental merge never got its chance:
each sixteenth batch merged the sixteen newest segments in its own transaction, and each 256th
merged a level of about 256,000 events' terms, which held that batch (and every writer waiting
behind it) for about 3.3 s (2 Dec: 1,000-event batches into an FTS5 trigram table, batch 228 of
267). With `crisismerge` 64 the same merges run incrementally, spread over the following
batches: the same total time (19.4 s against 19.2 s for the 267 batches), the slowest batch
156 ms instead of 3,281 ms, searches as fast (the levels stay below 16 segments while the
incremental merge keeps up; 64 is only the bound if it ever falls behind). PostgreSQL: nothing
changes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _crisismerge(segments: int) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"INSERT INTO audit_log_search(audit_log_search, rank) VALUES ('crisismerge', {segments})")  # noqa: S608 (an int)


def upgrade() -> None:
    _crisismerge(64)


def downgrade() -> None:
    _crisismerge(16)
