"""Database access: engine set-up, transactions and number sequences.

The schema and its migrations are :mod:`bot.store.schema`'s.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from sqlalchemy import Engine, bindparam, create_engine, event, insert, inspect, select, update
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker

from bot.errors import StoreError
from bot.store.models import Base, Counter, Inbound


def make_engine(url: str, schema: str = "", shared: Engines | None = None) -> Engine:
    """The engine of one register: ``url``'s, in PostgreSQL ``schema`` when given.

    With ``shared``, registers on the same database share its engine: one pool of
    connections and one cache of compiled statements, however many organisations.
    """
    base = shared.get(url) if shared is not None and shares(url) else new_engine(url)
    return in_schema(base, schema) if schema else base


def shares(url: str) -> bool:
    """Whether registers at ``url`` can share one engine: not SQLite's (a file each)."""
    return not url.startswith("sqlite")


#: How long an SQLite connection waits for another's lock (the driver's busy timeout).
SQLITE_BUSY_SECONDS = 60.0


_ROLLBACK_JOURNALS = frozenset({"delete", "truncate", "persist"})


def _write_ahead_log(dbapi_connection: Any, wait: float = SQLITE_BUSY_SECONDS) -> None:
    """Put the register in WAL mode, waiting for other connections as any write does.

    Switching the journal mode needs the file to itself, and SQLite answers "database is
    locked" at once instead of waiting: several processes opening a new register together
    (``run`` and ``serve`` started at once) would see one of them fail. The mode is kept
    in the file, so once any connection switched it the others find it done.
    """
    deadline = time.monotonic() + wait
    pause = 0.005
    while True:
        try:
            mode = dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except dbapi_connection.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
            continue
        # SQLite may also leave a rollback journal as it was when another connection holds
        # the file; a database in memory has no other mode than its own.
        if str(mode).lower() not in _ROLLBACK_JOURNALS or time.monotonic() >= deadline:
            return
        time.sleep(pause)


def new_engine(url: str, pool_size: int = 5) -> Engine:
    """Create an engine; on SQLite, make transactions real and writers wait for each other."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, emit BEGIN: SAVEPOINTs then work.
            dbapi_connection.isolation_level = None
            _write_ahead_log(dbapi_connection)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Erased personal data must not linger in free pages of the file.
            cursor.execute("PRAGMA secure_delete=ON")
            # 512 KiB instead of 2 MiB per connection: the pages are in the OS's cache
            # anyway, and the larger cache cost 2 MiB of the memory budget for no speed.
            cursor.execute("PRAGMA cache_size=-512")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front, so two writers serialise instead of
            # failing on upgrade; the register's numbering relies on it. Said to the driver
            # itself: through SQLAlchemy's execution machinery, this one statement cost a
            # tenth of an email's bookkeeping.
            conn.connection.driver_connection.execute("BEGIN IMMEDIATE")

        return engine
    # No server-side prepared statements: psycopg forgets them at every ROLLBACK (each
    # read-only session ends with one, and it then sends DEALLOCATE ALL), and the
    # registers of a fleet change search_path between transactions, which makes the
    # server plan them again anyway: preparing cost round trips and bought nothing.
    engine = create_engine(url, pool_size=pool_size,
                           connect_args={"prepare_threshold": None}
                           if url.startswith("postgresql+psycopg") else {})

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RESTED_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # A connection that rested a while may have been closed by the server (a restart,
        # an idle timeout): try it before use, and let the pool take another if it is
        # gone. One that was just in use is not tried: that round trip, on every
        # transaction, cost a sixth of the time of handling one message.
        if time.monotonic() - record.info.get(_RESTED_SINCE, 0.0) < PING_AFTER:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as exc:  # any driver error: this connection is unusable
            raise DisconnectionError(str(exc)) from exc

    return engine


#: Seconds of rest after which a pooled PostgreSQL connection is tried before use.
PING_AFTER = 10.0
_RESTED_SINCE = "reclambot.rested_since"


def in_schema(engine: Engine, schema: str) -> Engine:
    """``engine`` with every transaction in PostgreSQL ``schema`` (its own tables only).

    The returned engine shares ``engine``'s pool, dialect and compiled statements: SQL is
    compiled without a schema name, and each transaction first sets ``search_path`` to
    ``schema`` alone, for itself only (``SET LOCAL``), so that a connection handed back
    to the pool carries nothing of one organisation into another's next transaction.
    Tables of no other schema (``public`` included) are visible.
    """
    if engine.dialect.name != "postgresql":
        raise StoreError(f"schema {schema}: only a PostgreSQL register has schemas")
    scoped = engine.execution_options()  # its own events, the same pool and cache
    # ``schema`` was checked as a plain identifier ([database] schema).
    setting = f'SET LOCAL search_path TO "{schema}"'
    opening = f"BEGIN; {setting}".encode()
    pq: Any
    try:
        from psycopg import pq
    except ImportError:  # another driver: the setting goes as a statement of its own
        pq = None

    @event.listens_for(scoped, "begin")
    def _begin(conn: Any) -> None:
        driver = conn.connection.driver_connection
        pgconn = getattr(driver, "pgconn", None)  # psycopg's libpq connection
        if (pq is None or pgconn is None or driver.autocommit
                or pgconn.transaction_status != pq.TransactionStatus.IDLE):
            conn.exec_driver_sql(setting)
            return
        # BEGIN and the search_path in one round trip, said to libpq itself (psycopg then
        # sees a transaction open and sends no BEGIN of its own): through the driver,
        # each was a round trip, two of the six of an idle pass's transaction.
        if pgconn.exec_(opening).status != pq.ExecStatus.COMMAND_OK:
            # Refused (a lost connection, most likely): said again through the driver, so
            # that SQLAlchemy raises its own error and tells a lost connection from others.
            conn.exec_driver_sql(setting)

    return scoped


class Engines:
    """One engine per database for a whole process (the organisations of a fleet)."""

    def __init__(self, pool_size: int = 5) -> None:
        self.pool_size = pool_size
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> Engine:
        """The process's engine for ``url``, created at the first call."""
        with self._lock:
            engine = self._engines.get(url)
            if engine is None:
                engine = self._engines[url] = new_engine(url, self.pool_size)
            return engine

    def dispose(self) -> None:
        """Close every connection of every engine."""
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


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


_BUFFER = "reclambot.rows"
_SAVEPOINTS = "reclambot.savepoints"


class Rewindable(Protocol):
    """Something a transaction fills in memory that a rolled-back SAVEPOINT must empty of
    what it added: the held rows of a batch, the counts of automatic answers."""

    def mark(self) -> object:
        """What it holds now, to come back to."""

    def rewind(self, mark: object) -> None:
        """Hold again what it held at ``mark``."""


class _Savepoints:
    """Rewinds a session's in-memory buffers when one of its SAVEPOINTs rolls back.

    The database gives back what a rolled-back SAVEPOINT wrote (rows, counters, numbers);
    a Python list does not. Without this, an email queued by a command email that is then
    refused, all or nothing, would stay in the batch's buffer and leave after commit.
    """

    def __init__(self, session: Session) -> None:
        self.buffers: list[Rewindable] = []
        # Transactions are dropped by SQLAlchemy once ended: so are their marks.
        self._marks: weakref.WeakKeyDictionary[SessionTransaction,
                                               list[tuple[Rewindable, object]]]
        self._marks = weakref.WeakKeyDictionary()
        event.listen(session, "after_transaction_create", self._begun)
        event.listen(session, "after_soft_rollback", self._rolled_back)

    def _begun(self, _session: Session, transaction: SessionTransaction) -> None:
        if transaction.nested and self.buffers:
            self._marks[transaction] = [(buffer, buffer.mark()) for buffer in self.buffers]

    def _rolled_back(self, _session: Session, transaction: SessionTransaction) -> None:
        for buffer, mark in self._marks.pop(transaction, ()):
            buffer.rewind(mark)


def rewind_with_savepoints(session: Session, buffer: Rewindable) -> None:
    """Make ``buffer`` forget whatever a rolled-back SAVEPOINT of ``session`` (one begun
    from now on) added to it."""
    savepoints: _Savepoints | None = session.info.get(_SAVEPOINTS)
    if savepoints is None:
        savepoints = session.info[_SAVEPOINTS] = _Savepoints(session)
    if buffer not in savepoints.buffers:
        savepoints.buffers.append(buffer)


def stop_rewinding(session: Session, buffer: Rewindable) -> None:
    """``buffer`` holds nothing of ``session``'s any more (it was written out)."""
    savepoints: _Savepoints | None = session.info.get(_SAVEPOINTS)
    if savepoints is not None and buffer in savepoints.buffers:
        savepoints.buffers.remove(buffer)


class RowBuffer:
    """Rows of append-only tables (events, outgoing emails) held back until :meth:`write`.

    The batch makes one explicitly (:meth:`hold`) and writes it at its end (:meth:`release`).
    It writes them with one INSERT per table and run of rows, through the driver's
    ``executemany``: a fraction of the cost of one statement per row. While it holds rows,
    any ORM statement of *its* session that touches one of their tables writes them first,
    so that no query of the transaction misses one; other sessions are left alone.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rows: dict[type[Base], list[dict[str, Any]]] = {}
        # (model, column names) -> how many held rows have each combination of values:
        # counting by a scan would make a large batch quadratic.
        self._counts: dict[tuple[type[Base], tuple[str, ...]], collections.Counter[Any]] = {}

    @classmethod
    def hold(cls, session: Session) -> RowBuffer:
        """Hold ``session``'s :func:`append_row` rows from now until :meth:`release`.

        They are written in the transaction all the same: if it rolls back, they vanish
        with it, and with the session the buffer is dropped.
        """
        buffer = cls(session)
        session.info[_BUFFER] = buffer
        event.listen(session, "do_orm_execute", buffer._before_orm_statement)
        rewind_with_savepoints(session, buffer)
        return buffer

    def mark(self) -> object:
        """The rows held now (copied: a write inside a SAVEPOINT empties the lists, and
        what it wrote there of the rows held before goes if that SAVEPOINT rolls back)."""
        return {model: list(values) for model, values in self._rows.items()}

    def rewind(self, mark: object) -> None:
        """Hold again exactly the rows held at ``mark``: those a rolled-back SAVEPOINT
        added are dropped, and those it wrote (and so took back) are held again."""
        assert isinstance(mark, dict)
        self._rows = {model: list(values) for model, values in mark.items()}
        self._counts.clear()

    def release(self) -> None:
        """Write the rows held, and append at once from now on."""
        if self.session.info.get(_BUFFER) is self:
            del self.session.info[_BUFFER]
            event.remove(self.session, "do_orm_execute", self._before_orm_statement)
            stop_rewinding(self.session, self)
        self.write()

    def add(self, model: type[Base], values: dict[str, Any]) -> None:
        self._rows.setdefault(model, []).append(values)
        for (counted, names), counts in self._counts.items():
            if counted is model:
                counts[tuple(values[name] for name in names)] += 1

    def count(self, model: type[Base], **equal: Any) -> int:
        """How many held rows of ``model`` have these column values."""
        names = tuple(sorted(equal))
        counts = self._counts.get((model, names))
        if counts is None:
            counts = collections.Counter(tuple(values[name] for name in names)
                                         for values in self._rows.get(model, []))
            self._counts[(model, names)] = counts
        return counts[tuple(equal[name] for name in names)]

    def write(self) -> None:
        """Insert every row held, in the order added (ids follow that order)."""
        rows, self._rows = self._rows, {}
        self._counts.clear()
        if not rows:
            return
        connection = self.session.connection()
        for model, values in rows.items():
            # One executemany per run of rows that give the same columns.
            for _, run in itertools.groupby(values, key=_columns):
                connection.execute(insert(model), [_with_ids(self.session, v) for v in run])

    def _before_orm_statement(self, state: ORMExecuteState) -> None:
        if self._rows and any(m.class_ in self._rows for m in state.all_mappers):
            self.write()


def held_count(session: Session, model: type[Base], **equal: Any) -> int:
    """How many rows of ``model`` with these values this session holds back (not written)."""
    buffer: RowBuffer | None = session.info.get(_BUFFER)
    return buffer.count(model, **equal) if buffer is not None else 0


def _with_ids(session: Session, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each ORM object (a foreign key's target) replaced by its id."""
    if not any(isinstance(value, Base) for value in values.values()):
        return values
    if any(isinstance(value, Base) and inspect(value).identity is None
           for value in values.values()):
        session.flush()  # a complaint (contact, ticket) created by this message: its id now
    return {key: _identity(value) if isinstance(value, Base) else value
            for key, value in values.items()}


def _columns(values: dict[str, Any]) -> tuple[str, ...]:
    """The columns a row gives, in order: rows giving the same ones share an INSERT."""
    return tuple(values)


def _identity(row: Base) -> Any:
    identity = inspect(row).identity
    assert identity is not None  # flushed above
    return identity[0]


def append_row(session: Session, model: type[Base], **values: Any) -> None:
    """Insert one row of an append-only table (events, outgoing emails).

    A plain INSERT on the session's connection, inside its current SAVEPOINT and rolled
    back with it, costs a fraction of the ORM's unit of work for an object that the
    transaction never changes again. It is sent at once, or held with the others of a
    batch if the session holds rows (:func:`hold_rows`). A foreign key may be given as
    the object it points to, even one not written yet: its id is taken when the row is.
    """
    buffer: RowBuffer | None = session.info.get(_BUFFER)
    if buffer is not None:
        buffer.add(model, values)
    else:
        session.connection().execute(insert(model), _with_ids(session, values))


def message_origin(session: Session, row: Inbound) -> str:
    """How the events a message causes name it: its Message-ID, else its row.

    A message without a Message-ID (rare: robots, broken clients) needs its row's id,
    so its row is flushed here, on purpose and only then: a batch otherwise writes its
    rows once, at its end.
    """
    if row.message_id:
        return row.message_id
    if row.id is None:
        session.flush()
    return f"inbound:{row.id}"


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
    raise StoreError(f"counter {name} could not be allocated")
