"""A first contact says how it reached the organisation: its mode

A complaint forwarded by a member of staff, or a letter she passes on, opens a first
contact for its author: the register's «mode de réclamation initiale» then says
«transmis par … le …» instead of the mailbox's own mode; and when the bot opened it, its
date being the author's (a forward of a message weeks old is not abandoned at once).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(200), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("opened_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("opened_at")
        batch_op.drop_column("mode")
