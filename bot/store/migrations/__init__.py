"""Alembic migrations of the register's schema.

Run through :mod:`bot.store.schema`, not the alembic CLI.
"""
