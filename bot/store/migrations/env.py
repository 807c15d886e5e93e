"""Alembic environment: migrations run on the connection ``bot.store.schema`` hands over.

``bot.store.schema`` opens the transaction and takes the migration lock before calling Alembic,
so two processes starting at once upgrade the register once, and a failed step leaves it
as it was (both SQLite and PostgreSQL have transactional DDL).
"""

from __future__ import annotations

from alembic import context

from bot.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
