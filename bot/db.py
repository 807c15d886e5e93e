"""Database access: engine set-up, transactions and number sequences (schema: ``bot.schema``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.models import Base, Counter


def utcnow() -> dt.datetime:
    """Current time as naive UTC, the form every datetime is stored in."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def make_engine(url: str) -> Engine:
    """Create the engine; on SQLite, make transactions real and writers wait for each other."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, emit BEGIN: SAVEPOINTs then work.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Erased personal data must not linger in free pages of the file.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front, so two writers serialise instead of
            # failing on upgrade; the register's numbering relies on it.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def compact(engine: Engine) -> None:
    """After an erasure: fold the SQLite write-ahead log into the (securely deleted) file."""
    if engine.dialect.name == "sqlite":
        # Outside any transaction (our connections begin one implicitly otherwise).
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed on success, rolled back on any exception."""
    with factory() as session, session.begin():
        yield session


def append_row(session: Session, model: type[Base], **values: Any) -> None:
    """Insert one row of an append-only table (events, outgoing emails) at once.

    A plain INSERT on the session's connection, inside its current SAVEPOINT and rolled
    back with it, costs a fraction of the ORM's unit of work for an object that the
    transaction never changes again. The row is visible to the next query at once.
    """
    session.connection().execute(insert(model), values)


# Built once: building a statement costs about as much as running it on SQLite.
_INCREMENT = (update(Counter).where(Counter.name == bindparam("counter"))
              .values(value=Counter.value + 1))
_INCREMENTED = _INCREMENT.returning(Counter.value)
_VALUE = select(Counter.value).where(Counter.name == bindparam("counter"))


def next_in_sequence(session: Session, name: str) -> int:
    """Increment and return counter ``name`` inside the caller's transaction.

    The UPDATE takes a row lock held until commit, so concurrent allocations (other
    processes, PostgreSQL or SQLite) queue up and never hand out the same value; a
    rolled-back transaction gives its value back, so numbers have no holes either.
    """
    connection = session.connection()
    which = {"counter": name}
    for _ in range(3):
        if connection.dialect.update_returning:
            # One statement instead of two, on the connection: the ORM's own bookkeeping
            # around a statement costs more than the statement.
            value = connection.execute(_INCREMENTED, which).scalar()
            if value is not None:
                return int(value)
        elif connection.execute(_INCREMENT, which).rowcount:
            return connection.execute(_VALUE, which).scalar_one()
        try:
            with session.begin_nested():
                session.add(Counter(name=name, value=1))
            return 1
        except IntegrityError:
            continue  # another process created it meanwhile: increment theirs
    raise RuntimeError(f"counter {name} could not be allocated")
