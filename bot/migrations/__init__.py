"""Alembic migrations of the register's schema (run through ``bot.schema``, not the alembic CLI)."""
