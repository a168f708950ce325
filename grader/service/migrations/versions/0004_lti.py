"""LTI 1.3: registered platforms, the tool's keys, logins in flight, LTI users and launches, tickets, scores.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lti_platforms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("issuer", sa.String(512), nullable=False),
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("deployment_id", sa.String(256), nullable=False),
        sa.Column("auth_url", sa.Text, nullable=False),
        sa.Column("token_url", sa.Text, nullable=False),
        sa.Column("jwks_url", sa.Text, nullable=False),
        sa.Column("frame_origins", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("issuer", "client_id", "deployment_id", name="uq_lti_platforms"),
    )
    op.create_table(
        "lti_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("private_pem", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("retired_at", sa.Float, nullable=True),
    )
    op.create_table(
        "lti_logins",
        sa.Column("state_sha256", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(512), nullable=False),
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
    )
    op.create_table(
        "lti_users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("issuer", sa.String(512), nullable=False),
        sa.Column("sub", sa.String(256), nullable=False),
        sa.Column("student", sa.String(128), nullable=False, unique=True),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("token_id", sa.Integer, sa.ForeignKey("tokens.id"), nullable=False),
        sa.UniqueConstraint("issuer", "sub", name="uq_lti_users"),
    )
    op.create_table(
        "lti_launches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("platform_id", sa.Integer, sa.ForeignKey("lti_platforms.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("lti_users.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("message_type", sa.String(64), nullable=False),
        sa.Column("context_id", sa.String(256), nullable=True),
        sa.Column("context_title", sa.Text, nullable=True),
        sa.Column("exercise", sa.String(32), nullable=True),
        sa.Column("lineitem", sa.Text, nullable=True),
        sa.Column("memberships_url", sa.Text, nullable=True),
        sa.Column("deep_link", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "lti_tickets",
        sa.Column("ticket_sha256", sa.String(64), primary_key=True),
        sa.Column("launch_id", sa.String(32), sa.ForeignKey("lti_launches.id", ondelete="CASCADE"), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float, nullable=True),
    )
    op.create_table(
        "lti_submissions",
        sa.Column("submission_id", sa.String(32), sa.ForeignKey("submissions.id"), primary_key=True),
        sa.Column("launch_id", sa.String(32), sa.ForeignKey("lti_launches.id", ondelete="CASCADE"), nullable=False),
        sa.Column("considered", sa.Integer, nullable=False),
    )
    op.create_index("ix_lti_submissions_considered", "lti_submissions", ["considered"])
    op.create_table(
        "lti_scores",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("submission_id", sa.String(32), sa.ForeignKey("submissions.id"), nullable=False, unique=True),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("lineitem", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float, nullable=True),
        sa.Column("refused_status", sa.Integer, nullable=True),
        sa.Column("given_up", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_lti_scores_due", "lti_scores", ["delivered_at", "given_up", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_lti_scores_due", "lti_scores")
    op.drop_table("lti_scores")
    op.drop_index("ix_lti_submissions_considered", "lti_submissions")
    for table in ("lti_submissions", "lti_tickets", "lti_launches", "lti_users", "lti_logins", "lti_keys",
                  "lti_platforms"):
        op.drop_table(table)
