"""The application context: everything a command needs, built once and passed explicitly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.core.clock import utcnow
from bot.core.logs import use_references
from bot.outbound.render import Renderer
from bot.rulebook import Rulebook, load_rulebook
from bot.store.db import make_engine, session_factory
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
        """Release database connections."""
        self.engine.dispose()


def build_app(config: Config, clock: Callable[[], dt.datetime] | None = None) -> App:
    """Load the rules and templates, open the database, create or migrate its schema."""
    rulebook = load_rulebook(config.rules_dir)
    engine = make_engine(config.database_url)
    try:
        ensure_schema(engine, upgrade=config.database_auto_upgrade)
    except BaseException:
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
    )
