"""The register's schema: created on a new database, migrated with Alembic on an older one.

A new database gets the current tables in one go and is stamped with the newest
revision; a database at an older revision is migrated step by step by the scripts in
``bot/store/migrations/versions``. A register created by reclambot 0.1.0 (before migrations
existed) has the tables but no ``alembic_version``: it is at revision ``0001``.

Everything happens in one transaction under a lock (SQLite's write lock, a PostgreSQL
advisory lock), so two processes starting at once migrate once, and a failed step leaves
the register as it was. Alembic is imported only when there is something to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    inspect,
    text,
)

from bot.errors import SchemaError
from bot.store.models import Base

log = logging.getLogger(__name__)

#: The newest revision in ``bot/store/migrations/versions`` (a test keeps the two in step).
HEAD = "0006"
#: The revision of a register made by reclambot 0.1.0, which had no version table.
FIRST = "0001"
# Arbitrary but fixed: every reclambot process takes the same PostgreSQL advisory lock.
_PG_LOCK_KEY = 0x7265636C616D


@dataclass(frozen=True)
class SchemaState:
    """Where the register's schema was and is: ``before`` is None for a new database."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        """True when this call created or migrated the schema."""
        return self.before != self.after


def current_revision(conn: Connection) -> str | None:
    """The register's revision, ``FIRST`` for a 0.1.0 register, None for an empty database."""
    inspector = inspect(conn)
    if inspector.has_table("alembic_version"):
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if inspector.has_table("complaints"):
        return FIRST
    return None


def ensure_schema(engine: Engine, upgrade: bool = True, schema: str = "") -> SchemaState:
    """Create the schema on a new database, migrate an older one (or refuse, see below).

    With ``upgrade`` false, an older register raises :class:`SchemaError` asking for
    ``reclambot upgrade`` instead of being migrated. A register migrated by a newer
    reclambot always raises: this version would not know its tables. ``schema``: the
    PostgreSQL schema of ``engine``'s transactions (:func:`~bot.store.db.in_schema`),
    created when missing.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            if schema:
                # A plain identifier ([database] schema); tables then go into it, the
                # transaction's search_path naming it alone.
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        before = current_revision(conn)
        if before == HEAD:
            return SchemaState(before, HEAD)
        if before is None:
            Base.metadata.create_all(conn)
            _stamp(conn, HEAD)
            return SchemaState(None, HEAD)
        if before not in _known_revisions():
            raise SchemaError(
                f"the register is at schema revision {before}, unknown to this version of "
                f"reclambot (newest: {HEAD}): it was upgraded by a newer reclambot; "
                "install that version again"
            )
        if not upgrade:
            raise SchemaError(
                f"the register is at schema revision {before}, this version needs {HEAD}: "
                "run `reclambot upgrade` (or set [database] auto_upgrade = true)"
            )
        if not inspect(conn).has_table("alembic_version"):
            _stamp(conn, FIRST)  # a 0.1.0 register: its tables are the first revision
        run_alembic(conn, "upgrade", HEAD)
        log.info("register schema migrated from revision %s to %s", before, HEAD)
        return SchemaState(before, HEAD)


def _stamp(conn: Connection, revision: str) -> None:
    """Write what ``alembic stamp`` writes on a new database, without importing Alembic.

    Alembic costs 12 MiB and 0.2 s to import: too much for one row on every first start.
    The table is Alembic's own (same name, column and key), so later upgrades read it.
    """
    table = Table("alembic_version", MetaData(),
                  Column("version_num", String(32), nullable=False),
                  PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
    table.create(conn)
    conn.execute(table.insert().values(version_num=revision))


def schema_state(engine: Engine) -> str | None:
    """The register's revision, read without changing anything (None: empty database)."""
    with engine.connect() as conn:
        return current_revision(conn)


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    return {script.revision for script in scripts.walk_revisions()}


def alembic_config(conn: Connection | None = None) -> Any:
    """Alembic's configuration for our migrations, bound to ``conn`` when given."""
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def run_alembic(conn: Connection, command_name: str, revision: str) -> None:
    """Run an Alembic command (``upgrade``) to ``revision`` inside the caller's transaction."""
    from alembic import command

    getattr(command, command_name)(alembic_config(conn), revision)
