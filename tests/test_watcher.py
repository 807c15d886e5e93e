"""The watcher (``reclambot run``'s loop, :func:`bot.ops.runner.run_forever`) on the
in-memory mailbox: what it writes to the register between its passes, and the lease it
keeps on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot.errors import LockError
from bot.ops import runner
from bot.store.models import Complaint, Contact, Lock, Setting
from bot.testing import samples
from tests.conftest import BotEnv, MemoryEnv


def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"waited in vain: {what}"
        time.sleep(0.02)


@contextmanager
def watching(memory: MemoryEnv) -> Iterator[list[BaseException]]:
    """``run_forever`` in a thread on ``memory``'s mailbox; yields what it raised."""
    stop = threading.Event()
    raised: list[BaseException] = []

    def watch() -> None:
        try:
            runner.run_forever(memory.app, stop, source=memory.source, sink=memory.sink)
        except BaseException as exc:  # what stopped it is the test's to check
            raised.append(exc)

    worker = threading.Thread(target=watch, daemon=True)
    worker.start()
    try:
        yield raised
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not worker.is_alive()


def _lease_and_poll(memory: MemoryEnv) -> tuple[object, object]:
    with memory.app.sessions() as session:
        lease = session.get(Lock, "reclambot")
        poll = session.get(Setting, "last_poll")
        return (lease.heartbeat_at if lease else None, poll.value if poll else None)


def test_passes_in_a_row_renew_the_lease_and_note_the_poll_only_once_in_their_time(
        memory: MemoryEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each is a transaction: a watcher busy with mail would write them many times a
    second. The lease lapses after five minutes; renewing it every 30 s keeps it."""
    monkeypatch.setattr(runner, "RENEW_EVERY", 3600.0)
    monkeypatch.setattr(runner, "NOTE_POLL_EVERY", 3600.0)
    with watching(memory) as raised:
        memory.source.deliver(samples.form_submission())
        _until(lambda: len(memory.query(Complaint)) == 1, "the first complaint")
        _until(lambda: None not in _lease_and_poll(memory), "the first pass's end")
        first = _lease_and_poll(memory)
        for index in range(3):
            memory.source.deliver(samples.free_text(sender=f"c{index}@example.net"))
            _until(lambda i=index: len(memory.query(Contact)) == i + 1, f"contact {index}")
        assert _lease_and_poll(memory) == first
    assert raised == []


def test_a_watcher_whose_lease_was_taken_over_stops_before_handling_more_mail(
        memory: MemoryEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "RENEW_EVERY", 0.0)
    with watching(memory) as raised:
        memory.source.deliver(samples.form_submission())
        _until(lambda: len(memory.query(Complaint)) == 1, "the first complaint")
        # Another process took the register over (this one seemed dead to it).
        with memory.app.transaction() as session:
            session.execute(update(Lock).values(holder="elsewhere:1"))
        memory.source.deliver(samples.free_text())
        _until(lambda: bool(raised), "the watcher to stop")
    assert isinstance(raised[0], LockError)
    assert memory.query(Contact) == []  # the message is left to the new holder
    assert len(memory.sink.sent) == 2  # the first complaint's two emails, nothing since


@pytest.mark.parametrize(("holder", "coordinated", "taken"), [
    ("flotte@autre-machine:4242", True, True),
    ("autre-machine:4242", True, False),  # a process outside the fleet: its lease stands
    ("flotte@autre-machine:4242", False, False),  # run by hand beside the fleet
])
def test_a_fresh_lease_of_another_machine_is_taken_only_within_a_coordinated_fleet(
        memory: MemoryEnv, holder: str, coordinated: bool, taken: bool) -> None:
    """A process of a fleet runs an organisation only while the coordinator gives it the
    organisation: the one given it next may take the lease at once. Anyone else waits
    for the lease to lapse."""
    from bot.ops.lock import ProcessLock

    now = memory.app.clock()
    with memory.app.transaction() as session:
        session.add(Lock(name="reclambot", holder=holder, acquired_at=now, heartbeat_at=now))
    lock = ProcessLock(memory.app, coordinated=coordinated)
    if taken:
        lock.acquire()
    else:
        with pytest.raises(LockError, match="autre-machine:4242"):
            lock.acquire()
    with memory.app.sessions() as session:
        row = session.get(Lock, "reclambot")
        assert row is not None and (row.holder == lock.holder) is taken



@pytest.mark.integration
@pytest.mark.mailbox
def test_a_stop_wakes_at_once_a_connection_idling_for_a_minute(env: BotEnv) -> None:
    """Among many organisations, an idle connection looks at its stop request only every
    minute (looking more often held up the busy ones): the request cuts the connection
    instead, and the watcher ends at once, with no error recorded."""
    from bot.core.stop import Stop
    from bot.intake.sources import make_source
    from bot.intake.sources.imap import IN_A_FLEET

    assert IN_A_FLEET.stop_every >= 60
    stop = Stop()
    source = make_source(env.config, IN_A_FLEET)
    worker = threading.Thread(target=runner.run_forever, daemon=True,
                              args=(env.app, stop, source))
    try:
        # Delivered first: without IDLE, mail that comes after the first pass waits for
        # the next poll, which is not what this test is about.
        env.append(samples.form_submission())
        worker.start()
        _until(lambda: len(env.complaints()) == 1, "the complaint", timeout=60)
        time.sleep(1.0)  # idling now
        asked = time.monotonic()
        stop.set()
        worker.join(timeout=30)
        assert not worker.is_alive()
        assert time.monotonic() - asked < 5
        with env.app.sessions() as session:
            assert session.get(Setting, "last_errors") is None
    finally:
        stop.set()


def test_the_organisations_of_a_process_take_turns_to_handle_their_mail(
        memory: MemoryEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet's passes share a few turns: more at once only fight over the interpreter."""
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = MemoryEnv(second_dir, f"sqlite:///{second_dir / 'register.sqlite3'}")
    running, most = [0], [0]
    guard = threading.Lock()
    real = runner.process_mailbox

    def slow_pass(*args: Any, **kwargs: Any) -> Any:
        with guard:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.2)  # long enough for the other organisation's pass to overlap
            return real(*args, **kwargs)
        finally:
            with guard:
                running[0] -= 1

    monkeypatch.setattr(runner, "process_mailbox", slow_pass)
    turns = threading.BoundedSemaphore(1)
    stop = threading.Event()
    workers = [threading.Thread(target=runner.run_forever, daemon=True, args=(env.app, stop),
                                kwargs={"source": env.source, "sink": env.sink,
                                        "turns": turns})
               for env in (memory, second)]
    try:
        for worker in workers:
            worker.start()
        for index in range(3):
            for env in (memory, second):
                env.source.deliver(samples.free_text(sender=f"c{index}@example.net"))
        _until(lambda: all(len(env.query(Contact)) == 3 for env in (memory, second)),
               "every contact")
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        second.close()
    assert most[0] == 1
