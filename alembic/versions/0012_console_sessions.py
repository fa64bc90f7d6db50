"""console sessions: server-side sessions of the console and the sign-ins under way

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

The browser holds only an HttpOnly cookie naming a session; who signed in, until when, and the
provider's refresh and ID tokens stay here. `console_sign_in` holds SSO authorization requests
(state, nonce, PKCE verifier), one-time hand-overs of a new session, and sign-in notices.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_session",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sub", sa.String(255), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("scopes", sa.String(2048), nullable=False),
        sa.Column("tenant_id", sa.String(255), nullable=True),
        sa.Column("partner_id", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refresh_token", sa.String(), nullable=True),
        sa.Column("id_token", sa.String(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_console_session_expires_at", "console_session", ["expires_at"])
    op.create_table(
        "console_sign_in",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_console_sign_in_expires_at", "console_sign_in", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_console_sign_in_expires_at", table_name="console_sign_in")
    op.drop_table("console_sign_in")
    op.drop_index("ix_console_session_expires_at", table_name="console_session")
    op.drop_table("console_session")
