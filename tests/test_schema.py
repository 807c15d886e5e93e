"""Schema migrations: a register made by an older reclambot is upgraded without loss."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, Table, create_engine, func, select, text

from bot.cli import main
from bot.config import load_config
from bot.errors import SchemaError
from bot.store.db import make_engine
from bot.store.models import Base
from bot.store.schema import FIRST, HEAD, alembic_config, ensure_schema, run_alembic, schema_state
from bot.testing import samples
from tests.conftest import BotEnv

FIRST_REGISTER = Path(__file__).parent / "data" / "register-0.1.0.sql"


def schema_differences(engine: Engine) -> list[Any]:
    """What the database's tables lack or have more than the models (empty: identical)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


#: Columns added by later revisions (empty on the rows written before them).
ADDED = {("inbound", "rules_passed"), ("outbox", "claimed_by"), ("outbox", "claimed_at"),
         ("complaints", "key_generation"), ("contacts", "mode"), ("contacts", "opened_at")}


def table_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the register, by table, in primary-key order: the
    columns the first schema had."""
    meta = MetaData()
    meta.reflect(engine)
    rows = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            if table.name != "alembic_version":
                columns = [c for c in table.columns if (table.name, c.name) not in ADDED]
                rows[table.name] = [tuple(r) for r in conn.execute(
                    select(*columns).order_by(*table.primary_key))]
    return rows


def load_first_register(url: str, tmp_path: Path) -> None:
    """Put the 0.1.0 register in the database at ``url``, as 0.1.0 had made it there."""
    dump = FIRST_REGISTER.read_text(encoding="utf-8")
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.executescript(dump)
        return
    # PostgreSQL: the first schema from its migration, then 0.1.0's rows copied over.
    source_path = tmp_path / "first.sqlite3"
    with sqlite3.connect(source_path) as conn:
        conn.executescript(dump)
    source = create_engine(f"sqlite:///{source_path}")
    target = make_engine(url)
    with target.begin() as conn:
        run_alembic(conn, "upgrade", FIRST)
        conn.execute(text("DROP TABLE alembic_version"))  # 0.1.0 had none
    source_meta, target_meta = MetaData(), MetaData()
    source_meta.reflect(source)
    target_meta.reflect(target)
    with source.connect() as src, target.begin() as dst:
        for table in target_meta.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(select(source_meta.tables[table.name]))]
            if rows:
                dst.execute(table.insert(), rows)
            if "id" in table.c:
                dst.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                 f"(SELECT coalesce(max(id), 1) FROM {table.name}))"))
    source.dispose()
    target.dispose()


def test_head_names_the_newest_migration() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_current_head() == HEAD
    assert scripts.get_base() == FIRST


def test_migrations_from_nothing_give_the_models_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.begin() as conn:
        run_alembic(conn, "upgrade", HEAD)
    assert schema_differences(engine) == []
    engine.dispose()


def test_new_database_is_created_and_stamped(database_url: str) -> None:
    engine = make_engine(database_url)
    state = ensure_schema(engine)
    assert (state.before, state.after, state.changed) == (None, HEAD, True)
    assert schema_state(engine) == HEAD
    assert schema_differences(engine) == []
    again = ensure_schema(engine)
    assert (again.before, again.changed) == (HEAD, False)
    with engine.begin() as conn:  # Alembic itself reads the stamp written without it
        assert MigrationContext.configure(conn).get_current_revision() == HEAD
        run_alembic(conn, "upgrade", HEAD)
    engine.dispose()


def test_processes_starting_at_once_create_the_schema_once(database_url: str) -> None:
    engines = [make_engine(database_url) for _ in range(4)]
    results: list[Any] = []
    barrier = threading.Barrier(len(engines))

    def start(engine: Engine) -> None:
        barrier.wait()
        try:
            results.append(ensure_schema(engine).before)
        except Exception as exc:  # collected: the assertion below shows it
            results.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=repr) == sorted([None, HEAD, HEAD, HEAD], key=repr)
    for engine in engines:
        engine.dispose()


def test_first_register_is_upgraded_without_loss_and_keeps_working(
        env_unbuilt: BotEnv, database_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    load_first_register(database_url, tmp_path)
    engine = make_engine(database_url)
    assert schema_state(engine) == FIRST
    before = table_rows(engine)
    assert len(before["complaints"]) == 2 and len(before["events"]) == 11

    assert main(["--config", str(env_unbuilt.config_path), "upgrade"]) == 0
    assert f"migré du schéma {FIRST} au schéma {HEAD}" in capsys.readouterr().out
    assert schema_state(engine) == HEAD
    after = table_rows(engine)
    assert after.pop("dossier_files") == []  # a table added since (0004), empty
    assert after == before
    assert schema_differences(engine) == []
    assert main(["--config", str(env_unbuilt.config_path), "upgrade"]) == 0
    assert "rien à faire" in capsys.readouterr().out

    # The upgraded register goes on: the next complaint follows 0.1.0's numbering.
    env_unbuilt.now = dt.datetime(2026, 11, 28, 17, 0)
    env_unbuilt.append(samples.form_submission())
    env_unbuilt.run()
    numbers = [c.number for c in env_unbuilt.complaints()]
    assert numbers == ["REC-2026-0001", "REC-2026-0002", "REC-2026-0003"]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Table(
            "events", MetaData(), autoload_with=conn))) > 11
    engine.dispose()


def test_start_migrates_an_older_register_by_default(
        env_unbuilt: BotEnv, database_url: str, tmp_path: Path) -> None:
    load_first_register(database_url, tmp_path)
    assert [c.number for c in env_unbuilt.complaints()] == ["REC-2026-0001", "REC-2026-0002"]
    assert schema_state(env_unbuilt.app.engine) == HEAD


def test_without_auto_upgrade_an_older_register_is_refused(
        env_unbuilt: BotEnv, database_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    load_first_register(database_url, tmp_path)
    path = env_unbuilt.config_path
    path.write_text(path.read_text(encoding="utf-8").replace(
        "[database]\n", "[database]\nauto_upgrade = false\n"), encoding="utf-8")
    assert main(["--config", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert f"schema revision {FIRST}" in err and "reclambot upgrade" in err
    assert "Traceback" not in err
    with pytest.raises(SchemaError):
        ensure_schema(make_engine(load_config(path).database_url), upgrade=False)
    assert main(["--config", str(path), "upgrade"]) == 0
    assert main(["--config", str(path), "status"]) == 0


def test_register_of_a_newer_version_is_refused(database_url: str) -> None:
    engine = make_engine(database_url)
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match=r"9999.*newer reclambot"):
        ensure_schema(engine)
    assert schema_state(engine) == "9999"  # left as it was
    engine.dispose()
