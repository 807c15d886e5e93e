"""Dossiers kept in the register's database (``[storage] dossiers = "database"``)

A fleet of processes on several machines reaches one database, not one disk: each file of
a dossier can be a row of ``dossier_files`` instead of a file under the dossiers folder.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dossier_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("written_at", sa.DateTime(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("reference", "path"),
    )
    op.create_index(op.f("ix_dossier_files_reference"), "dossier_files", ["reference"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dossier_files_reference"), table_name="dossier_files")
    op.drop_table("dossier_files")
