"""The application context: everything a command needs, built once and passed explicitly."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.core.clock import utcnow
from bot.core.logs import use_references
from bot.outbound.render import Renderer
from bot.rulebook import Rulebook, load_rulebook
from bot.store.db import Engines, make_engine, session_factory, shares
from bot.store.dossier import DatabaseDossiers, Dossiers, DossierStore
from bot.store.schema import ensure_schema
from bot.store.tokens import Tokens, load_tokens


@dataclass
class App:
    """Config, rules, database, templates, dossiers and the clock, for one process."""

    config: Config
    rulebook: Rulebook
    engine: Engine
    factory: sessionmaker[Session]
    renderer: Renderer
    dossiers: DossierStore
    tokens: Tokens
    clock: Callable[[], dt.datetime] = utcnow
    #: False when the engine is a process's, shared with other organisations.
    owns_engine: bool = True

    @contextmanager
    def sessions(self) -> Iterator[Session]:
        """A session for reading (no transaction kept open)."""
        with self.factory() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work, committed on success and rolled back on error."""
        with self.factory() as session, session.begin():
            yield session

    def close(self) -> None:
        """Release database connections (those of this register alone)."""
        if self.owns_engine:
            self.engine.dispose()


def build_app(config: Config, clock: Callable[[], dt.datetime] | None = None,
              shared: Shared | None = None) -> App:
    """Load the rules and templates, open the database, create or migrate its schema.

    ``shared``: what the organisations of one process share (engines, rulebooks)."""
    rulebook = (shared.rulebook(config.rules_dir) if shared is not None
                else load_rulebook(config.rules_dir))
    engines = shared.engines if shared is not None else None
    owns = engines is None or not shares(config.database_url)
    engine = make_engine(config.database_url, config.database_schema, engines)
    try:
        ensure_schema(engine, upgrade=config.database_auto_upgrade,
                      schema=config.database_schema)
    except BaseException:
        if owns:
            engine.dispose()
        raise
    factory = session_factory(engine)
    use_references(rulebook.complaint_prefix, rulebook.contact_prefix, rulebook.ticket_prefix)
    renderer = Renderer(
        config.templates_dir,
        # The form in force: the one reclambot serves, else the website's.
        {"org": config.organisation, "rules": rulebook, "form_url": config.form_link()},
        clock=clock,
    )
    return App(
        config=config,
        rulebook=rulebook,
        engine=engine,
        factory=factory,
        renderer=renderer,
        dossiers=(DatabaseDossiers(engine) if config.dossiers_in_database
                  else Dossiers(config.dossiers)),
        tokens=load_tokens(config.security.token_secret, factory),
        clock=clock or utcnow,
        owns_engine=owns,
    )


class Shared:
    """What the organisations of one process share, never their data: the engine of
    each database server (a pool and compiled statements; each organisation's
    transactions stay in its own schema) and the rulebook of each rules folder."""

    def __init__(self, pool_size: int = 5, coordinated: bool = False,
                 passes_at_once: int = 4) -> None:
        """``coordinated``: the process is one of a fleet sharing a coordinator;
        ``passes_at_once``: how many organisations handle their mail at the same moment."""
        self.engines = Engines(pool_size)
        self.coordinated = coordinated
        #: A turn to handle mail. One process uses one core: a few passes at once keep
        #: it busy while others wait for a server; more only add threads taking the
        #: interpreter's lock from each other, each switch a cost, when the process is
        #: already behind (with 1,000 organisations, a run that started queueing did
        #: not catch up until the load ended).
        self.turns = threading.BoundedSemaphore(passes_at_once)
        self._rulebooks: dict[tuple[Path, tuple[float, ...]], Rulebook] = {}
        self._lock = threading.Lock()

    def rulebook(self, rules_dir: Path) -> Rulebook:
        """The rulebook of ``rules_dir`` as it is now (loaded again once it changed)."""
        stamp = tuple(path.stat().st_mtime for path in sorted(rules_dir.glob("*.toml")))
        with self._lock:
            found = self._rulebooks.get((rules_dir, stamp))
        if found is None:
            found = load_rulebook(rules_dir)
            with self._lock:
                self._rulebooks[(rules_dir, stamp)] = found
        return found

    def close(self) -> None:
        """Close every shared connection."""
        self.engines.dispose()
