"""Registers as schemas of one PostgreSQL database (``[database] schema``), on a real
PostgreSQL: one engine for all the organisations of a process, and nothing of one
within reach of another."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from bot.app import Shared, build_app
from bot.config import load_config
from bot.errors import ConfigError
from bot.store.db import Engines, in_schema
from bot.store.models import Complaint, Setting
from bot.store.schema import HEAD, schema_state
from tests.conftest import write_config

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECLAMBOT_TEST_IMAP_PASSWORD", "unused")


def _config(tmp_path: Path, slug: str, url: str) -> Any:
    folder = tmp_path / slug
    folder.mkdir()
    path = write_config(folder, imap_port=1, imap_user="u", smtp_port=1, database_url=url)
    path.write_text(path.read_text().replace("[database]\n", f'[database]\nschema = "{slug}"\n'))
    return load_config(path)


def test_each_schema_is_a_register_of_its_own_on_one_shared_engine(
        tmp_path: Path, postgresql_server: Any) -> None:
    url = postgresql_server.database()
    shared = Shared(pool_size=1)  # one connection: both organisations go through it
    try:
        alpha = build_app(_config(tmp_path, "alpha", url), shared=shared)
        beta = build_app(_config(tmp_path, "beta", url), shared=shared)
        assert alpha.engine.pool is beta.engine.pool
        assert alpha.rulebook is beta.rulebook  # the same rules folder: loaded once
        with alpha.transaction() as session:
            session.add(Setting(key="secret-of-alpha", value="1"))
        with beta.sessions() as session:
            assert session.get(Setting, "secret-of-alpha") is None
            assert session.scalar(text("SHOW search_path")) == "beta"
        with alpha.sessions() as session:
            assert session.get(Setting, "secret-of-alpha") is not None
        assert schema_state(alpha.engine) == schema_state(beta.engine) == HEAD
        alpha.close()  # the shared engine stays open for the others
        with beta.sessions() as session:
            assert session.scalars(select(Complaint)).all() == []
    finally:
        shared.close()


def test_a_connection_back_in_the_pool_keeps_no_organisations_schema(
        postgresql_server: Any) -> None:
    engines = Engines(pool_size=1)
    try:
        base = engines.get(postgresql_server.database())
        alpha = in_schema(base, "alpha")
        with alpha.begin() as conn:
            conn.execute(text('CREATE SCHEMA "alpha"'))
            conn.execute(text("CREATE TABLE secrets (v text)"))
            conn.execute(text("INSERT INTO secrets VALUES ('alpha')"))
        with base.connect() as conn:  # the same, only connection of the pool
            assert conn.execute(text("SHOW search_path")).scalar() == '"$user", public'
            assert conn.execute(text("SELECT to_regclass('secrets')")).scalar() is None
        with in_schema(base, "beta").connect() as conn:
            assert conn.execute(text("SELECT to_regclass('secrets')")).scalar() is None
    finally:
        engines.dispose()


def test_a_schema_is_refused_for_sqlite_or_when_not_a_plain_name(tmp_path: Path) -> None:
    path = write_config(tmp_path, imap_port=1, imap_user="u", smtp_port=1,
                        database_url=f"sqlite:///{tmp_path / 'r.sqlite3'}")
    good = path.read_text()
    path.write_text(good.replace("[database]\n", '[database]\nschema = "alpha"\n'))
    with pytest.raises(ConfigError, match=r"database\.schema.*PostgreSQL"):
        load_config(path)
    path.write_text(good.replace("[database]\n", '[database]\nschema = \'a"; drop\'\n')
                    .replace("sqlite:///", "postgresql+psycopg://x/"))
    with pytest.raises(ConfigError, match=r"database\.schema.*lettres minuscules"):
        load_config(path)


def test_a_pooled_connection_the_server_closed_is_replaced_before_use(
        postgresql_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.store import db

    monkeypatch.setattr(db, "PING_AFTER", 0.0)  # every rest is long enough to be tried
    url = postgresql_server.database()
    engine, admin = db.new_engine(url, pool_size=1), db.new_engine(url)
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin.begin() as conn:  # as a server restart or an idle timeout would
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != first
    finally:
        engine.dispose()
        admin.dispose()


def test_a_connection_lost_before_a_transaction_is_an_error_of_the_register_and_replaced(
        tmp_path: Path, postgresql_server: Any) -> None:
    """BEGIN and the search_path go to libpq in one round trip; when the server has
    dropped the connection meanwhile, the error is still SQLAlchemy's (what the bot
    catches), the pool lets the connection go, and the next transaction works."""
    from sqlalchemy.exc import OperationalError

    url = postgresql_server.database()
    shared = Shared(pool_size=1)
    try:
        alpha = build_app(_config(tmp_path, "alpha", url), shared=shared)
        with alpha.sessions() as session:
            pid = session.scalar(text("SELECT pg_backend_pid()"))
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"),
                             autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pytest.raises(OperationalError), alpha.transaction() as session:
            session.add(Setting(key="lost", value="1"))
        with alpha.transaction() as session:
            session.add(Setting(key="kept", value="1"))
        with alpha.sessions() as session:
            assert session.get(Setting, "kept") is not None
            assert session.scalar(text("SHOW search_path")) == "alpha"
    finally:
        shared.close()
