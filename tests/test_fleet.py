"""Many organisations in one process (``reclambot run --organisations DIR``), on the real
Dovecot (one mailbox each) and the test SMTP server: each has its own register, tokens
and emails, and the tests try to cross the line between them."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bot.cli import main
from bot.ops.fleet import Fleet
from bot.store.models import Complaint, Event, Inbound
from bot.testing import samples
from tests.conftest import BOT, DIRECTOR, write_config
from tests.servers import DOVECOT_PASSWORD, Dovecot, SmtpServer

pytestmark = pytest.mark.integration
_numbers = itertools.count(1)


class Organisations:
    """``DIR/<slug>/config.toml`` for a few organisations, and a fleet running them."""

    def __init__(self, root: Path, dovecot: Dovecot, smtp: SmtpServer,
                 database: str | None = None) -> None:
        self.root = root
        self.dovecot = dovecot
        self.smtp = smtp
        #: A PostgreSQL database holding every register, a schema each; else SQLite files.
        self.database = database
        self.users: dict[str, str] = {}
        self.fleet = Fleet(root, look_every=0.3)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, slug: str) -> Path:
        folder = self.root / slug
        folder.mkdir()
        user = self.dovecot.new_user(f"org{next(_numbers)}-{slug}")
        self.users[slug] = user
        config = write_config(folder, imap_port=self.dovecot.port, imap_user=user,
                              smtp_port=self.smtp.port,
                              database_url=self.database or
                              f"sqlite:///{folder / 'register.sqlite3'}", extra="")
        text = config.read_text()
        if self.database:
            text = text.replace("[database]\n", f'[database]\nschema = "{slug}"\n')
        text = (text.replace(BOT, self.bot(slug))
                .replace(DIRECTOR, self.director(slug))
                .replace("[bot]\n", "[bot]\nidle_timeout = 2\npoll_interval = 1\n"))
        config.write_text(text)
        return config

    @staticmethod
    def bot(slug: str) -> str:
        return f"reclamations@{slug}.example.fr"

    @staticmethod
    def director(slug: str) -> str:
        return f"direction@{slug}.example.fr"

    def start(self) -> None:
        self.thread = threading.Thread(target=self.fleet.run_forever, args=(self.stop,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.fleet.look_now.set()
        if self.thread is not None:
            self.thread.join(60)

    def deliver(self, slug: str, raw: bytes) -> None:
        client = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False)
        client.login(self.users[slug], DOVECOT_PASSWORD)
        try:
            client.append("INBOX", raw)
        finally:
            client.logout()

    def session(self, slug: str) -> Session:
        if self.database:
            return Session(create_engine(self.database, poolclass=NullPool, connect_args={
                "options": f"-csearch_path={slug}"}))
        engine = create_engine(f"sqlite:///{self.root / slug / 'register.sqlite3'}")
        return Session(engine)

    def rows(self, slug: str, model: type, *where: Any) -> list[Any]:
        with self.session(slug) as session:
            return list(session.scalars(select(model).where(*where).order_by(model.id)))

    def wait_for(self, check: Callable[[], bool], timeout: float = 30,
                 state: Callable[[], object] = lambda: None) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"waited in vain: {state()}"
            time.sleep(0.1)

    def sent_from(self, slug: str) -> list[Any]:
        return [c for c in self.smtp.handler.received if c.envelope_from == self.bot(slug)]


def _organisations(tmp_path: Path, dovecot: Dovecot, smtp: SmtpServer,
                   monkeypatch: pytest.MonkeyPatch, database: str | None
                   ) -> Iterator[Organisations]:
    monkeypatch.setenv("RECLAMBOT_TEST_IMAP_PASSWORD", DOVECOT_PASSWORD)
    root = tmp_path / "organismes"
    root.mkdir()
    orgs = Organisations(root, dovecot, smtp, database)
    yield orgs
    orgs.close()


@pytest.fixture()
def organisations(tmp_path: Path, dovecot: Dovecot, smtp: SmtpServer,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Organisations]:
    """Organisations with a SQLite register each."""
    yield from _organisations(tmp_path, dovecot, smtp, monkeypatch, None)


@pytest.fixture(params=["sqlite", "schemas"])
def apart(request: pytest.FixtureRequest, tmp_path: Path, dovecot: Dovecot,
          smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Organisations]:
    """Organisations whose registers are SQLite files, then schemas of one PostgreSQL
    database (one engine for all in the process): the isolation tests run on both."""
    database = (request.getfixturevalue("postgresql_server").database()
                if request.param == "schemas" else None)
    yield from _organisations(tmp_path, dovecot, smtp, monkeypatch, database)


def form(email: str, **fields: str) -> bytes:
    return samples.form_submission({**samples.COMPLETE_FORM, "Adresse e-mail": email, **fields})


def running(orgs: Organisations, *slugs: str) -> None:
    """These organisations in the folder, the fleet started, and each one's form registered."""
    for slug in slugs:
        orgs.add(slug)
    orgs.start()
    registered(orgs, *slugs)


def registered(orgs: Organisations, *slugs: str) -> None:
    """Each organisation registers its own complaint and acknowledges it from its address."""
    for index, slug in enumerate(slugs):
        orgs.deliver(slug, form(f"client{index}@{slug}.example.net"))
    for slug in slugs:
        orgs.wait_for(lambda s=slug: len(orgs.sent_from(s)) >= 2)


def test_each_organisation_runs_its_own_procedure(apart: Organisations) -> None:
    orgs = apart
    running(orgs, "alpha", "beta", "gamma")
    for index, slug in enumerate(("alpha", "beta", "gamma")):
        [complaint] = orgs.rows(slug, Complaint)
        assert complaint.number == f"REC-{dt.date.today().year}-0001"
        assert complaint.client_email == f"client{index}@{slug}.example.net"
        kinds = sorted((c.recipients[0], c.envelope_from) for c in orgs.sent_from(slug))
        assert kinds == sorted([(complaint.client_email, orgs.bot(slug)),
                                (orgs.director(slug), orgs.bot(slug))])
    assert all("en service" in line for line in orgs.fleet.status_lines())


def test_a_directors_token_of_one_organisation_is_worthless_on_another(
        apart: Organisations) -> None:
    orgs = apart
    running(orgs, "alpha", "beta")
    [notice] = [c for c in orgs.sent_from("alpha") if c.recipients == [orgs.director("alpha")]]
    # Alpha's tag, REC-…-0001 and its token, sent to beta's mailbox, where beta's
    # director's address writes: beta has a REC-…-0001 of its own.
    attack = samples.reply(notice.data, "#cloturer Affaire réglée.",
                           sender=orgs.director("beta"))
    orgs.deliver("beta", attack)
    orgs.wait_for(lambda: any("alerte" in c.subject.lower() or "Alerte" in c.subject
                              for c in orgs.sent_from("beta")))
    [beta] = orgs.rows("beta", Complaint)
    [alpha] = orgs.rows("alpha", Complaint)
    assert beta.status == "open" and alpha.status == "open"
    [row] = orgs.rows("beta", Inbound, Inbound.action == "alert")
    assert row.rules[0]["rule"] == "invalid_token"
    assert orgs.rows("alpha", Inbound, Inbound.action != "submission") == []


def test_a_reply_to_one_organisations_reference_sent_to_another_stays_there(
        apart: Organisations) -> None:
    orgs = apart
    running(orgs, "alpha", "beta")
    [ack] = [c for c in orgs.sent_from("alpha") if c.recipients == ["client0@alpha.example.net"]]
    reply = samples.reply(ack.data, "Des nouvelles ?", sender="client0@alpha.example.net")
    orgs.deliver("beta", reply)
    orgs.wait_for(lambda: len(orgs.rows("beta", Inbound)) == 2)
    row = orgs.rows("beta", Inbound)[-1]
    assert row.action in ("new_contact", "leave") and row.complaint_id is None
    assert orgs.rows("beta", Event, Event.kind == "correspondence") == []
    assert orgs.rows("alpha", Event, Event.kind == "correspondence") == []
    assert len(orgs.rows("alpha", Inbound)) == 1


def test_an_export_names_its_organisation_and_shows_only_its_register(
        apart: Organisations, capsys: pytest.CaptureFixture[str]) -> None:
    orgs = apart
    running(orgs, "alpha", "beta")
    capsys.readouterr()
    assert main(["export", "--format", "csv", "--organisations", str(orgs.root),
                 "--organisation", "alpha"]) == 0
    out = capsys.readouterr().out
    assert "client0@alpha.example.net" in out and "beta" not in out
    assert main(["export", "--format", "csv", "--organisations", str(orgs.root),
                 "--organisation", "../alpha"]) == 2
    assert "n'est pas le nom d'un dossier" in capsys.readouterr().err
    assert main(["status", "--organisations", str(orgs.root)]) == 0
    summary = capsys.readouterr().out
    assert "== alpha ==" in summary and "== beta ==" in summary


def test_two_organisations_given_one_register_are_refused_the_second(
        organisations: Organisations) -> None:
    orgs = organisations
    running(orgs, "alpha")
    beta = orgs.add("beta")
    # A copied configuration that still names alpha's register.
    beta.write_text(beta.read_text().replace(str(orgs.root / "beta" / "register.sqlite3"),
                                             str(orgs.root / "alpha" / "register.sqlite3")))
    orgs.fleet.look_now.set()
    orgs.wait_for(lambda: any(line.startswith("beta") and "même registre" in line
                              for line in orgs.fleet.status_lines()),
                  state=orgs.fleet.status_lines)
    orgs.deliver("beta", form("client1@beta.example.net"))
    time.sleep(3)  # beta, were it running, would have answered by now
    assert orgs.sent_from("beta") == []
    assert len(orgs.rows("alpha", Complaint)) == 1


def test_a_failing_organisation_holds_up_no_other_and_is_taken_up_once_fixed(
        organisations: Organisations) -> None:
    orgs = organisations
    orgs.add("alpha")
    broken = orgs.add("beta")
    good = broken.read_text()
    broken.write_text(good + "\n[inconnue]\nx = 1\n")
    orgs.start()
    orgs.deliver("alpha", form("client0@alpha.example.net"))
    orgs.wait_for(lambda: len(orgs.sent_from("alpha")) >= 2)
    orgs.wait_for(lambda: any(line.startswith("beta") and "inconnue" in line
                              for line in orgs.fleet.status_lines()))
    broken.write_text(good)  # fixed: taken up at the next look, without a restart
    orgs.fleet.look_now.set()
    orgs.deliver("beta", form("client1@beta.example.net"))
    orgs.wait_for(lambda: len(orgs.sent_from("beta")) >= 2, timeout=60)
    # Added while running, then removed: started, then stopped; the others go on.
    orgs.add("gamma")
    orgs.fleet.look_now.set()
    orgs.wait_for(lambda: any(line.startswith("gamma") and "en service" in line
                              for line in orgs.fleet.status_lines()))
    (orgs.root / "gamma" / "config.toml").unlink()
    orgs.fleet.look_now.set()
    orgs.wait_for(lambda: not any(line.startswith("gamma")
                                  for line in orgs.fleet.status_lines()))
    assert len(orgs.rows("alpha", Complaint)) == len(orgs.rows("beta", Complaint)) == 1


def test_an_unreachable_register_is_reported_plainly_and_holds_up_no_other(
        organisations: Organisations, caplog: pytest.LogCaptureFixture) -> None:
    """A register's server down is the operator's to fix, not a bug: one line saying so
    in ``status`` and the log, no traceback, and the others go on."""
    orgs = organisations
    orgs.add("alpha")
    unreachable = orgs.add("beta")
    text = unreachable.read_text()
    start = text.index("url = ", text.index("[database]"))
    line = text[start:text.index("\n", start)]
    unreachable.write_text(text.replace(
        line, 'url = "postgresql+psycopg://reclambot@127.0.0.1:1/registres"\nschema = "beta"'))
    orgs.start()
    orgs.deliver("alpha", form("client0@alpha.example.net"))
    orgs.wait_for(lambda: len(orgs.sent_from("alpha")) >= 2)
    orgs.wait_for(lambda: any(line.startswith("beta") and "registre inaccessible" in line
                              for line in orgs.fleet.status_lines()))
    assert not any(record.exc_info for record in caplog.records
                   if "beta" in record.getMessage())


def _holders(orgs: Organisations) -> dict[str, str]:
    """The pid holding each organisation's register (its lease), by slug."""
    from sqlalchemy.exc import OperationalError

    from bot.store.models import Lock

    found = {}
    for slug in orgs.users:
        try:
            with orgs.session(slug) as session:
                holder = session.scalar(select(Lock.holder))
        except OperationalError:
            continue  # the register is being created
        if holder:
            found[slug] = holder.rpartition(":")[2]
    return found


def _fleet_process(orgs: Organisations, url: str, host: str = "") -> Any:
    """``reclambot run --organisations`` with a coordinator; with ``host``, as if on
    another machine of that name (a UTS namespace of its own: its leases name that
    host, so that no process here can tell from its pid that it died)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "RECLAMBOT_TEST_IMAP_PASSWORD": DOVECOT_PASSWORD}
    command = [sys.executable, "-m", "bot", "run", "--organisations", str(orgs.root),
               "--coordinator", url, "--look-every", "0.5"]
    if host:
        # unshare and sh exec what follows: the pid stays the bot's.
        command = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "-",
                   *command]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _other_machines() -> bool:
    import shutil
    import subprocess

    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--uts", "true"], capture_output=True).returncode == 0


@pytest.mark.parametrize("where", ["this machine", "another machine"])
def test_two_processes_share_the_organisations_and_one_takes_over_when_the_other_dies(
        organisations: Organisations, postgresql_server: Any, where: str) -> None:
    """On another machine, the dead process's leases are fresh and name a host whose
    processes cannot be looked at: the survivor takes them because the coordinator gave
    it their organisations, not after the five minutes of a lapse."""
    if where == "another machine" and not _other_machines():
        pytest.skip("no UTS namespace here (unshare --uts needs root)")
    orgs = organisations
    slugs = ["alpha", "beta", "gamma", "delta"]
    for slug in slugs:
        orgs.add(slug)
    url = postgresql_server.database()
    first = _fleet_process(orgs, url, host="autre-machine" if where != "this machine" else "")
    second = None
    try:
        orgs.wait_for(lambda: set(_holders(orgs).values()) == {str(first.pid)}
                      and len(_holders(orgs)) == 4, timeout=60,
                      state=lambda: (first.pid, _holders(orgs)))
        second = _fleet_process(orgs, url)
        # Spread evenly: the first gives back what is over its share, the second takes it.
        orgs.wait_for(lambda: sorted(list(_holders(orgs).values()).count(str(p.pid))
                                     for p in (first, second)) == [2, 2], timeout=60,
                      state=lambda: (first.pid, second.pid, _holders(orgs)))
        first.kill()
        first.wait()
        killed = time.monotonic()
        orgs.wait_for(lambda: set(_holders(orgs).values()) == {str(second.pid)}
                      and len(_holders(orgs)) == 4, timeout=60,
                      state=lambda: (second.pid, _holders(orgs)))
        assert time.monotonic() - killed < 60
        for index, slug in enumerate(slugs):
            orgs.deliver(slug, form(f"client{index}@{slug}.example.net"))
        orgs.wait_for(lambda: all(len(orgs.sent_from(s)) >= 2 for s in slugs), timeout=60)
        time.sleep(2)  # anything sent twice would have arrived by now
        for index, slug in enumerate(slugs):
            address = f"client{index}@{slug}.example.net"
            assert len(orgs.smtp.handler.to(address)) == 1, slug
            assert len(orgs.rows(slug, Complaint)) == 1
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)


def test_long_lived_objects_are_frozen_and_a_stopped_organisations_cycles_collected(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frozen objects are out of the collector's reach (that is the point: a thousand
    organisations' objects are not gone over at every collection); an organisation
    stopped since thaws them once, so that what it held in cycles is not kept forever."""
    import gc
    import weakref

    from bot.ops import fleet as fleet_module
    from bot.ops.fleet import Fleet, Member

    class Node:
        me: Node

    monkeypatch.setattr(fleet_module, "SETTLED_OBJECTS", 0)
    fleet = Fleet(tmp_path, work=lambda *_: None)
    try:
        node = Node()
        node.me = node  # a cycle: only the collector frees it
        alive = weakref.ref(node)
        fleet._settle_memory()
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert alive() is not None  # frozen while alive: never looked at
        fleet._stop(Member("gone", tmp_path / "gone" / "config.toml"))
        fleet._settle_memory()
        assert alive() is None
    finally:
        gc.unfreeze()
        fleet.shared.close()


def test_run_once_handles_every_organisation_once(organisations: Organisations,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``run --once --organisations DIR`` (a cron job for the whole fleet): one pass of
    each; one that cannot start says why, and the others run all the same."""
    from bot.cli import main

    orgs = organisations
    for slug in ("alpha", "beta"):
        orgs.add(slug)
    broken = orgs.add("gamma")
    broken.write_text(broken.read_text() + "\n[inconnue]\nx = 1\n")
    orgs.deliver("alpha", form("client0@alpha.example.net"))
    orgs.deliver("beta", form("client1@beta.example.net"))
    assert main(["run", "--once", "--organisations", str(orgs.root)]) == 1
    out = capsys.readouterr().out
    assert "== alpha ==" in out and "== beta ==" in out and "inconnue" in out
    assert "3 organisme(s), 1 en erreur" in out
    assert len(orgs.rows("alpha", Complaint)) == len(orgs.rows("beta", Complaint)) == 1
    assert len(orgs.sent_from("alpha")) == len(orgs.sent_from("beta")) == 2
