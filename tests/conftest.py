"""Fixtures: the real Dovecot and SMTP servers, and a bot configured against them."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import App, build_app
from bot.config import Config, load_config
from bot.models import Complaint, Contact, Inbound, Outbox, Ticket
from bot.pipeline import RunSummary
from bot.runner import run_once
from tests.servers import (
    DOVECOT_PASSWORD,
    Dovecot,
    Postgres,
    SmtpServer,
    start_dovecot,
    start_postgres,
)

BOT = "reclamations@example.fr"
DIRECTOR = "direction@example.fr"
FORM_SENDER = "no-reply@example.fr"
_users = itertools.count(1)


DATABASE = os.environ.get("RECLAMBOT_TEST_DATABASE", "sqlite")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres | None]:
    """A real PostgreSQL server when RECLAMBOT_TEST_DATABASE=postgresql, else None."""
    if DATABASE != "postgresql":
        yield None
        return
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture()
def database_url(tmp_path: Path, postgres: Postgres | None) -> str:
    """The register of one test: a SQLite file, or a fresh PostgreSQL database."""
    if postgres is None:
        return f"sqlite:///{tmp_path / 'register.sqlite3'}"
    return postgres.database()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture()
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


def write_config(directory: Path, *, imap_port: int, imap_user: str, smtp_port: int,
                 database_url: str, extra: str = "") -> Path:
    """A config.toml for the test servers, in ``directory``."""
    path = directory / "config.toml"
    path.write_text(f"""\
[organisation]
name = "SophroAttitude"
bot_address = "{BOT}"
director_name = "Claire Durand"
director_addresses = ["{DIRECTOR}"]
form_url = "https://www.example.fr/reclamation"
form_senders = ["{FORM_SENDER}"]

[bot]
batch_size = 5

[imap]
host = "127.0.0.1"
port = {imap_port}
security = "none"
username = "{imap_user}"
password_env = "RECLAMBOT_TEST_IMAP_PASSWORD"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"

[database]
url = "{database_url}"

[storage]
dossiers = "dossiers"
{extra}""", encoding="utf-8")
    return path


class BotEnv:
    """A bot wired to the test servers, with helpers to feed it mail and look at results."""

    def __init__(self, directory: Path, dovecot: Dovecot, smtp: SmtpServer,
                 monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
        monkeypatch.setenv("RECLAMBOT_TEST_IMAP_PASSWORD", DOVECOT_PASSWORD)
        self.directory = directory
        self.user = f"user{next(_users)}-{directory.name[-12:]}"
        self.dovecot = dovecot
        self.smtp = smtp
        self.config_path = write_config(directory, imap_port=dovecot.port, imap_user=self.user,
                                        smtp_port=smtp.port, database_url=database_url)
        self.now: dt.datetime | None = None
        self._app: App | None = None

    @property
    def config(self) -> Config:
        return self.app.config

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = build_app(load_config(self.config_path), clock=self.clock)
        return self._app

    def clock(self) -> dt.datetime:
        if self.now is not None:
            return self.now
        return dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def restart(self) -> None:
        """Forget the process state, as a restart of the bot would."""
        if self._app is not None:
            self._app.close()
        self._app = None

    def imap(self) -> Any:
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False)
        client.login(self.user, DOVECOT_PASSWORD)
        return client

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """APPEND as the mail server would deliver it: at ``now`` when the test set a time."""
        client = self.imap()
        moment = self.now.replace(tzinfo=dt.UTC) if self.now is not None else None
        try:
            client.append(folder, raw, msg_time=moment)
        finally:
            client.logout()

    def folder(self, folder: str) -> list[bytes]:
        """Raw messages in an IMAP folder (fetched without marking them read)."""
        client = self.imap()
        try:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search()
            data = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [data[u][b"BODY[]"] for u in sorted(data)]
        finally:
            client.logout()

    def flags(self, folder: str = "INBOX") -> list[tuple[bytes, ...]]:
        client = self.imap()
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search()
            return list(client.get_flags(uids).values()) if uids else []
        finally:
            client.logout()

    def run(self) -> RunSummary:
        return run_once(self.app)

    def query(self, model: type, *where: Any) -> list[Any]:
        with self.app.sessions() as session:
            return list(session.scalars(select(model).where(*where).order_by(model.id)))

    def complaints(self) -> list[Complaint]:
        return self.query(Complaint)

    def contacts(self) -> list[Contact]:
        return self.query(Contact)

    def tickets(self) -> list[Ticket]:
        return self.query(Ticket)

    def inbound(self) -> list[Inbound]:
        return self.query(Inbound)

    def outbox(self) -> list[Outbox]:
        return self.query(Outbox)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


@pytest.fixture()
def env(tmp_path: Path, dovecot: Dovecot, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch,
        database_url: str) -> Iterator[BotEnv]:
    bot_env = BotEnv(tmp_path, dovecot, smtp, monkeypatch, database_url)
    _ = bot_env.app  # the schema exists before any test process starts
    yield bot_env
    bot_env.close()


@pytest.fixture()
def env_unbuilt(tmp_path: Path, dovecot: Dovecot, smtp: SmtpServer,
                monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[BotEnv]:
    """Like ``env``, but the register is left alone until the test first uses the bot."""
    bot_env = BotEnv(tmp_path, dovecot, smtp, monkeypatch, database_url)
    yield bot_env
    bot_env.close()
