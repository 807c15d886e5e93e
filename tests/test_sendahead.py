"""Sending ahead: a backlog's emails go out from a worker process while the bot handles
the next messages (bot.outbound.sendahead), with the guarantees of sending here: each
email once, at most one in doubt (sent again with its Message-ID, marked interrupted),
whatever is killed, the worker or the bot."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.config import Secret
from bot.errors import SinkError
from bot.intake.sources import make_source
from bot.outbound.outbox import RUNNER, SendReport
from bot.outbound.sendahead import WORKER, SendAhead, journal_path, recover_journal
from bot.outbound.sinks.smtp import SmtpSink
from bot.pipeline import process_mailbox
from bot.store.dossier import DossierWrites
from bot.store.models import Outbox
from bot.testing import samples
from tests.conftest import DIRECTOR, DOVECOT_PASSWORD, BotEnv, MemoryEnv

pytestmark = pytest.mark.integration


def one_batch(env: BotEnv) -> None:
    """The default batch (100 messages) instead of the tests' 5."""
    env.config_path.write_text(env.config_path.read_text().replace("batch_size = 5\n", ""))
    env.restart()


def deliver(env: BotEnv, count: int) -> list[str]:
    """``count`` first contacts in the mailbox, fetched in one batch; their senders'
    addresses."""
    one_batch(env)
    addresses = [f"personne{i}@example.org" for i in range(count)]
    client = env.imap()
    try:
        for address in addresses:
            client.append("INBOX", samples.free_text(sender=address,
                                                     subject=f"Réclamation {address}"))
    finally:
        client.logout()
    return addresses


def slow_smtp(env: BotEnv, seconds: float = 0.02) -> None:
    """Each email takes the test SMTP server a while: a kill lands in the middle."""
    handler = env.smtp.handler
    accept = type(handler).handle_DATA

    async def handle_DATA(server, session, envelope):  # type: ignore[no-untyped-def]
        await asyncio.sleep(seconds)
        return await accept(handler, server, session, envelope)

    handler.handle_DATA = handle_DATA  # type: ignore[method-assign]


def needs_journal(env: BotEnv | MemoryEnv) -> Path:
    path = journal_path(env.app)
    if path is None:
        pytest.skip("the worker sends only for a register in an SQLite file")
    return path


def sent_lines(journal: Path) -> list[int]:
    try:
        lines = journal.read_bytes().split(b"\n")[:-1]
    except FileNotFoundError:
        return []
    return [int(line.split()[1]) for line in lines if line.startswith(b"sent ")]


def workers() -> list[int]:
    """This process's send workers."""
    found = []
    for task in os.listdir("/proc/self/task"):
        for child in Path(f"/proc/self/task/{task}/children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"bot.outbound.sendworker" in cmdline:
                found.append(int(child))
    return found


def once_each(env: BotEnv, addresses: list[str]) -> set[str]:
    """Each address got its answer; a second copy only of an email marked interrupted.
    Returns the Message-IDs received twice."""
    outbox = env.outbox()
    assert {r.status for r in outbox} == {"sent"}
    received = collections.Counter(c.message["Message-ID"] for c in env.smtp.handler.received)
    assert set(received) == {r.message_id for r in outbox}
    repeated = {mid for mid, n in received.items() if n > 1}
    assert repeated <= {r.message_id for r in outbox if r.interrupted}
    assert sum(r.interrupted for r in outbox) <= 1  # one email in doubt at most
    assert all(n <= 2 for n in received.values())
    assert all(env.smtp.handler.to(address) for address in addresses)
    return repeated


def test_a_backlog_is_sent_by_the_worker_process(env: BotEnv) -> None:
    addresses = deliver(env, 40)
    summary = env.run()
    assert summary.sent.sent == 40
    assert all(len(env.smtp.handler.to(a)) == 1 for a in addresses)
    outbox = env.outbox()
    # Only a register in an SQLite file has its journal beside it.
    claimant = WORKER if journal_path(env.app) is not None else RUNNER
    assert {(r.status, r.claimed_by, r.interrupted) for r in outbox} == {
        ("sent", claimant, False)}
    for contact in env.contacts():
        copies = list((env.config.dossiers / contact.reference / "envois").glob("*.eml"))
        assert len(copies) == 1
    path = journal_path(env.app)
    assert path is None or not path.exists()  # emptied once booked
    assert not workers()  # stopped with its pass


def test_a_few_emails_are_sent_here(env: BotEnv) -> None:
    deliver(env, 3)
    env.run()
    assert {(r.status, r.claimed_by) for r in env.outbox()} == {("sent", RUNNER)}


def test_a_worker_killed_midway_leaves_one_email_in_doubt(env: BotEnv) -> None:
    journal = needs_journal(env)
    addresses = deliver(env, 60)
    slow_smtp(env)
    killed: list[int] = []

    def kill_after(sent: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if len(sent_lines(journal)) >= sent:
                for pid in workers():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.002)

    killer = threading.Thread(target=kill_after, args=(10,))
    killer.start()
    summary = env.run()
    killer.join()
    assert killed
    assert summary.sent.sent == 60
    once_each(env, addresses)
    outbox = env.outbox()
    claimants = collections.Counter(r.claimed_by for r in outbox)
    assert claimants[WORKER] >= 10 and claimants[RUNNER] >= 1  # the rest was sent here
    # An email the worker never started went back to the queue as if never claimed.
    assert all(r.attempts == 1 for r in outbox if not r.interrupted)
    assert not journal.exists()


def test_a_bot_killed_while_its_worker_sends_sends_nothing_twice(env: BotEnv) -> None:
    journal = needs_journal(env)
    addresses = deliver(env, 60)
    slow_smtp(env)
    command = [sys.executable, "-m", "bot", "--config", str(env.config_path), "run", "--once"]
    bot = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(sent_lines(journal)) < 10 and time.monotonic() < deadline:
        time.sleep(0.002)
    bot.send_signal(signal.SIGKILL)
    bot.wait(timeout=60)
    said = set(sent_lines(journal))
    assert said  # killed while its worker was sending
    # The next run starts at once: the orphaned worker must send nothing more, or what
    # the journal could not tell in time would go out twice.
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    once_each(env, addresses)
    received = collections.Counter(c.message["Message-ID"] for c in env.smtp.handler.received)
    by_id = {r.id: r for r in env.outbox()}
    # What the journal said sent was booked sent, never sent again.
    assert all(received[by_id[row_id].message_id] == 1 for row_id in said)
    assert all(by_id[row_id].claimed_by == WORKER for row_id in said)
    assert not journal.exists()


def test_with_the_smtp_server_down_the_backlog_waits_unclaimed(env: BotEnv) -> None:
    needs_journal(env)
    addresses = deliver(env, 40)
    env.smtp.stop()
    with pytest.raises(SinkError, match=r"cannot connect to SMTP 127\.0\.0\.1"):
        env.run()
    assert {(r.status, r.attempts, r.claimed_by, r.interrupted) for r in env.outbox()} == {
        ("pending", 0, None, False)}
    env.smtp.start()
    env.run()
    assert once_each(env, addresses) == set()


def test_the_send_worker_never_gets_a_password_in_its_arguments_or_environment(
        env: BotEnv) -> None:
    journal = needs_journal(env)
    deliver(env, 40)
    source = make_source(env.config)
    process_mailbox(env.app, source, sink=None)  # 40 answers due
    source.close()
    assert env.config.smtp is not None
    secret = "mot-de-passe-smtp-9f3a"
    server = dataclasses.replace(env.config.smtp, username="bot", password=Secret(secret))
    ahead = SendAhead.for_app(env.app, SmtpSink(server))
    assert ahead is not None
    writes, report = DossierWrites(env.app.dossiers), SendReport()
    try:
        assert ahead.hand_over(writes, report)
        assert ahead.process is not None
        pid = ahead.process.pid
        seen = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
        assert secret.encode() not in seen
        assert DOVECOT_PASSWORD.encode() not in seen  # the mailbox's, from the environment
        assert os.environ.get("RECLAMBOT_TEST_IMAP_PASSWORD") == DOVECOT_PASSWORD
    finally:
        ahead.close(writes, report)
        writes.close()
    # The test server offers no login: the worker could not send, and said so without it.
    assert ahead.failure is not None and secret not in ahead.failure
    assert not journal.exists()


def test_a_crash_is_booked_from_the_journal(memory: MemoryEnv) -> None:
    # The journal a killed bot left: an email said sent, one started without an answer
    # (and the line of its answer cut by the kill), one deferred, one never started.
    journal = needs_journal(memory)
    memory.deliver(*(samples.free_text(sender=f"p{i}@example.org") for i in range(4)))
    rows = memory.query(Outbox)
    assert len(rows) == 4
    sent, doubt, deferred, unstarted = (r.id for r in rows)
    with memory.app.transaction() as session:
        session.execute(update(Outbox).values(status="pending", sent_at=None))
        session.execute(update(Outbox).values(status="sending", claimed_by=WORKER,
                                              attempts=1))
    journal.write_bytes(
        f"start {sent}\nsent {sent} 2026-12-06T10:00:00.123456\n"
        f"start {doubt}\nstart {deferred}\ndeferred {deferred} \"451 try later\"\n"
        f"sent {doubt} 2026-12-06T10:0".encode())
    assert recover_journal(memory.app) == 1
    after = {r.id: r for r in memory.query(Outbox)}
    assert (after[sent].status, str(after[sent].sent_at)) == ("sent",
                                                              "2026-12-06 10:00:00.123456")
    assert (after[doubt].status, after[doubt].interrupted) == ("pending", True)
    assert (after[deferred].status, after[deferred].last_error) == ("pending", "451 try later")
    assert after[deferred].next_attempt_at > memory.app.clock()
    assert (after[unstarted].status, after[unstarted].attempts,
            after[unstarted].interrupted, after[unstarted].claimed_by) == (
        "pending", 0, False, None)
    assert not journal.exists()


def test_a_pass_that_fails_leaves_no_worker_and_the_next_books_its_journal(
        env: BotEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.pipeline

    journal = needs_journal(env)
    addresses = deliver(env, 40)

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError("disque plein")

    monkeypatch.setattr(bot.pipeline, "finish_batch", full_disk)
    with pytest.raises(OSError, match="disque plein"):
        env.run()  # after the batch's emails were handed to the worker
    assert not workers()
    assert journal.exists()  # what the worker did, for the next pass
    monkeypatch.undo()
    # The watcher's next pass (not a new run, which books a journal as it starts).
    from bot.outbound.sinks import make_sink

    source = make_source(env.config)
    try:
        process_mailbox(env.app, source, make_sink(env.config), send_ahead=True)
    finally:
        source.close()
    assert once_each(env, addresses) == set()
    assert all(len(env.smtp.handler.to(a)) == 1 for a in addresses)
    assert not any(r.interrupted for r in env.outbox())
    assert not journal.exists()
    assert len(env.folder("Réclamations/Traitées")) == 40


def test_a_refusal_met_by_the_worker_is_told_to_the_director_in_the_same_pass(
        env: BotEnv) -> None:
    needs_journal(env)
    addresses = deliver(env, 40)
    env.smtp.handler.refuse = {addresses[3]: "550 5.1.1 no such user"}
    summary = env.run()
    assert (summary.sent.sent, summary.sent.refused) == (40, 1)  # 39 answers, 1 notice
    failed = [r for r in env.outbox() if r.status == "failed"]
    assert [(r.to_address, r.claimed_by) for r in failed] == [(addresses[3], WORKER)]
    [notice] = env.smtp.handler.to(DIRECTOR)
    assert addresses[3] in notice.text()
    assert {r.status for r in env.outbox() if r.id != failed[0].id} == {"sent"}


def test_a_batch_that_queues_more_than_the_worker_has_room_for_sends_it_all_through_it(
        env: BotEnv) -> None:
    # 60 complaints queue 120 emails (an acknowledgement and the director's notice
    # each), more than the worker is handed at once: the rest goes through it as it has
    # room, in the same pass.
    from bot.outbound.sendahead import AHEAD_EMAILS

    needs_journal(env)
    one_batch(env)
    client = env.imap()
    try:
        for i in range(60):
            client.append("INBOX", samples.form_submission(
                {**samples.COMPLETE_FORM, "Adresse e-mail": f"stagiaire{i}@example.org"}))
    finally:
        client.logout()
    summary = env.run()
    outbox = env.outbox()
    assert len(outbox) == 120 > AHEAD_EMAILS
    assert summary.sent.sent == 120
    assert {(r.status, r.claimed_by) for r in outbox} == {("sent", WORKER)}


@pytest.mark.parametrize("command", [
    ("/nonexistent/python",),  # cannot be started at all
    (sys.executable, "-c", "import sys; sys.exit(3)"),  # started, and gone at once
], ids=["not-started", "gone-at-once"])
def test_without_a_worker_the_emails_are_sent_here(
        env: BotEnv, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]) -> None:
    journal = needs_journal(env)
    addresses = deliver(env, 40)
    monkeypatch.setattr(SendAhead, "command", command)
    summary = env.run()
    assert summary.sent.sent == 40
    assert all(len(env.smtp.handler.to(a)) == 1 for a in addresses)
    assert {(r.status, r.claimed_by, r.attempts, r.interrupted) for r in env.outbox()} == {
        ("sent", RUNNER, 1, False)}
    assert not journal.exists()
