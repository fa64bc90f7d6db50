"""trust: append-only audit_log (triggers), retention settings, purge checkpoints

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

UPDATE on audit_log is always refused; DELETE only inside the retention purge. On
PostgreSQL the purge transaction says so with `SET LOCAL audit.allow_purge = 'on'`, which
the trigger function reads; SQLite triggers cannot see session state, so the purge flips
the one row of `purge_guard` inside its own write transaction (SQLite serialises writers,
so no other connection ever sees it set) and clears it before committing.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') AND coalesce(current_setting('audit.allow_purge', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused outside the retention purge', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
PG_CHECKPOINT_FUNCTION = """
CREATE OR REPLACE FUNCTION purge_checkpoint_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('audit.allow_purge', true), '') = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'purge_checkpoint is written only by the retention purge: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
PG_TRIGGERS = (
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER purge_checkpoint_guard BEFORE INSERT OR UPDATE OR DELETE ON purge_checkpoint "
    "FOR EACH ROW EXECUTE FUNCTION purge_checkpoint_guard()",
)
SQLITE_PURGING = "(SELECT active FROM purge_guard WHERE id = 1) IS 1"
SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN "
    "SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    f"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log WHEN NOT {SQLITE_PURGING} BEGIN "
    "SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused outside the retention purge'); END",
    *(
        f"CREATE TRIGGER purge_checkpoint_no_{op_name.lower()} BEFORE {op_name} ON purge_checkpoint "
        f"WHEN NOT {SQLITE_PURGING} BEGIN "
        f"SELECT RAISE(ABORT, 'purge_checkpoint is written only by the retention purge: {op_name} refused'); END"
        for op_name in ("INSERT", "UPDATE", "DELETE")
    ),
)
TRIGGER_NAMES = (
    "audit_log_no_update",
    "audit_log_no_delete",
    "purge_checkpoint_no_insert",
    "purge_checkpoint_no_update",
    "purge_checkpoint_no_delete",
)


def upgrade() -> None:
    op.create_table(
        "retention_default",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "tenant_retention",
        sa.Column("tenant_id", sa.String(255), primary_key=True),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "purge_checkpoint",
        sa.Column("tenant_id", sa.String(255), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("events_purged", sa.Integer(), nullable=False),
        sa.Column("purged_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "purge_guard",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("active", sa.Integer(), nullable=False),
    )
    op.execute("INSERT INTO purge_guard (id, active) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_CHECKPOINT_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS purge_checkpoint_guard ON purge_checkpoint")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS purge_checkpoint_guard()")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
    else:
        for name in TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("purge_guard")
    op.drop_table("purge_checkpoint")
    op.drop_table("tenant_retention")
    op.drop_table("retention_default")
