"""search: SQLite's free-text table merges its segments 16 at a time instead of 4

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

FTS5 writes each batch's terms as a new segment and merges segments of one level once
`automerge` of them exist (default 4); every merge rewrites the merged entries, so the trigram
index of `q` rewrote each entry about log4(n) times and its merges were most of its cost, nearly
half of an ingested batch's instructions. With 16 each entry is rewritten about half as often:
measured with callgrind over 40 batches of 1,000 events at 100,000 indexed, the index's work per
batch fell from 411 to 235 million instructions. A search consults up to 15 segments per level
instead of 3 (a search of the trigram table took 1-6 ms instead of 0.5-3 ms at 190,000 events).
The setting is stored in the table itself. PostgreSQL: nothing changes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _automerge(segments: int) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"INSERT INTO audit_log_search(audit_log_search, rank) VALUES ('automerge', {segments})")  # noqa: S608 (an int)


def upgrade() -> None:
    _automerge(16)


def downgrade() -> None:
    _automerge(4)
