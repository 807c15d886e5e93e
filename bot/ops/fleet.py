"""Many organisations in one process: ``reclambot run --organisations DIR``.

``DIR/<slug>/config.toml`` is one organisation, with the same configuration as a single
one (its own mailbox, register, dossiers and secrets) and, when present, its own
``rules/`` and ``templates/`` beside it. Each organisation runs in its own thread with
its own :class:`~bot.app.App`: nothing of one (rows, tokens, emails, threads) is within
reach of another. The fleet looks at ``DIR`` on SIGHUP and every ``look_every``
seconds: an organisation added is started, one removed is stopped, one whose
configuration changed is restarted; the others go on. An organisation that fails (bad
configuration, register unreachable) is reported and tried again later with a growing
pause, without holding up the others. An organisation whose register another process
holds (its lease) is left to that process and looked at again later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import re
import signal
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from bot.app import Shared
from bot.config import Config, load_config, package_data_dir
from bot.core.logs import work_for
from bot.core.stop import Stop
from bot.errors import ConfigError, LockError, ReclambotError, UsageError

log = logging.getLogger(__name__)

#: An organisation's folder name: it names it in every command and log line.
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
CONFIG = "config.toml"
FIRST_RETRY = 30.0
#: Pooled connections per database shared by the organisations of the process.
POOL = 16
MAX_RETRY = 900.0
#: Long-lived objects not yet frozen beyond which the fleet freezes them (_settle_memory).
SETTLED_OBJECTS = 50_000


def organisation_paths(directory: Path) -> dict[str, Path]:
    """Every organisation of ``directory``: slug -> its ``config.toml``."""
    if not directory.is_dir():
        raise ConfigError("", f"dossier des organismes {directory} introuvable")
    return {entry.name: entry / CONFIG for entry in sorted(directory.iterdir())
            if entry.is_dir() and SLUG.match(entry.name) and (entry / CONFIG).is_file()}


def organisation_config(directory: Path, slug: str) -> Path:
    """The ``config.toml`` of organisation ``slug`` of ``directory`` (checked: a slug
    never names a path outside the directory)."""
    if not SLUG.match(slug):
        raise UsageError(f"--organisation : « {slug} » n'est pas le nom d'un dossier "
                         "d'organisme (lettres minuscules, chiffres, - et _)")
    path = directory / slug / CONFIG
    if not path.is_file():
        known = ", ".join(organisation_paths(directory)) or "aucun"
        raise UsageError(f"--organisation : pas d'organisme « {slug} » dans {directory} "
                         f"(organismes : {known})")
    return path


def member_config(path: Path) -> Config:
    """An organisation's configuration, with the ``rules/`` and ``templates/`` folders
    beside its ``config.toml`` when it has them and ``[paths]`` names none."""
    config = load_config(path)
    rules, templates = path.parent / "rules", path.parent / "templates"
    if rules.is_dir() and config.rules_dir == package_data_dir("rules"):
        config = dataclasses.replace(config, rules_dir=rules)
    if templates.is_dir() and config.templates_dir == package_data_dir("templates"):
        config = dataclasses.replace(config, templates_dir=templates)
    return config


def _stamp(path: Path) -> tuple[float, ...]:
    """What says an organisation changed: its config and override folders' times."""
    here = path.parent
    stamps = [path.stat().st_mtime]
    for name in ("rules", "templates"):
        folder = here / name
        if folder.is_dir():
            stamps += [p.stat().st_mtime for p in sorted(folder.rglob("*"))]
    return tuple(stamps)


@dataclass
class Member:
    """One organisation of the fleet, and where it stands."""

    slug: str
    path: Path
    stamp: tuple[float, ...] = ()
    stop: threading.Event = field(default_factory=Stop)
    thread: threading.Thread | None = None
    #: Why it is not running, in French, for ``status`` and the log; "" when it is.
    problem: str = ""
    failures: int = 0
    retry_at: float = 0.0
    #: Its register (database URL and schema), once its configuration was read.
    register: tuple[str, str] = ("", "")

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


#: What runs one organisation until its ``stop`` is set: the runner's loop by default.
Work = Callable[[Config, threading.Event, "Shared"], None]


def run_organisation(config: Config, stop: threading.Event, shared: Shared) -> None:
    """Build the organisation's app and watch its mailbox until ``stop``."""
    from bot.app import build_app
    from bot.intake.sources import make_source
    from bot.intake.sources.imap import IN_A_FLEET
    from bot.ops.runner import run_forever

    app = build_app(config, shared=shared)
    try:
        # Each loop turn of an idle organisation costs a few transactions: among a
        # thousand, deferred emails are tried every 5 minutes instead of every minute.
        run_forever(app, stop, source=make_source(config, IN_A_FLEET), outbox_every=5,
                    coordinated=shared.coordinated, turns=shared.turns, send_ahead=False)
    finally:
        app.close()


#: libpq's keepalives on the coordinator's connection, and the server's for its session.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 3}
SERVER_KEEPALIVES = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 5,
                     "tcp_keepalives_count": 3}

#: Advisory-lock namespaces (the first key of PostgreSQL's two-key advisory locks).
MEMBERS, ORGANISATIONS = 0x5245_4301, 0x5245_4302


def _said(exc: SQLAlchemyError) -> str:
    """A database error in one line: its kind and the server's first words."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def _key(slug: str) -> int:
    """A stable 31-bit key for ``slug`` (two slugs sharing one only share a process)."""
    return zlib.crc32(slug.encode()) & 0x7FFF_FFFF


class Coordinator:
    """Which process runs which organisation, decided by PostgreSQL itself.

    Each process of a fleet holds one connection to a shared PostgreSQL server. On it,
    it holds a session advisory lock per organisation it runs (``pg_try_advisory_lock``:
    never two holders), and one for its membership, so that the number of live
    processes can be read in ``pg_locks``. When a process dies, its connection closes and
    the server releases its locks at once: the others take its organisations at their
    next look. No consensus is written here; the database engine does it.
    """

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        if not url.startswith("postgresql"):
            raise ConfigError("coordinator", "une base PostgreSQL est attendue "
                                             "(postgresql+psycopg://…)")
        # TCP keepalives both ways, so that a machine that dies or is cut off loses its
        # locks within about 30 s (the server's default is the system's: two hours), and
        # a process whose server went away notices it as soon.
        self.engine = create_engine(url, poolclass=NullPool, connect_args=KEEPALIVES)
        try:
            self.connect()
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise ConfigError("coordinator", f"base inaccessible ({_said(exc)})") from None

    def connect(self) -> None:
        """(Re)open the connection that holds this process's locks, and join the fleet."""
        self.connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        for name, value in SERVER_KEEPALIVES.items():  # ignored over a Unix socket
            self.connection.exec_driver_sql(f"SET {name} = {value}")
        self.member = self._join()

    def _try(self, space: int, key: int) -> bool:
        from sqlalchemy import text

        return bool(self.connection.execute(
            text("SELECT pg_try_advisory_lock(CAST(:space AS integer), CAST(:key AS integer))"),
            {"space": space, "key": key}).scalar())

    def _join(self) -> int:
        for slot in range(4096):
            if self._try(MEMBERS, slot):
                return slot
        raise LockError("plus de 4096 processus dans la flotte")

    def live(self) -> int:
        """How many processes of the fleet are alive (this one included)."""
        from sqlalchemy import text

        return int(self.connection.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = CAST(:space AS oid) AND objsubid = 2"), {"space": MEMBERS}
        ).scalar() or 1)

    def claim(self, slug: str) -> bool:
        """Take ``slug`` for this process; ``False`` if another process runs it."""
        return self._try(ORGANISATIONS, _key(slug))

    def release(self, slug: str) -> None:
        from sqlalchemy import text

        self.connection.execute(
            text("SELECT pg_advisory_unlock(CAST(:space AS integer), CAST(:key AS integer))"),
            {"space": ORGANISATIONS, "key": _key(slug)})

    def close(self) -> None:
        with contextlib.suppress(SQLAlchemyError):  # gone already: so are its locks
            self.connection.close()
        self.engine.dispose()


class Fleet:
    """The organisations of ``directory``, each in its thread; with a ``coordinator``,
    shared with the other processes of the fleet, each taking its fair share."""

    def __init__(self, directory: Path, look_every: float = 60.0, work: Work = run_organisation,
                 clock: Callable[[], float] = time.monotonic,
                 coordinator: Coordinator | None = None) -> None:
        self.directory = directory
        self.look_every = look_every
        self.work = work
        self.clock = clock
        self.coordinator = coordinator
        self.members: dict[str, Member] = {}
        #: Given back, but whose thread had not ended yet: their coordinator lock is
        #: released only once it has (another process would take their lease at once).
        self.leaving: dict[str, Member] = {}
        self._stopped_since_freeze = False
        self.look_now = threading.Event()
        self._lock = threading.Lock()
        self._registers = threading.Lock()
        # Connections for the organisations at work at the same moment, not for all.
        self.shared = Shared(pool_size=POOL, coordinated=coordinator is not None)

    def reconcile(self) -> None:
        """Start what was added or is due for another try, stop what was removed, restart
        what changed; with a coordinator, take organisations up to this process's share
        and give back what is over it."""
        found = organisation_paths(self.directory)
        with self._lock:
            for slug, gone in list(self.leaving.items()):
                if not gone.running and self.coordinator is not None:
                    del self.leaving[slug]  # never a member meanwhile: it is not claimed
                    self.coordinator.release(slug)
            for slug in sorted(set(self.members) - set(found)):
                log.info("%s: removed from %s, stopped", slug, self.directory)
                self._give_back(self.members.pop(slug))
            now = self.clock()
            share = len(found)
            if self.coordinator is not None:
                share = -(-len(found) // self.coordinator.live())  # rounded up
            for slug, path in found.items():
                member = self.members.get(slug)
                try:
                    stamp = _stamp(path)
                except OSError:
                    continue  # changing under our eyes: the next look takes it
                if member is not None and member.stamp != stamp:
                    log.info("%s: configuration changed, restarted", slug)
                    self._stop(member)
                    member.stamp = stamp
                if member is None:
                    if (slug in self.leaving or len(self.members) >= share
                            or not self._claim(slug)):
                        continue
                    member = self.members[slug] = Member(slug, path, stamp)
                if not member.running and now >= member.retry_at:
                    self._start(member)
            for slug in sorted(self.members)[share:] if len(self.members) > share else []:
                log.info("%s: given back to the fleet (%d processes)", slug,
                         self.coordinator.live() if self.coordinator else 1)
                self._give_back(self.members.pop(slug))

    def _claim(self, slug: str) -> bool:
        return self.coordinator is None or self.coordinator.claim(slug)

    def _give_back(self, member: Member) -> None:
        self._stop(member)
        if self.coordinator is None:
            return
        if member.running:  # still finishing a pass: its lock is kept until it ends
            log.warning("%s: still stopping; given back once stopped", member.slug)
            self.leaving[member.slug] = member
            return
        self.coordinator.release(member.slug)

    def _start(self, member: Member) -> None:
        member.stop = Stop()
        member.problem = ""
        member.thread = threading.Thread(target=self._run, args=(member,), name=member.slug,
                                         daemon=True)
        member.thread.start()

    def _run(self, member: Member) -> None:
        work_for(member.slug)
        started = self.clock()
        try:
            config = member_config(member.path)
            self._own_register(member, config)
            self.work(config, member.stop, self.shared)
            member.failures = 0
            return
        except LockError as exc:
            # Its register's lease is another process's (giving it back, or dead on
            # another machine until the lease lapses): looked at again at the next look.
            member.problem = f"tenu par un autre processus ({exc})"
            log.info("%s: %s", member.slug, member.problem)
            member.failures = 0
            member.retry_at = self.clock() + min(self.look_every, FIRST_RETRY)
            return
        except ReclambotError as exc:
            member.problem = str(exc)
            log.error("%s: %s; tried again later", member.slug, exc)
        except SQLAlchemyError as exc:  # the register's server, not a bug: no traceback
            member.problem = f"registre inaccessible ({_said(exc)})"
            log.error("%s: %s; tried again later", member.slug, member.problem)
        except Exception as exc:  # one organisation's bug never stops the others
            member.problem = f"{type(exc).__name__}: {exc}"
            log.exception("%s: stopped by an unexpected error; tried again later", member.slug)
        if self.clock() - started > MAX_RETRY:
            member.failures = 0  # it ran a good while: start the pauses over
        member.failures += 1
        member.retry_at = self.clock() + min(FIRST_RETRY * 2 ** (member.failures - 1),
                                             MAX_RETRY)

    def _own_register(self, member: Member, config: Config) -> None:
        """Refuse a register another organisation of this process runs: in one process
        both would hold its lease (the same holder), and their mail would mix."""
        register = (config.database_url, config.database_schema)
        # Not the fleet's lock: it may be held while this very thread is being joined.
        with self._registers:
            for other in list(self.members.values()):
                if other is not member and other.running and other.register == register:
                    raise ConfigError("database", f"même registre que l'organisme "
                                      f"{other.slug} : donnez-lui sa propre base ou son "
                                      "propre schéma ([database] schema)")
            member.register = register

    def _stop(self, member: Member) -> None:
        self._stopped_since_freeze = True
        member.stop.set()
        if member.thread is not None:
            member.thread.join(30)

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Run the fleet until ``stop`` is set (or SIGTERM/SIGINT); SIGHUP: look now."""
        stop = stop or threading.Event()
        if threading.current_thread() is threading.main_thread():
            def ending(*_: object) -> None:
                stop.set()
                self.look_now.set()

            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, ending)
            signal.signal(signal.SIGHUP, lambda *_: self.look_now.set())
        try:
            while not stop.is_set():
                try:
                    self.reconcile()
                except ReclambotError as exc:
                    log.error("%s; looked at again later", exc)
                except SQLAlchemyError as exc:
                    # The coordinator's connection is gone, and this process's locks with
                    # it: another process may take its organisations now.
                    log.error("coordinator lost (%s): every organisation stopped until it "
                              "is back", type(exc).__name__)
                    self._lost_coordinator()
                self._settle_memory()
                self.look_now.wait(self.look_every)
                self.look_now.clear()
        finally:
            with self._lock:
                for member in self.members.values():
                    member.stop.set()
                for member in self.members.values():
                    if member.thread is not None:
                        member.thread.join(30)
            self.shared.close()

    def _settle_memory(self) -> None:
        """Put the organisations' long-lived objects out of the garbage collector's way.

        Every organisation keeps thousands of objects for as long as it runs (its
        configuration, application, connection, thread). Python's collector went over
        them again and again: measured with 1,000 organisations, collections of up to a
        quarter of a second each while the first mail was handled (1.7 s of the
        process's time in 5 s; 0.3 s over the whole load once frozen). Once they have
        settled in the oldest generation, they are frozen (``gc.freeze``): collections
        then look only at what is new. An organisation stopped since leaves its cycles
        frozen: the objects are thawed and collected once, then frozen again.
        """
        with self._lock:
            stopped, self._stopped_since_freeze = self._stopped_since_freeze, False
        if stopped:
            gc.unfreeze()
        elif len(gc.get_objects(generation=2)) < SETTLED_OBJECTS:
            return
        gc.collect()
        gc.freeze()
        log.debug("%d long-lived objects frozen", gc.get_freeze_count())

    def _lost_coordinator(self) -> None:
        with self._lock:
            for member in self.members.values():
                self._stop(member)
            self.members.clear()
            self.leaving.clear()  # their locks went with the connection
        assert self.coordinator is not None
        self.coordinator.close()
        with contextlib.suppress(SQLAlchemyError):  # else tried again at the next look
            self.coordinator.connect()

    def status_lines(self) -> list[str]:
        """One line per organisation: running, or why not."""
        with self._lock:
            return [f"{slug:<24}{'en service' if m.running else m.problem or 'en attente'}"
                    for slug, m in sorted(self.members.items())]
