"""Sending ahead: a backlog's emails go out from a worker process while this one handles
the next messages (``[bot] send_worker``).

Sending an email is a conversation with the SMTP server: four replies to wait for, and
the bookkeeping between them. Over a backlog it took a third of the time of ``run
--once``, on the one core this process can use. Handed to a worker
(:mod:`bot.outbound.sendworker`), it goes on while the next batch is parsed, classified
and registered.

Crash safety stays that of :func:`bot.outbound.outbox.send_pending`: at most one email
in doubt. This process claims the due emails (``sending``, claimed by :data:`WORKER`)
and commits before handing them over; the worker sends them one at a time and writes
what became of each to a journal beside the register (``<register>-envois``) before
saying it. This process books the journal's outcomes in the register (and keeps the
copies in the dossiers) at each hand-over, and removes the journal once everything in it
is booked. The journal exists from before a worker's first claim until then, so after a
crash of either process, or a pass that failed, the next pass or run books it first
(:func:`recover_journal`): an email the journal says sent is not sent again; the one
email started and not answered is in doubt, sent again with its fixed Message-ID and
marked interrupted; an email never started goes back to the queue, as if never claimed.

Only for a register in an SQLite file (the journal must sit with it: a register in
PostgreSQL may be taken over from another machine) and an SMTP server without OAuth2
(the token's renewal stays here); until a pass handled :data:`BACKLOG` messages, their
emails are sent here, as before.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, update
from sqlalchemy import select as select_rows

from bot.core.states import OutboxStatus
from bot.outbound.outbox import (
    SendReport,
    dossier_references,
    keep_sent_copy,
    not_sent,
)
from bot.outbound.sendworker import server_settings
from bot.outbound.sinks.smtp import SmtpSink
from bot.store.dossier import DossierWrites
from bot.store.models import Outbox

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import ServerConfig
    from bot.outbound.sinks import Sink

log = logging.getLogger(__name__)

#: The claimant of the emails handed to the worker (:func:`recover_journal`).
WORKER = "run:envoi"
#: A pass sends its first emails here, until it handled this many messages: starting
#: the worker would cost more than sending a few.
BACKLOG = 32
#: At most so many emails, and so many bytes, handed over and not yet answered: enough
#: to keep the worker busy between two batches, little memory.
AHEAD_EMAILS = 100
AHEAD_BYTES = 2 << 20
#: Seconds the last answers of a pass are let gather before they are booked together
#: (booked one by one, each was a transaction).
ANSWERS_GATHER = 0.02
#: Variables the worker inherits (nothing else: the mailbox's password may be in the
#: environment, and the worker has no use for it).
_INHERITED = ("PATH", "HOME", "LANG", "TZ", "TMPDIR", "LD_LIBRARY_PATH", "SYSTEMROOT")
_INHERITED_PREFIXES = ("LC_", "PYTHON", "VIRTUAL_ENV", "SSL_CERT")


def journal_path(app: App) -> Path | None:
    """Where the worker's journal goes: beside an SQLite register file, else nowhere."""
    url = app.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(f"{url.database}-envois")


@dataclass
class _Journal:
    """The journal's lines read so far, by what they say."""

    started: set[int] = field(default_factory=set)
    sent: dict[int, dt.datetime] = field(default_factory=dict)
    not_sent: dict[int, tuple[str, str]] = field(default_factory=dict)  # outcome, error
    unsent: dict[int, str] = field(default_factory=dict)

    def read(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            kind, _, rest = line.decode("utf-8", "replace").partition(" ")
            row, _, detail = rest.partition(" ")
            if not row.isdigit():
                continue
            row_id = int(row)
            try:
                if kind == "start":
                    self.started.add(row_id)
                elif kind == "sent":
                    self.sent[row_id] = dt.datetime.fromisoformat(detail)
                elif kind in ("deferred", "failed"):
                    self.not_sent[row_id] = (kind, str(json.loads(detail)))
                elif kind == "unsent":
                    self.unsent[row_id] = str(json.loads(detail))
            except ValueError:
                # A line that says nothing readable answers nothing: the email is in doubt.
                log.warning("send journal: unreadable line for outbox %s ignored", row_id)

    def answered(self) -> set[int]:
        return {*self.sent, *self.not_sent, *self.unsent}

    def forget(self, rows: Iterable[int]) -> None:
        """Leave out rows booked already: what a pass keeps stays the size of what is in
        flight, not of everything the pass sent (each booking goes over it)."""
        for row_id in rows:
            self.started.discard(row_id)
            self.sent.pop(row_id, None)
            self.not_sent.pop(row_id, None)
            self.unsent.pop(row_id, None)


def _book(app: App, journal: _Journal, rows: Iterable[int], dead: bool,
          writes: DossierWrites, report: SendReport, sent_at: dt.datetime | None) -> None:
    """Book in the register what the journal says of ``rows`` (claimed by the worker).

    ``dead``: the worker is gone, so a row it did not answer never will: in doubt if it
    was started, back to the queue if not. ``sent_at``: the time to record for the sent
    ones (``None``: the journal's own times, after a crash).
    """
    rows = set(rows)
    if not rows:
        return
    sent = sorted(rows & set(journal.sent))
    answered = journal.answered()
    if not (sent or rows & answered or dead):
        return
    now = app.clock()
    copies: list[tuple[int, str, bytes, str, dt.datetime]] = []
    with app.transaction() as session:
        connection = session.connection()
        if sent:
            at = {row_id: sent_at or journal.sent[row_id] for row_id in sent}
            booked = connection.execute(
                select_rows(Outbox.id, Outbox.kind, Outbox.raw, Outbox.complaint_id,
                            Outbox.ticket_id, Outbox.contact_id)
                .where(Outbox.id.in_(sent), Outbox.status == OutboxStatus.SENDING,
                       Outbox.claimed_by == WORKER)).all()
            if booked:
                connection.execute(
                    update(Outbox).where(Outbox.id == bindparam("row_id"))
                    .values(status=OutboxStatus.SENT, sent_at=bindparam("at")),
                    [{"row_id": row.id, "at": at[row.id]} for row in booked])
                references = dossier_references(connection, {row.id: row for row in booked})
                for row in booked:
                    report.sent += 1
                    reference = references[row.id]
                    log.info("sent %s (%s) for %s", row.kind, row.id, reference or "-")
                    if reference is not None:
                        copies.append((row.id, row.kind, row.raw, reference, at[row.id]))
        claimed = set(connection.execute(
            select_rows(Outbox.id).where(Outbox.id.in_(sorted(rows - set(sent))),
                                         Outbox.status == OutboxStatus.SENDING,
                                         Outbox.claimed_by == WORKER)).scalars())
        for row_id in sorted(claimed & set(journal.not_sent)):
            outcome, error = journal.not_sent[row_id]
            not_sent(session, app, row_id, outcome, error, now, report)
        back = claimed & set(journal.unsent)
        if dead:
            back |= claimed - answered - journal.started
        if back:
            # Never handed to the server: back in the queue as if never claimed.
            session.execute(update(Outbox).where(Outbox.id.in_(sorted(back)))
                            .values(status=OutboxStatus.PENDING, claimed_by=None,
                                    attempts=Outbox.attempts - 1))
        doubt = (claimed & journal.started) - answered if dead else set()
        if doubt:
            # Handed over, no answer heard: sent again with its Message-ID, and marked.
            session.execute(update(Outbox).where(Outbox.id.in_(sorted(doubt)))
                            .values(status=OutboxStatus.PENDING, interrupted=True))
            log.warning("outbox %s: the send worker stopped while sending it; sent again",
                        ", ".join(map(str, sorted(doubt))))
    for row_id, kind, raw, reference, at_time in copies:
        writes.submit(keep_sent_copy, app, kind, row_id, raw, reference, at_time)


def recover_journal(app: App) -> int:
    """After a crash (or a pass that failed): book what the worker's journal says, then
    remove it.

    Returns how many emails the journal said sent (booked now, not sent again). Rows the
    worker had claimed and the journal does not answer are in doubt if started, else
    back in the queue. Called before :func:`bot.outbound.outbox.recover_interrupted`.
    """
    path = journal_path(app)
    if path is None or not path.exists():
        return 0  # it is there from before a worker's first claim until all are booked
    claimed = _claimed_by_worker(app)
    journal = _Journal()
    journal.read(_whole_lines(path.read_bytes()))
    report = SendReport()
    writes = DossierWrites(app.dossiers, background=False)
    try:
        _book(app, journal, claimed | journal.answered() | journal.started, dead=True,
              writes=writes, report=report, sent_at=None)
    finally:
        writes.close()
    path.unlink(missing_ok=True)
    return report.sent


def _claimed_by_worker(app: App) -> set[int]:
    with app.sessions() as session:
        return set(session.scalars(select_rows(Outbox.id).where(
            Outbox.status == OutboxStatus.SENDING, Outbox.claimed_by == WORKER)))


def _whole_lines(data: bytes) -> list[bytes]:
    """The journal's complete lines: a line cut by a kill has no end and says nothing."""
    return data.split(b"\n")[:-1]


_CLAIM_MANY = (
    update(Outbox)
    .where(Outbox.id.in_(bindparam("ids", expanding=True)),
           Outbox.status == OutboxStatus.PENDING)
    .values(status=OutboxStatus.SENDING, attempts=Outbox.attempts + 1,
            claimed_by=WORKER, claimed_at=bindparam("now"))
    .returning(Outbox.id, Outbox.envelope_from, Outbox.recipients, Outbox.raw)
)


class SendAhead:
    """The worker of one pass over the mailbox: started at the first backlog, stopped
    by :meth:`close`. Emails it could not send are left for the caller to send here."""

    #: How the worker is started (its journal's path follows).
    command: tuple[str, ...] = (sys.executable, "-m", "bot.outbound.sendworker")

    def __init__(self, app: App, server: ServerConfig, journal: Path) -> None:
        self.app = app
        self.server = server
        self.journal_path = journal
        self.process: subprocess.Popen[bytes] | None = None
        self.journal = _Journal()
        self.read_to = 0
        self.flight: dict[int, int] = {}  # handed over, not booked: row → size
        self.frames: queue.Queue[bytes | None] = queue.Queue()
        self.feeder: threading.Thread | None = None
        self.failure: str | None = None  # why the worker cannot send (then: sent here)
        self.handled = 0  # messages the pass handled before the worker started

    @classmethod
    def for_app(cls, app: App, sink: Sink | None) -> SendAhead | None:
        """A worker for ``app``'s outbox, if it can and should have one."""
        path = journal_path(app)
        if (not app.config.bot.send_worker or path is None or not isinstance(sink, SmtpSink)
                or sink.server.auth != "password"):
            return None
        return cls(app, sink.server, path)

    def _launch(self) -> bool:
        """Start the worker before anything is claimed for it; ``False`` if it cannot be
        (the emails are then sent here, and nothing is left claimed)."""
        try:
            # A journal there says that emails may be claimed by a worker: the next pass
            # or run books them (recover_journal).
            os.close(os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                             0o600))
            self._start()
        except OSError as exc:
            self.failure = f"the send worker cannot start: {exc}"
            log.warning("%s; the emails are sent by this process", self.failure)
            self.journal_path.unlink(missing_ok=True)
            return False
        return True

    def _start(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if k in _INHERITED or k.startswith(_INHERITED_PREFIXES)}
        self.process = subprocess.Popen(
            [*self.command, str(self.journal_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        # The password travels in the pipe, read once by the worker: never in its
        # arguments or environment, which other local users may read.
        settings = {"smtp": server_settings(self.server),
                    "log_format": self.app.config.logging.format,
                    "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel())}
        self.frames.put(json.dumps(settings).encode() + b"\n")
        self.feeder = threading.Thread(target=self._feed, name="envois", daemon=True)
        self.feeder.start()

    def _feed(self) -> None:
        # Writes to the worker's pipe block while it is busy: in a thread of their own,
        # so that handling mail goes on meanwhile.
        assert self.process is not None and self.process.stdin is not None
        pipe = self.process.stdin
        try:
            while (frame := self.frames.get()) is not None:
                pipe.write(frame)
                pipe.flush()
            pipe.close()
        except (BrokenPipeError, OSError):
            pass  # the worker is gone: noticed by wait()

    def hand_over(self, writes: DossierWrites, report: SendReport,
                  handled: int = BACKLOG) -> bool:
        """Book what the worker answered, and hand it the due emails it has room for.

        ``handled``: the messages handled since the last hand-over. ``False`` (nothing
        done) while the pass has not yet handled :data:`BACKLOG` messages (a watcher's
        pass over one message costs no more than before), or when the worker failed:
        the caller sends the emails itself.
        """
        if self.failure is not None:
            return False
        if self.process is None:
            self.handled += handled
            if self.handled < BACKLOG or not self._launch():
                return False
        elif self.process.poll() is not None:
            self._stopped()  # died: what it did not answer goes back, the rest is sent here
            self._book(writes, report, dead=True)
            return False
        else:
            self._book(writes, report, dead=False)
            if self.failure is not None:
                return False  # the server cannot be reached: claim nothing more for it
        room = AHEAD_EMAILS - len(self.flight)
        if room <= 0 or sum(self.flight.values()) >= AHEAD_BYTES:
            return True
        now = self.app.clock()
        with self.app.transaction() as session:
            due = list(session.scalars(
                select_rows(Outbox.id)
                .where(Outbox.status == OutboxStatus.PENDING, Outbox.next_attempt_at <= now)
                .order_by(Outbox.id).limit(room)))
            if not due:
                return True
            claimed = session.connection().execute(_CLAIM_MANY, {"ids": due, "now": now}).all()
        for row in sorted(claimed, key=lambda r: r.id):
            header = {"id": row.id, "from": row.envelope_from, "to": list(row.recipients),
                      "size": len(row.raw)}
            self.flight[row.id] = len(row.raw)
            self.frames.put(json.dumps(header).encode() + b"\n" + row.raw)
        return True

    def wait(self, writes: DossierWrites, report: SendReport, until: int = 0) -> None:
        """Until the worker answered every email handed over but ``until`` (or stopped),
        booking the answers."""
        while len(self.flight) > until and self.process is not None:
            stdout = self.process.stdout
            assert stdout is not None
            if select.select([stdout], [], [], 1.0)[0]:
                time.sleep(ANSWERS_GATHER)  # one booking for the answers of a moment
            ended = not self._take_wakes() or self.process.poll() is not None
            if ended:
                self._stopped()
            self._book(writes, report, dead=ended)

    def _take_wakes(self) -> bool:
        """Read the wake-up bytes that are there (without waiting); ``False`` at their end.

        Read at every booking, so that a long pass never fills the pipe and stops the
        worker."""
        stdout = self.process.stdout if self.process is not None else None
        if stdout is None or stdout.closed:
            return False
        while select.select([stdout], [], [], 0)[0]:
            if not os.read(stdout.fileno(), 1 << 16):
                return False
        return True

    def _read_journal(self) -> None:
        try:
            with self.journal_path.open("rb") as journal:
                journal.seek(self.read_to)
                data = journal.read()
        except FileNotFoundError:
            return
        lines = _whole_lines(data)
        self.read_to += sum(len(line) + 1 for line in lines)
        self.journal.read(lines)

    def _book(self, writes: DossierWrites, report: SendReport, dead: bool) -> None:
        self._take_wakes()
        self._read_journal()
        answered = self.journal.answered()
        if not dead and not (answered & set(self.flight)):
            return
        unsent = set(self.flight) & set(self.journal.unsent)
        if unsent and self.failure is None:
            self.failure = self.journal.unsent[min(unsent)]
        _book(self.app, self.journal, list(self.flight), dead, writes, report,
              sent_at=self.app.clock())
        booked = [row_id for row_id in self.flight if dead or row_id in answered]
        for row_id in booked:
            del self.flight[row_id]
        self.journal.forget(booked)

    def _stopped(self) -> None:
        if self.failure is None:
            code = self.process.wait() if self.process is not None else None
            self.failure = f"the send worker stopped (exit code {code})"
            log.warning("%s: the emails left are sent by this process", self.failure)

    def close(self, writes: DossierWrites, report: SendReport) -> None:
        """Hand the worker what is still due, wait for its last answers, stop it, and
        remove its journal."""
        if self.process is None:
            return
        # A batch may queue more emails than the worker has room for: the rest goes
        # through it now, room by room, instead of waiting for the next pass.
        while self.hand_over(writes, report) and self.flight:
            self.wait(writes, report, until=len(self.flight) // 2)
        self.wait(writes, report)
        self.stop()
        self._book(writes, report, dead=True)
        # Everything it said is booked (committed): the journal has nothing left to tell.
        self.journal_path.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the worker after the emails it was given (at once if they do not go in a
        minute), without booking anything: what it did stays in its journal, which the
        next pass books (:func:`recover_journal`) if :meth:`close` did not."""
        if self.process is None or self.process.returncode is not None:
            return
        self.frames.put(None)
        if self.feeder is not None:
            self.feeder.join(timeout=60)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
