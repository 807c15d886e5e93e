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

import dataclasses
import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import Config, load_config, package_data_dir
from bot.core.logs import work_for
from bot.errors import ConfigError, LockError, ReclambotError, UsageError

log = logging.getLogger(__name__)

#: An organisation's folder name: it names it in every command and log line.
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
CONFIG = "config.toml"
FIRST_RETRY = 30.0
MAX_RETRY = 900.0


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
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    #: Why it is not running, in French, for ``status`` and the log; "" when it is.
    problem: str = ""
    failures: int = 0
    retry_at: float = 0.0

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


#: What runs one organisation until its ``stop`` is set: the runner's loop by default.
Work = Callable[[Config, threading.Event], None]


def run_organisation(config: Config, stop: threading.Event) -> None:
    """Build the organisation's app and watch its mailbox until ``stop``."""
    from bot.app import build_app
    from bot.ops.runner import run_forever

    app = build_app(config)
    try:
        run_forever(app, stop)
    finally:
        app.close()


class Fleet:
    """The organisations of ``directory``, each in its thread."""

    def __init__(self, directory: Path, look_every: float = 60.0, work: Work = run_organisation,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self.look_every = look_every
        self.work = work
        self.clock = clock
        self.members: dict[str, Member] = {}
        self.look_now = threading.Event()
        self._lock = threading.Lock()

    def reconcile(self) -> None:
        """Start what was added or is due for another try, stop what was removed, restart
        what changed."""
        found = organisation_paths(self.directory)
        with self._lock:
            for slug in sorted(set(self.members) - set(found)):
                log.info("%s: removed from %s, stopped", slug, self.directory)
                self._stop(self.members.pop(slug))
            now = self.clock()
            for slug, path in found.items():
                member = self.members.get(slug)
                try:
                    stamp = _stamp(path)
                except OSError:
                    continue  # changing under our eyes: the next look takes it
                if member is not None and member.stamp != stamp:
                    log.info("%s: configuration changed, restarted", slug)
                    self._stop(member)
                    member = None
                if member is None:
                    member = self.members[slug] = Member(slug, path, stamp)
                if not member.running and now >= member.retry_at:
                    self._start(member)

    def _start(self, member: Member) -> None:
        member.stop = threading.Event()
        member.problem = ""
        member.thread = threading.Thread(target=self._run, args=(member,), name=member.slug,
                                         daemon=True)
        member.thread.start()

    def _run(self, member: Member) -> None:
        work_for(member.slug)
        started = self.clock()
        try:
            self.work(member_config(member.path), member.stop)
            member.failures = 0
            return
        except LockError as exc:
            member.problem = f"tenu par un autre processus ({exc})"
            log.info("%s: %s", member.slug, member.problem)
            member.failures = 0
        except ReclambotError as exc:
            member.problem = str(exc)
            log.error("%s: %s; tried again later", member.slug, exc)
        except Exception as exc:  # one organisation's bug never stops the others
            member.problem = f"{type(exc).__name__}: {exc}"
            log.exception("%s: stopped by an unexpected error; tried again later", member.slug)
        if self.clock() - started > MAX_RETRY:
            member.failures = 0  # it ran a good while: start the pauses over
        member.failures += 1
        member.retry_at = self.clock() + min(FIRST_RETRY * 2 ** (member.failures - 1),
                                             MAX_RETRY)

    def _stop(self, member: Member) -> None:
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
                self.look_now.wait(self.look_every)
                self.look_now.clear()
        finally:
            with self._lock:
                for member in self.members.values():
                    member.stop.set()
                for member in self.members.values():
                    if member.thread is not None:
                        member.thread.join(30)

    def status_lines(self) -> list[str]:
        """One line per organisation: running, or why not."""
        with self._lock:
            return [f"{slug:<24}{'en service' if m.running else m.problem or 'en attente'}"
                    for slug, m in sorted(self.members.items())]
