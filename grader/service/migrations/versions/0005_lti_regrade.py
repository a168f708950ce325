"""A regraded LTI submission sends its new score: each link remembers which grade (its finish time) it considered.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lti_submissions") as batch:
        batch.add_column(sa.Column("considered_finish", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lti_submissions") as batch:
        batch.drop_column("considered_finish")
