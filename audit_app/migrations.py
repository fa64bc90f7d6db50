"""Applying the Alembic migrations from code (CLI, `make run`, tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


SEARCH_TABLE = "audit_log_search"
"""SQLite's FTS5 table for `q` (migration 0010); it and its shadow tables are not models."""
EXPRESSION_INDEXES = frozenset({"ix_audit_log_actor_email_lower", "ix_audit_log_search", "ix_audit_log_inet"})
"""Indexes on expressions (migration 0010), which the models cannot declare portably."""


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate's filter: leave out the FTS5 search tables and the expression indexes."""
    if not reflected or compare_to is not None:
        return True
    if type_ == "table":
        return not (name or "").startswith(SEARCH_TABLE)
    return not (type_ == "index" and name in EXPRESSION_INDEXES)


def alembic_config(url: str) -> Config:
    """An Alembic config for the project's migrations, aimed at `url`."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` down to `revision`."""
    command.downgrade(alembic_config(url), revision)
