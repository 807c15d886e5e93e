"""The pipeline, top to bottom: source → parse → classify → handle → outbox → sink.

One batch of messages is one database transaction; a message that fails goes to
quarantine alone while the batch goes on (see :func:`handle_batch`). Only after the
commit does the bot touch the world: dossier files are written (by a thread of their own,
:class:`~bot.store.dossier.DossierWrites`) while the outbox is sent, then messages are
moved to their folders once their dossiers are written, and the watermark advances.
A crash anywhere leaves a state from which the next run finishes the work without doing
anything twice:

- before commit: nothing happened; the batch is fetched and handled again;
- after commit, before filing: the message is still in the inbox, its row says
  ``committed``; the next run sees the row, writes the dossier and files it. A filing
  that fails (a folder that cannot be created or reached) leaves the same state, and
  never stops the outbox: the emails the batch committed are sent all the same;
- after sending, before the outbox row is marked: the email is sent again with the same
  Message-ID (the only window SMTP leaves open).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from bot.app import App
from bot.config import LimitsConfig
from bot.core.states import Action, InboundState
from bot.errors import ConfigError, MessageError, ReclambotError, SourceError, StoreError
from bot.intake.classify import Decision, Match, classify
from bot.intake.message import InboundMessage, content_hash, parse_message
from bot.intake.parsing import BatchParser
from bot.intake.sources.base import RawMessage, Source
from bot.outbound.autoreply import count_all_at_once
from bot.outbound.outbox import SendReport, send_pending
from bot.outbound.sendahead import SendAhead, recover_journal
from bot.outbound.sinks import Sink
from bot.procedure.handlers import ROUTES, handle
from bot.reporting.status import FilingLog, filing_failures, record_setting
from bot.store.db import RowBuffer
from bot.store.dossier import DossierWrites
from bot.store.models import Complaint, Contact, Inbound, MailboxState, Ticket

log = logging.getLogger(__name__)

#: A batch this large reads the daily counts of automatic answers of every address at
#: once (:func:`~bot.outbound.autoreply.count_all_at_once`), a smaller one address by
#: address (one message while watching: the register's whole day need not be read).
ALL_AT_ONCE = 32

#: Whether a batch is first handled straight through (see :func:`handle_batch`). Only the
#: tests turn it off, to run their scenarios in the replay mode, a SAVEPOINT per message,
#: which otherwise runs only after a handler failed.
STRAIGHT_THROUGH = True


@dataclass
class Outcome:
    """What became of one fetched message, and what remains to do after commit."""

    uid: str
    row_id: int
    action: str
    folder: str  # actual folder name, or "" to leave it in the inbox
    message: InboundMessage | None
    received_at: dt.datetime | None = None
    dossier: str | None = None
    absorb: list[str] = field(default_factory=list)
    finished: bool = False
    #: Committed by an earlier pass that could not file it: only the filing is left.
    resumed: bool = False


@dataclass
class RunSummary:
    """Counts of one run, for the command line and the tests."""

    fetched: int = 0
    actions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sent: SendReport = field(default_factory=SendReport)
    #: Messages handled for the first time (not only filed after an earlier failure).
    new: int = 0
    #: Messages handled but not filed: their folder failed; the next pass tries again.
    unfiled: int = 0

    def add(self, outcome: Outcome) -> None:
        self.fetched += 1
        self.actions[outcome.action] += 1
        self.new += not outcome.resumed
        self.unfiled += not outcome.finished


def _folder_name(app: App, key: str) -> str:
    return getattr(app.config.folders, key) if key else ""


def over_limit(raw: RawMessage, msg: InboundMessage, limits: LimitsConfig) -> str | None:
    """Why a message exceeds ``[limits]``, or ``None``."""
    if raw.headers_only or raw.size > limits.max_message_bytes:
        return (f"message de {raw.size} octets, au-delà de max_message_bytes "
                f"({limits.max_message_bytes})")
    if len(msg.attachments) > limits.max_attachments:
        return (f"{len(msg.attachments)} pièces jointes, au-delà de max_attachments "
                f"({limits.max_attachments})")
    largest = max((len(a.data) for a in msg.attachments), default=0)
    if largest > limits.max_attachment_bytes:
        return (f"une pièce jointe de {largest} octets, au-delà de max_attachment_bytes "
                f"({limits.max_attachment_bytes})")
    return None


def _dossier_plans(session: Session, rows: list[Inbound]
                   ) -> dict[int, tuple[str | None, list[str]]]:
    """Which dossier receives each message, and which earlier dossiers it absorbs.

    Three queries for the whole batch: one per row cost a tenth of the time of a message.
    """
    complaint_ids = {r.complaint_id for r in rows if r.complaint_id is not None}
    ticket_ids = {r.ticket_id for r in rows if r.ticket_id is not None and r.complaint_id is None}
    contact_ids = {r.contact_id for r in rows
                   if r.contact_id is not None and r.complaint_id is None and r.ticket_id is None}
    numbers: dict[int, str] = {}
    earlier: dict[int, list[str]] = defaultdict(list)
    if complaint_ids:
        numbers = dict(session.execute(select(Complaint.id, Complaint.number)
                                       .where(Complaint.id.in_(complaint_ids))).all())
        for model in (Contact, Ticket):
            for complaint_id, reference in session.execute(
                select(model.complaint_id, model.reference)
                .where(model.complaint_id.in_(complaint_ids))
                .order_by(model.id)
            ):
                if complaint_id is not None:
                    earlier[complaint_id].append(reference)
    references: dict[tuple[str, int], str] = {}
    for model, ids in ((Ticket, ticket_ids), (Contact, contact_ids)):
        if ids:
            for row_id, reference in session.execute(
                select(model.id, model.reference).where(model.id.in_(ids))
            ):
                references[(model.__tablename__, row_id)] = reference
    plans: dict[int, tuple[str | None, list[str]]] = {}
    for row in rows:
        if row.action == Action.DUPLICATE:
            plans[row.id] = (None, [])
        elif row.complaint_id is not None:
            plans[row.id] = (numbers.get(row.complaint_id), earlier[row.complaint_id])
        elif row.ticket_id is not None:
            plans[row.id] = (references.get(("tickets", row.ticket_id)), [])
        elif row.contact_id is not None:
            plans[row.id] = (references.get(("contacts", row.contact_id)), [])
        else:
            plans[row.id] = (None, [])
    return plans


def _quarantine(session: Session, app: App, raw: RawMessage, row_base: dict[str, object],
                reason: str) -> Inbound:
    row = Inbound(
        **row_base,
        content_hash=content_hash(raw.data),
        action=Action.QUARANTINE,
        rules=[{"rule": Action.QUARANTINE, "reason": reason}],
        folder=app.config.folders.quarantine,
        error=reason,
    )
    session.add(row)
    session.flush()
    return row


#: What decides a message: the chains of :mod:`bot.intake.classify` for mail.
Decide = Callable[[Session, InboundMessage, App, "str | None"], Decision]


def _handle_one(session: Session, app: App, raw: RawMessage, msg: InboundMessage,
                row_base: dict[str, object], originals: dict[str, Inbound],
                decide: Decide) -> Inbound:
    base = {
        **row_base,
        "content_hash": msg.content_hash,
        "message_id": msg.message_id[:998],
        "sender": msg.from_address[:320],
        "subject": msg.subject,
    }
    original = originals.get(msg.content_hash)
    if original is not None:
        if original.id is None:
            session.flush()  # a copy of a message of this very batch: its row's id now
        # The same message again (appended twice, fetched again after a UIDVALIDITY
        # change): it follows the original, and is never handled a second time.
        if (original.state == InboundState.COMMITTED
                and original.uidvalidity != row_base["uidvalidity"]):
            # The original was handled but never filed, and its UID is gone with the old
            # UIDVALIDITY: this copy is that very message; it is filed in its place.
            original.state = InboundState.DONE
            action, folder = Action.RESUMED, original.folder
            reason = f"de nouveau le message #{original.id}, jamais classé : classé à sa place"
        else:
            action = Action.DUPLICATE
            folder = "" if not original.folder else app.config.folders.ignored
            reason = f"même contenu que le message #{original.id}"
        row = Inbound(
            **base,
            action=action,
            duplicate_of=original.id,
            rules=[Match(action, reason).as_dict()],
            folder=folder,
            complaint_id=original.complaint_id,
            contact_id=original.contact_id,
            ticket_id=original.ticket_id,
        )
        session.add(row)
        return row
    decision = decide(session, msg, app, over_limit(raw, msg, app.config.limits))
    rules = [m.as_dict() for m in decision.matches]
    if msg.parser != "mail-parser":
        rules.append(Match("parsed_by_email", f"lu par le module email de Python, "
                                              f"{msg.parser.partition(' ')[2]}").as_dict())
    row = Inbound(
        **base,
        action=str(decision.action),
        rules=rules,
        rules_passed=list(decision.passed),
        folder=_folder_name(app, ROUTES[decision.action].folder),
    )
    session.add(row)
    handle(session, app, msg, decision, row)
    return row


def _originals(session: Session, hashes: set[str]) -> dict[str, Inbound]:
    """The first handled message with each of these contents, if any: later copies follow it."""
    found: dict[str, Inbound] = {}
    if hashes:
        for row in session.scalars(
            select(Inbound)
            .where(Inbound.content_hash.in_(hashes), Inbound.duplicate_of.is_(None),
                   Inbound.action != Action.QUARANTINE, Inbound.state != InboundState.RETRIED)
            .order_by(Inbound.id)
        ):
            found.setdefault(row.content_hash, row)
    return found


class _HandlingFailed(Exception):
    """A handler failed in a batch handled without SAVEPOINTs: handle it again with them."""

    def __init__(self, uid: str | None) -> None:
        super().__init__(uid)
        self.uid = uid  # None: a held row of the batch was refused, whose is not known


class _Replay:
    """Parse results of a batch, kept so that handling it a second time parses nothing."""

    def __init__(self, results: Iterator[InboundMessage | Exception]) -> None:
        self._results = results
        self._seen: list[InboundMessage | Exception] = []

    def again(self) -> Iterator[InboundMessage | Exception]:
        yield from list(self._seen)
        for result in self._results:
            self._seen.append(result)
            yield result


def handle_batch(app: App, source: Source, uidvalidity: str, batch: list[RawMessage],
                 parser: BatchParser | None = None, decide: Decide = classify) -> list[Outcome]:
    """Classify and handle a batch in one transaction; return what is left to do after it.

    What every message needs from the database (is it known, is it a copy) is asked once
    for the whole batch, while ``parser`` may still be parsing its messages. Handlers
    seldom fail, so the batch is first handled without a SAVEPOINT per message (they cost
    a tenth of the time); its rows are flushed once, at its end (or when a query needs
    them), and its events and emails are written then (:class:`bot.store.db.RowBuffer`). If a
    handler, the flush or that write fails, the attempt is rolled back whole and the batch
    is handled again with a SAVEPOINT per message and every row written at once, so that
    the failing message goes to quarantine alone. Nothing leaves
    the transaction before its commit, so the first attempt leaves no trace.
    """
    parser = parser or BatchParser(app.rulebook.undeclared_charsets, workers=0)
    replay: _Replay | None = None

    def parse(new: list[RawMessage], hashes: list[str]) -> Iterator[InboundMessage | Exception]:
        nonlocal replay
        if replay is None:
            replay = _Replay(parser.parse([raw.data for raw in new], hashes))
        return replay.again()

    if not STRAIGHT_THROUGH:
        return _handle_batch(app, source, uidvalidity, batch, parse, decide, savepoints=True)
    try:
        return _handle_batch(app, source, uidvalidity, batch, parse, decide, savepoints=False)
    except _HandlingFailed as failed:
        log.warning("%s failed: its batch is handled again, each message on its own",
                    f"uid {failed.uid}" if failed.uid else "writing the batch's rows")
        return _handle_batch(app, source, uidvalidity, batch, parse, decide, savepoints=True)


def _handle_batch(app: App, source: Source, uidvalidity: str, batch: list[RawMessage],
                  parse: Callable[[list[RawMessage], list[str]],
                                  Iterator[InboundMessage | Exception]],
                  decide: Decide, savepoints: bool) -> list[Outcome]:
    done: list[tuple[RawMessage, Inbound, InboundMessage | None]] = []
    with app.transaction() as session:
        rows = RowBuffer.hold(session) if not savepoints else None
        if len(batch) >= ALL_AT_ONCE:
            count_all_at_once(session)
        existing = {
            row.uid: row for row in session.scalars(
                select(Inbound).where(Inbound.mailbox == source.mailbox,
                                      Inbound.uidvalidity == uidvalidity,
                                      Inbound.uid.in_([raw.uid for raw in batch])))
        }
        new = [raw for raw in batch if raw.uid not in existing]
        hashes = [content_hash(raw.data) for raw in new]
        fresh = parse(new, hashes)
        originals = _originals(session, set(hashes))
        for raw in batch:
            known = existing.get(raw.uid)
            if known is not None:
                if known.state == InboundState.DONE:
                    continue  # left in the inbox on purpose, already decided
                # Committed by an earlier run that stopped before filing it: finish now.
                message = None if known.action == Action.QUARANTINE else _reparse(app, raw)
                done.append((raw, known, message))
                continue
            now = app.clock()
            row_base: dict[str, object] = {
                "mailbox": source.mailbox,
                "uidvalidity": uidvalidity,
                "uid": raw.uid,
                "received_at": raw.internal_date or now,
                "processed_at": now,
                "state": InboundState.COMMITTED,
            }
            msg = next(fresh)
            if isinstance(msg, Exception):
                # Unparsable: nothing was written for it, so no SAVEPOINT is needed.
                row = _quarantine(session, app, raw, row_base,
                                  f"{type(msg).__name__}: {msg}"[:2000])
                log.warning("uid %s quarantined: %s", raw.uid, type(msg).__name__)
                done.append((raw, row, None))
                continue
            try:
                if savepoints:
                    with session.begin_nested():
                        row = _handle_one(session, app, raw, msg, row_base, originals, decide)
                else:
                    # Not flushed here: the batch's rows are written by one flush at its
                    # end, which groups each table's INSERTs (a flush per message cost a
                    # fifth of the time of a message). Queries in between flush first.
                    row = _handle_one(session, app, raw, msg, row_base, originals, decide)
                if row.duplicate_of is None:
                    originals.setdefault(msg.content_hash, row)
            except (OperationalError, InterfaceError):
                raise  # the database itself failed: the whole batch is tried again later
            except Exception as exc:  # any failure of one message must not stop the batch
                if not savepoints:
                    raise _HandlingFailed(raw.uid) from exc
                reason = f"{type(exc).__name__}: {exc}"[:2000]
                log.warning("uid %s quarantined: %s", raw.uid, type(exc).__name__)
                with session.begin_nested():
                    row = _quarantine(session, app, raw, row_base, reason)
                done.append((raw, row, None))
                continue
            done.append((raw, row, msg))
        try:
            session.flush()
            if rows is not None:
                rows.release()
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:  # a message's row refused: find which, message by message
            raise _HandlingFailed(None) from exc
        plans = _dossier_plans(session, [row for _, row, _ in done])
    earlier = {row.id for row in existing.values()}
    return [_outcome(raw.uid, row, msg, plans[row.id], resumed=row.id in earlier)
            for raw, row, msg in done]


def _reparse(app: App, raw: RawMessage) -> InboundMessage | None:
    try:
        return parse_message(raw.data, app.rulebook.undeclared_charsets)
    except MessageError:
        return None


def _outcome(uid: str, row: Inbound, msg: InboundMessage | None,
             plan: tuple[str | None, list[str]], resumed: bool) -> Outcome:
    dossier, absorb = plan
    return Outcome(uid=uid, row_id=row.id, action=row.action, folder=row.folder, message=msg,
                   received_at=row.received_at or row.processed_at, dossier=dossier,
                   absorb=absorb, resumed=resumed)


def start_dossiers(app: App, outcomes: list[Outcome], writes: DossierWrites
                   ) -> dict[int, Future[None]]:
    """Begin writing the batch's dossiers (by ``writes``' thread): one future per message
    that has a dossier, which :func:`finish_batch` waits for before filing it."""
    return {outcome.row_id: writes.submit(_write_dossier, app, outcome)
            for outcome in outcomes if outcome.dossier is not None}


def _write_dossier(app: App, outcome: Outcome) -> None:
    assert outcome.dossier is not None
    app.dossiers.absorb(outcome.dossier, outcome.absorb)
    if outcome.message is not None:
        # Named from what the row says, so that a second attempt after a crash rewrites
        # the same files instead of adding copies.
        app.dossiers.store_message(
            outcome.dossier, outcome.message.raw, outcome.message.content_hash,
            outcome.received_at or app.clock(), outcome.message.attachments,
        )


def finish_batch(app: App, source: Source, outcomes: list[Outcome],
                 filing: FilingLog | None = None,
                 written: dict[int, Future[None]] | None = None,
                 then: Callable[[Session], None] | None = None) -> None:
    """After commit: write dossiers, file messages, and record that they are done.

    ``written``: the dossier writes :func:`start_dossiers` began for these outcomes;
    without it they are done here. A message is filed only once its dossier is written.
    ``then``: more bookkeeping for the same transaction as the one recording them done
    (the watermark), once each outcome says whether it is ``finished``.
    A folder that cannot be filed into leaves its messages ``committed`` in the inbox,
    noted in ``filing`` (shown by ``reclambot status`` and the director's digest); the
    other folders are filed all the same, and the next pass tries again.
    """
    if written is None:
        written = start_dossiers(app, outcomes, DossierWrites(app.dossiers, background=False))
    by_folder: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.dossier is not None:
            try:
                written[outcome.row_id].result()
            except (OSError, StoreError) as exc:
                # Not filed, so the next run writes the dossier again.
                log.error("dossier %s not written: %s", outcome.dossier, exc)
                continue
        by_folder[outcome.folder].append(outcome)
    for folder, group in by_folder.items():
        if folder:
            try:
                source.file([o.uid for o in group], folder,
                            again=[o.uid for o in group if o.resumed])
            except (SourceError, ConfigError) as exc:
                log.error("%d message(s) not filed in %s (tried again at the next pass): %s",
                          len(group), folder, exc)
                if filing is not None:
                    filing.failed(folder, str(exc), len(group))
                continue
            if filing is not None:
                filing.succeeded(folder)
        for o in group:
            o.finished = True
    _mark_done(app, [o.row_id for o in outcomes if o.finished], then)


def _mark_done(app: App, row_ids: list[int],
               then: Callable[[Session], None] | None = None) -> None:
    if row_ids or then is not None:
        with app.transaction() as session:
            if row_ids:
                # One UPDATE: loading the rows to change one column cost more than the
                # change.
                session.execute(update(Inbound).where(Inbound.id.in_(row_ids))
                                .values(state=InboundState.DONE))
            if then is not None:
                then(session)


def _committed(session: Session, mailbox: str, uidvalidity: str) -> list[tuple[int, str]]:
    """The rows of ``mailbox`` committed but not yet recorded as filed."""
    return [(row_id, uid) for row_id, uid in session.execute(
        select(Inbound.id, Inbound.uid).where(
            Inbound.mailbox == mailbox, Inbound.uidvalidity == uidvalidity,
            Inbound.state == InboundState.COMMITTED))]


def settle_interrupted(app: App, source: Source, rows: list[tuple[int, str]]) -> int:
    """Rows an earlier run committed but did not mark done (``rows``, as
    :func:`_committed` read them): done if already filed.

    A crash between moving a message and recording it leaves the row ``committed`` while
    the message is no longer in the inbox (its dossier was written before the move).
    Messages still in the inbox are finished by the normal fetch instead.
    """
    if not rows:
        return 0
    still_there = source.present([uid for _, uid in rows])
    gone = [row_id for row_id, uid in rows if uid not in still_there]
    _mark_done(app, gone)
    return len(gone)


def _watermark(session: Session, mailbox: str) -> MailboxState | None:
    return session.get(MailboxState, mailbox)


def process_mailbox(app: App, source: Source, sink: Sink | None = None,
                    progress: Callable[[int], None] | None = None,
                    note_poll: bool = True, send_ahead: bool = False) -> RunSummary:
    """Handle everything waiting in ``source``; send the outbox after each batch.

    The outbox never waits on the mailbox: when the source fails (server down, a folder
    that cannot be reached), what is committed is still sent before the error is raised.
    ``note_poll``: record the time of this pass for ``reclambot status`` (a watcher does
    it once a minute, not at every pass: each write is a transaction).
    ``send_ahead``: a backlog's emails may be sent by a worker process while the next
    batches are handled (:mod:`bot.outbound.sendahead`); every email is sent or booked
    when the pass returns all the same.
    """
    summary = RunSummary()
    writes = DossierWrites(app.dossiers)
    ahead = SendAhead.for_app(app, sink) if send_ahead else None
    if ahead is not None:
        recover_journal(app)  # an earlier pass that failed may have left one
    try:
        try:
            _process_mailbox(app, source, summary, sink, progress, writes, ahead)
        except SourceError:
            if sink is not None:
                try:
                    _send_rest(app, sink, ahead, writes, summary, always=True)
                except ReclambotError as exc:  # the source's failure is the one to report
                    log.warning("outbox not sent either: %s", exc)
            raise
        if sink is not None:
            _send_rest(app, sink, ahead, writes, summary)
    finally:
        if ahead is not None:
            # A pass that failed leaves no worker behind; its journal, for the next pass.
            ahead.stop()
        writes.close()
    if note_poll:
        record_setting(app, "last_poll", app.clock().isoformat(timespec="seconds"))
    return summary


def _send_rest(app: App, sink: Sink, ahead: SendAhead | None, writes: DossierWrites,
               summary: RunSummary, always: bool = False) -> None:
    """The worker's last answers booked and the worker stopped, then what is still due
    sent here: what the worker could not send and what its answers queued (the
    director's notice of a refusal) or, ``always`` or after a pass that handled nothing,
    the whole outbox (a pass that handled a batch sent it right after)."""
    started = ahead is not None and ahead.process is not None
    if ahead is not None:
        ahead.close(writes, summary.sent)
    if started or always or not summary.fetched:
        _add_report(summary.sent, send_pending(app, sink, copies=writes))


def _process_mailbox(app: App, source: Source, summary: RunSummary, sink: Sink | None,
                     progress: Callable[[int], None] | None, writes: DossierWrites,
                     ahead: SendAhead | None) -> None:
    uidvalidity = source.uidvalidity()
    # What the pass needs to know first, read in one transaction.
    with app.sessions() as session:
        committed = _committed(session, source.mailbox, uidvalidity)
        state = _watermark(session, source.mailbox) if source.ordered else None
        filing = FilingLog(app, filing_failures(session))
    settle_interrupted(app, source, committed)
    after = 0
    if state is not None and state.uidvalidity == uidvalidity:
        after = state.last_uid
    elif state is not None:
        log.warning("UIDVALIDITY of %s changed: every message is checked again",
                    source.mailbox)
    parser = BatchParser(app.rulebook.undeclared_charsets, app.config.bot.parse_workers)
    try:
        _process(app, source, uidvalidity, after, parser, summary, sink, progress, writes,
                 filing, ahead)
    finally:
        parser.close()


def _advance(source: Source, uidvalidity: str, batch: list[RawMessage],
             outcomes: list[Outcome]) -> Callable[[Session], None] | None:
    """The watermark's move past ``batch``, once every message of it is filed."""
    if not (source.ordered and batch):
        return None
    highest = max(int(r.uid) for r in batch)

    def advance(session: Session) -> None:
        if not all(o.finished for o in outcomes):
            return
        state = _watermark(session, source.mailbox)
        if state is None:
            session.add(MailboxState(mailbox=source.mailbox, uidvalidity=uidvalidity,
                                     last_uid=highest))
        elif state.uidvalidity != uidvalidity:
            state.uidvalidity, state.last_uid = uidvalidity, highest
        else:
            state.last_uid = max(state.last_uid, highest)

    return advance


def _process(app: App, source: Source, uidvalidity: str, after: int, parser: BatchParser,
             summary: RunSummary, sink: Sink | None,
             progress: Callable[[int], None] | None, writes: DossierWrites,
             filing: FilingLog, ahead: SendAhead | None) -> None:
    for batch in source.fetch(after, app.config.bot.batch_size,
                              app.config.limits.max_message_bytes):
        outcomes = handle_batch(app, source, uidvalidity, batch, parser)
        # The dossiers are written while the batch's emails go out; the messages are
        # filed once both are done. Sending before filing changes nothing after a crash:
        # a message still in the inbox is only filed again, its emails are booked sent.
        written = start_dossiers(app, outcomes, writes)
        unsent: ReclambotError | None = None
        if sink is not None:
            try:
                if ahead is None or not ahead.hand_over(writes, summary.sent, len(batch)):
                    _add_report(summary.sent, send_pending(app, sink, copies=writes))
            except ReclambotError as exc:  # the server down: the batch is filed all the same
                unsent = exc
        # Recorded done and the watermark moved past the batch in one transaction.
        finish_batch(app, source, outcomes, filing, written,
                     _advance(source, uidvalidity, batch, outcomes))
        for outcome in outcomes:
            summary.add(outcome)
        if progress is not None:
            progress(len(batch))
        if unsent is not None:
            raise unsent
        # The loop variables would keep this batch alive while the next one downloads.
        del batch, outcomes, written


def _add_report(total: SendReport, part: SendReport) -> None:
    total.sent += part.sent
    total.deferred += part.deferred
    total.refused += part.refused
