"""The rules that ran on a message without matching; who claimed an email being sent

The outbox has two senders once `reclambot serve` sends the acknowledgement of a web form
itself: a claim says whose it is, so that `reclambot run` starting up resets only what a
dead process left in "sending".

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rules_passed", sa.JSON(), nullable=True))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("claimed_by")
    with op.batch_alter_table("inbound", schema=None) as batch_op:
        batch_op.drop_column("rules_passed")
