"""users.language: the language (zh-CN or en) a user's notifications are written in.

Revision ID: a7c3e9d2f4b1
Revises: af970f0b18b2
Create Date: 2026-11-27 14:10:00
"""

from alembic import op

revision = "a7c3e9d2f4b1"
down_revision = "af970f0b18b2"
branch_labels = None
depends_on = None


def upgrade():
    # One ADD COLUMN with its default and check on both backends (SQLite takes a column CHECK without a batch
    # rebuild of users, which every other table references); every existing account reads Chinese.
    op.execute(
        "ALTER TABLE users ADD COLUMN language VARCHAR(8) DEFAULT 'zh-CN' NOT NULL "
        "CONSTRAINT ck_users_language CHECK (language IN ('zh-CN', 'en'))"
    )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE users DROP COLUMN language")
    else:
        # SQLite drops no column that a CHECK names: rebuild the table without it.
        with op.batch_alter_table("users") as batch:
            batch.drop_constraint(op.f("ck_users_language"), type_="check")
            batch.drop_column("language")
