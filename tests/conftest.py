"""Fixtures: the real IMAP and SMTP servers, and a bot configured against them.

Tests marked ``mailbox`` run once per IMAP server of the matrix (``RECLAMBOT_TEST_IMAP``:
``all``, the default, or a comma-separated list of :data:`tests.servers.LAYOUTS`); every
other test runs against Debian's Dovecot as installed.
"""

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
from bot.ops.runner import run_once
from bot.pipeline import RunSummary
from bot.store.models import Complaint, Contact, Inbound, Outbox, Ticket
from tests.servers import (
    DEFAULT_LAYOUT,
    DOVECOT_PASSWORD,
    LAYOUTS,
    Dovecot,
    ImapServer,
    Postgres,
    SmtpServer,
    start_imap,
    start_postgres,
)

BOT = "reclamations@example.fr"
DIRECTOR = "direction@example.fr"
#: A member of staff (the secretariat): her forwards start the procedure for their author.
STAFF = "secretariat@example.fr"
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


@pytest.fixture(scope="session")
def postgresql_server(request: pytest.FixtureRequest) -> Iterator[Postgres]:
    """A PostgreSQL server for the tests that need one whatever the pass's database
    (a fleet's coordinator, registers as schemas): the pass's own when it runs on
    PostgreSQL, else one started for them."""
    server = request.getfixturevalue("postgres")
    own = start_postgres() if server is None else None
    yield server or own
    if own is not None:
        own.stop()


@pytest.fixture()
def database_url(tmp_path: Path, postgres: Postgres | None) -> str:
    """The register of one test: a SQLite file, or a fresh PostgreSQL database."""
    if postgres is None:
        return f"sqlite:///{tmp_path / 'register.sqlite3'}"
    return postgres.database()


def imap_matrix() -> list[str]:
    """The IMAP layouts the ``mailbox`` tests run against."""
    chosen = os.environ.get("RECLAMBOT_TEST_IMAP", "all").strip()
    names = list(LAYOUTS) if chosen == "all" else [n.strip() for n in chosen.split(",") if n]
    unknown = [n for n in names if n not in LAYOUTS]
    if unknown:
        raise pytest.UsageError(f"RECLAMBOT_TEST_IMAP: unknown {', '.join(unknown)}; "
                                f"known: {', '.join(LAYOUTS)}")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "imap_server" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
            "mailbox"):
        metafunc.parametrize("imap_server", imap_matrix(), indirect=True)


class ServerPool:
    """One server per layout for the whole session, started when a test first needs it."""

    def __init__(self) -> None:
        self.servers: dict[str, ImapServer] = {}

    def get(self, name: str) -> ImapServer:
        if name not in self.servers:
            self.servers[name] = start_imap(LAYOUTS[name])
        return self.servers[name]

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="session")
def imap_servers() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    pool.stop()


@pytest.fixture()
def imap_server(request: pytest.FixtureRequest, imap_servers: ServerPool) -> ImapServer:
    """The IMAP server of this test: the matrix's for ``mailbox`` tests, else the default."""
    return imap_servers.get(getattr(request, "param", DEFAULT_LAYOUT))


@pytest.fixture()
def dovecot(imap_servers: ServerPool) -> Dovecot:
    """Debian's Dovecot as installed, for the tests that need Dovecot itself (TLS...)."""
    server = imap_servers.get(DEFAULT_LAYOUT)
    assert isinstance(server, Dovecot)
    return server


@pytest.fixture()
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


def write_config(directory: Path, *, imap_port: int, imap_user: str, smtp_port: int,
                 database_url: str, extra: str = "", dossiers: str = "dossiers") -> Path:
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
staff_addresses = ["{STAFF}"]

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
dossiers = "{dossiers}"
{extra}""", encoding="utf-8")
    return path


class BotEnv:
    """A bot wired to the test servers, with helpers to feed it mail and look at results."""

    def __init__(self, directory: Path, server: ImapServer, smtp: SmtpServer,
                 monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
        monkeypatch.setenv("RECLAMBOT_TEST_IMAP_PASSWORD", DOVECOT_PASSWORD)
        self.directory = directory
        self.user = server.new_user(f"user{next(_users)}-{directory.name[-12:]}"
                                    .replace(".", "-"))
        self.server = server
        self.smtp = smtp
        self.config_path = write_config(directory, imap_port=server.port, imap_user=self.user,
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

        client = IMAPClient("127.0.0.1", port=self.server.port, ssl=False)
        client.login(self.user, DOVECOT_PASSWORD)
        return client

    def server_folder(self, folder: str) -> str:
        """The server's name of a folder written ``A/B`` in the config."""
        return self.server.layout.folder(folder)

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """APPEND as the mail server would deliver it: at ``now`` when the test set a time."""
        client = self.imap()
        moment = self.now.replace(tzinfo=dt.UTC) if self.now is not None else None
        try:
            client.append(self.server_folder(folder), raw, msg_time=moment)
        finally:
            client.logout()

    def try_append(self, raw: bytes) -> bool:
        """APPEND to INBOX; ``False`` if the server refuses to store the message."""
        from imapclient.exceptions import IMAPClientError

        try:
            self.append(raw)
        except IMAPClientError:
            return False
        return True

    def folder(self, folder: str, deleted: bool = False) -> list[bytes]:
        """Raw messages in an IMAP folder (fetched without marking them read).

        Messages flagged ``\\Deleted`` (the originals a server without UIDPLUS keeps after
        a copy) are gone for any user, so they are left out unless ``deleted``.
        """
        client = self.imap()
        try:
            name = self.server_folder(folder)
            if not client.folder_exists(name):
                return []
            client.select_folder(name, readonly=True)
            uids = client.search() if deleted else client.search(["UNDELETED"])
            data = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [data[u][b"BODY[]"] for u in sorted(data)]
        finally:
            client.logout()

    def flags(self, folder: str = "INBOX") -> list[tuple[bytes, ...]]:
        client = self.imap()
        try:
            client.select_folder(self.server_folder(folder), readonly=True)
            uids = client.search(["UNDELETED"])
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
def env(tmp_path: Path, imap_server: ImapServer, smtp: SmtpServer,
        monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[BotEnv]:
    bot_env = BotEnv(tmp_path, imap_server, smtp, monkeypatch, database_url)
    _ = bot_env.app  # the schema exists before any test process starts
    yield bot_env
    bot_env.close()


@pytest.fixture()
def env_unbuilt(tmp_path: Path, imap_server: ImapServer, smtp: SmtpServer,
                monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[BotEnv]:
    """Like ``env``, but the register is left alone until the test first uses the bot."""
    bot_env = BotEnv(tmp_path, imap_server, smtp, monkeypatch, database_url)
    yield bot_env
    bot_env.close()


class MemoryEnv:
    """The bot on the in-memory mailbox and mail server (``bot.testing.memory``): intake
    and director scenarios without any server; the register is the tests' database."""

    def __init__(self, directory: Path, database_url: str, extra: str = "",
                 dossiers: str = "dossiers") -> None:
        from bot.testing.memory import MemorySink, MemorySource

        # The [imap] and [smtp] sections are required, never contacted: the source and
        # the sink are given to the runner.
        self.config_path = write_config(directory, imap_port=1, imap_user="memory",
                                        smtp_port=1, database_url=database_url, extra=extra,
                                        dossiers=dossiers)
        self.source = MemorySource()
        self.sink = MemorySink()
        self.app = build_app(load_config(self.config_path))

    def deliver(self, *raws: bytes) -> RunSummary:
        """Deliver ``raws`` to the inbox and run one pass."""
        for raw in raws:
            self.source.deliver(raw)
        return run_once(self.app, self.source, self.sink)

    def query(self, model: type, *where: Any) -> list[Any]:
        with self.app.sessions() as session:
            return list(session.scalars(select(model).where(*where).order_by(model.id)))

    def close(self) -> None:
        self.app.close()


@pytest.fixture()
def memory(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[MemoryEnv]:
    monkeypatch.setenv("RECLAMBOT_TEST_IMAP_PASSWORD", "never-used")
    bot_env = MemoryEnv(tmp_path, database_url)
    yield bot_env
    bot_env.close()
