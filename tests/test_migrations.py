"""Migrations apply to empty SQLite and PostgreSQL databases, match the models, and go down."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from audit_app import models  # noqa: F401
from audit_app.migrations import downgrade, include_object, upgrade


def test_schema_matches_models(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, SQLModel.metadata)
    engine.dispose()
    assert diff == []


def test_down_and_up_again(database_url: str) -> None:
    downgrade(database_url, "base")
    engine = create_engine(database_url)
    assert "audit_log" not in inspect(engine).get_table_names()
    upgrade(database_url)
    assert {"audit_log", "tenant", "chain_head"} <= set(inspect(engine).get_table_names())
    engine.dispose()
