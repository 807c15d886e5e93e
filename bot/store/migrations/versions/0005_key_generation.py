"""A complaint's command key can be renewed: its generation

``#nouvellecle`` makes a new key for one complaint, so that a key that leaked (it travels
in every notification, and clients quote it) opens nothing any more.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_generation", sa.Integer(), nullable=False,
                                      server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_column("key_generation")
