"""An LTI user is a `sub` of one registration (issuer and client id), not of an issuer: registrations that share an
issuer (Canvas cloud) must not sign in as each other's users. An existing user takes the client id of the
platform of its first launch (else of its issuer's first registration) and keeps its student id. (SQLite rebuilds
the table: `grader.service.db.migrate` runs the migrations with its foreign keys off, and checks them after.)

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lti_users") as batch:
        batch.add_column(sa.Column("client_id", sa.String(256), nullable=True))
    op.execute(
        "UPDATE lti_users SET client_id = COALESCE("
        "(SELECT p.client_id FROM lti_launches l JOIN lti_platforms p ON p.id = l.platform_id "
        " WHERE l.user_id = lti_users.id ORDER BY l.created_at LIMIT 1), "
        "(SELECT p.client_id FROM lti_platforms p WHERE p.issuer = lti_users.issuer ORDER BY p.id LIMIT 1), '')")
    with op.batch_alter_table("lti_users") as batch:
        batch.alter_column("client_id", existing_type=sa.String(256), nullable=False)
        batch.drop_constraint("uq_lti_users", type_="unique")
        batch.create_unique_constraint("uq_lti_users_registration", ["issuer", "client_id", "sub"])


def downgrade() -> None:
    with op.batch_alter_table("lti_users") as batch:
        batch.drop_constraint("uq_lti_users_registration", type_="unique")
        batch.create_unique_constraint("uq_lti_users", ["issuer", "sub"])
        batch.drop_column("client_id")
