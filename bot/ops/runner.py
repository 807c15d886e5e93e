"""The main loop: a thin loop around the pipeline, the outbox and the ``schedule`` jobs.

``run_once`` handles everything waiting, sends what is due and returns. ``run_forever``
does the same, then waits for new mail (IMAP IDLE where the server offers it, polling
otherwise), and keeps going through network failures with an increasing pause.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.app import App
from bot.errors import TransientError
from bot.intake.sources import make_source
from bot.intake.sources.base import Source
from bot.ops.lock import ProcessLock
from bot.outbound.outbox import recover_interrupted, send_pending
from bot.outbound.sendahead import recover_journal
from bot.outbound.sinks import Sink, make_sink
from bot.pipeline import RunSummary, process_mailbox
from bot.reporting.status import record_error

log = logging.getLogger(__name__)
MAX_PAUSE = 300.0
DAILY_HOUR = 7
#: Seconds between two renewals of the register's lease (which lapses after five
#: minutes) and between two records of the last poll: each is a transaction, and a
#: watcher passes many times a minute when mail keeps coming.
RENEW_EVERY = 30.0
NOTE_POLL_EVERY = 60.0


def run_once(app: App, source: Source | None = None, sink: Sink | None = None) -> RunSummary:
    """Process every waiting message and send the outbox once."""
    with ProcessLock(app):
        return run_pass(app, source, sink)


def run_pass(app: App, source: Source | None = None, sink: Sink | None = None) -> RunSummary:
    """One pass, for a caller that holds the :class:`ProcessLock`."""
    recover_journal(app)
    recover_interrupted(app)
    app.dossiers.sweep()
    source = source or make_source(app.config)
    sink = sink or make_sink(app.config)
    try:
        return process_mailbox(app, source, sink, send_ahead=True)
    finally:
        source.close()


def _guarded(name: str, job: Callable[[], Any]) -> Callable[[], None]:
    """A job that logs its failure and waits for its next slot instead of stopping the loop."""

    def run() -> None:
        try:
            job()
        except Exception:
            log.exception("scheduled job %s failed; it runs again at its next slot", name)

    return run


@functools.cache
def warm_up() -> None:
    """Load what handling a message needs now, not when the first complainant writes
    (once per process: the organisations of a fleet share what it loads)."""
    from bot.intake.message import parse_message
    from bot.intake.replies import read_reply
    from bot.rulebook.replies import shipped_reply_rules
    from bot.testing import samples

    parse_message(samples.form_submission(as_html=True))
    read_reply(parse_message(samples.reply(
        samples.free_text(), "Bonjour", sender="x@example.org",
        quote="Le 1 janv. 2026, X <x@example.org> a écrit :\n> test")),
        shipped_reply_rules())
    import email_validator  # noqa: F401
    import flufl.bounce  # noqa: F401


def _daily(app: App) -> None:
    from bot.core.clock import local
    from bot.procedure.jobs import run_daily, today

    if local(app.clock()).hour >= DAILY_HOUR:
        run_daily(app, today(app))


def run_forever(app: App, stop: threading.Event | None = None,
                source: Source | None = None, sink: Sink | None = None,
                outbox_every: int = 1, coordinated: bool = False,
                turns: threading.Semaphore | None = None, send_ahead: bool = True) -> None:
    """Watch the mailbox until ``stop`` is set (or SIGTERM/SIGINT in the main thread);
    ``outbox_every``: minutes between two tries of the emails the SMTP server deferred;
    ``coordinated``: for a fleet's coordinator (:class:`~bot.ops.lock.ProcessLock`);
    ``turns``: taken for each pass (the organisations of a fleet share them);
    ``send_ahead``: a backlog's emails may go through a worker process (not in a fleet,
    where a thousand organisations would start a thousand)."""
    import schedule

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    lock = ProcessLock(app, coordinated=coordinated)
    lock.acquire()
    warm_up()
    recover_journal(app)
    recover_interrupted(app)
    app.dossiers.sweep()
    source = source or make_source(app.config)
    sink = sink or make_sink(app.config)
    scheduler = schedule.Scheduler()
    # Emails deferred by the SMTP server wait for this; the others go with their pass.
    scheduler.every(outbox_every).minutes.do(_guarded("outbox",
                                                      lambda: send_pending(app, sink)))
    # Hourly, but each daily job runs once a day (job_runs), from 07:00 Paris time.
    scheduler.every(1).hours.do(_guarded("daily jobs", lambda: _daily(app)))
    pause = 1.0
    renewed = noted = -NOTE_POLL_EVERY - RENEW_EVERY
    log.info("watching %s", source.mailbox)
    try:
        while not stop.is_set():
            try:
                now = time.monotonic()
                if now - renewed >= RENEW_EVERY:
                    lock.renew()
                    renewed = now
                note = now - noted >= NOTE_POLL_EVERY
                with turns or contextlib.nullcontext():
                    summary = process_mailbox(app, source, sink, note_poll=note,
                                              send_ahead=send_ahead)
                if note:
                    noted = now
                if summary.fetched:
                    log.info("handled %d message(s), sent %d email(s)",
                             summary.fetched, summary.sent.sent)
                if summary.new and not source.can_idle():
                    # More may have come meanwhile: look again before waiting (an IDLE
                    # source's wait looks first by itself, without a whole pass).
                    # Messages only left to file (their folder failed) wait for the
                    # next pass.
                    continue
                scheduler.run_pending()
                idle = scheduler.idle_seconds
                bot = app.config.bot
                # IDLE wakes us when mail comes; without it, look every poll_interval.
                limit = bot.idle_timeout if source.can_idle() else bot.poll_interval
                source.wait(max(1.0, min(limit, idle if idle is not None else limit)), stop)
                pause = 1.0
            except TransientError as exc:
                log.warning("%s; trying again in %.0f s", exc, pause)
                record_error(app, str(exc))
                source.close()
                stop.wait(pause)
                pause = min(pause * 2, MAX_PAUSE)
    finally:
        source.close()
        lock.release()
        log.info("stopped")

