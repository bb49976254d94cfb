"""Refresh tokens: the token each one was exchanged for, so a repeat within the grace window gets the same pair.

Revision ID: e2a7c5d9f104
Revises: e1a2b3c4d5f6
Create Date: 2026-11-27 13:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "e2a7c5d9f104"
down_revision = "e1a2b3c4d5f6"
branch_labels = None
depends_on = None


def upgrade():
    # A nullable column without a default: a plain ADD COLUMN on both backends (no batch rebuild). Tokens
    # exchanged before it have none, so a repeat of them stays a replay.
    op.add_column("refresh_tokens", sa.Column("replaced_by", sa.String(36), nullable=True))


def downgrade():
    # Native DROP COLUMN on PostgreSQL and SQLite >= 3.35 (no batch rebuild).
    op.execute("ALTER TABLE refresh_tokens DROP COLUMN replaced_by")
