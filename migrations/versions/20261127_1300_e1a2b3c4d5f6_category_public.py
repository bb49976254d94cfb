"""categories.public: an admin's mark that a category's cases show their description, exact point and
after photos to everyone (the public view).

Revision ID: e1a2b3c4d5f6
Revises: 14e14457806c
Create Date: 2026-11-27 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "e1a2b3c4d5f6"
down_revision = "14e14457806c"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("categories", sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table("categories") as batch:
        batch.drop_column("public")
