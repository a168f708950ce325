"""Sessions for the pages: the cookie holds an opaque random id, the database only its SHA-256.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "page_sessions",
        sa.Column("id_sha256", sa.String(64), primary_key=True),
        sa.Column("token_id", sa.Integer, sa.ForeignKey("tokens.id"), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_index("ix_page_sessions_token", "page_sessions", ["token_id"])


def downgrade() -> None:
    op.drop_index("ix_page_sessions_token", "page_sessions")
    op.drop_table("page_sessions")
