"""The pipeline, top to bottom: source → parse → classify → handle → outbox → sink.

One batch of messages is one database transaction, each message in its own SAVEPOINT so
that a message that fails goes to quarantine alone while the batch goes on. Only after
the commit does the bot touch the world: dossier files are written, messages are moved
to their folders, the watermark advances, and the outbox is sent. A crash anywhere
leaves a state from which the next run finishes the work without doing anything twice:

- before commit: nothing happened; the batch is fetched and handled again;
- after commit, before filing: the message is still in the inbox, its row says
  ``committed``; the next run sees the row, writes the dossier and files it;
- after sending, before the outbox row is marked: the email is sent again with the same
  Message-ID (the only window SMTP leaves open).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from bot.app import App
from bot.classify import Action, Match, classify
from bot.config import LimitsConfig
from bot.errors import MessageError
from bot.handlers import handle
from bot.message import InboundMessage, content_hash, parse_message
from bot.models import Complaint, Contact, Inbound, MailboxState, Ticket
from bot.outbox import SendReport, send_pending
from bot.sinks import Sink
from bot.sources import RawMessage, Source
from bot.status import record_setting

log = logging.getLogger(__name__)

# Where each action's message ends: a folder of [folders], or "" to stay in the inbox.
FOLDER_OF = {
    Action.ROBOT: "ignored",
    Action.BOUNCE: "ignored",
    Action.TOO_LARGE: "quarantine",
    Action.COMMAND: "processed",
    Action.ALERT: "ignored",
    Action.DIRECTOR: "",
    Action.LEAVE: "",
    Action.SUBMISSION: "processed",
    Action.TICKET_REPLY: "processed",
    Action.CONTACT_REPLY: "processed",
    Action.COMPLAINT_REPLY: "processed",
    Action.NEW_CONTACT: "processed",
}
QUARANTINE = "quarantine"
DUPLICATE = "duplicate"
RESUMED = "resumed"


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


@dataclass
class RunSummary:
    """Counts of one run, for the command line and the tests."""

    fetched: int = 0
    actions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sent: SendReport = field(default_factory=SendReport)

    def add(self, outcome: Outcome) -> None:
        self.fetched += 1
        self.actions[outcome.action] += 1


def _folder_name(app: App, key: str) -> str:
    return getattr(app.config.folders, key) if key else ""


def over_limit(raw: RawMessage, msg: InboundMessage, limits: LimitsConfig) -> str | None:
    """Why a message exceeds ``[limits]``, or ``None``."""
    if raw.headers_only or raw.size > limits.max_message_bytes:
        return f"message of {raw.size} bytes, over max_message_bytes ({limits.max_message_bytes})"
    if len(msg.attachments) > limits.max_attachments:
        return (f"{len(msg.attachments)} attachments, over max_attachments "
                f"({limits.max_attachments})")
    largest = max((len(a.data) for a in msg.attachments), default=0)
    if largest > limits.max_attachment_bytes:
        return (f"an attachment of {largest} bytes, over max_attachment_bytes "
                f"({limits.max_attachment_bytes})")
    return None


def _dossier_plan(session: Session, row: Inbound) -> tuple[str | None, list[str]]:
    """Which dossier receives this message, and which earlier dossiers it absorbs."""
    # Plain column queries: loading the objects (and their relationships) costs more.
    if row.complaint_id is not None:
        number = session.scalar(select(Complaint.number).where(Complaint.id == row.complaint_id))
        earlier = [
            *session.scalars(select(Contact.reference)
                             .where(Contact.complaint_id == row.complaint_id)),
            *session.scalars(select(Ticket.reference)
                             .where(Ticket.complaint_id == row.complaint_id)),
        ]
        return number, earlier
    if row.ticket_id is not None:
        return session.scalar(select(Ticket.reference).where(Ticket.id == row.ticket_id)), []
    if row.contact_id is not None:
        return session.scalar(select(Contact.reference).where(Contact.id == row.contact_id)), []
    return None, []


def _quarantine(session: Session, app: App, raw: RawMessage, row_base: dict[str, object],
                reason: str) -> Inbound:
    row = Inbound(
        **row_base,
        content_hash=content_hash(raw.data),
        action=QUARANTINE,
        rules=[{"rule": QUARANTINE, "reason": reason}],
        folder=app.config.folders.quarantine,
        error=reason,
    )
    session.add(row)
    session.flush()
    return row


def _handle_one(session: Session, app: App, raw: RawMessage, row_base: dict[str, object]
                ) -> tuple[Inbound, InboundMessage]:
    msg = parse_message(raw.data, app.rulebook.undeclared_charsets)
    base = {
        **row_base,
        "content_hash": msg.content_hash,
        "message_id": msg.message_id[:998],
        "sender": msg.from_address[:320],
        "subject": msg.subject,
    }
    original = session.scalar(
        select(Inbound)
        .where(Inbound.content_hash == msg.content_hash, Inbound.duplicate_of.is_(None),
               Inbound.action != QUARANTINE)
        .order_by(Inbound.id)
    )
    if original is not None:
        # The same message again (appended twice, fetched again after a UIDVALIDITY
        # change): it follows the original, and is never handled a second time.
        if original.state == "committed" and original.uidvalidity != row_base["uidvalidity"]:
            # The original was handled but never filed, and its UID is gone with the old
            # UIDVALIDITY: this copy is that very message; it is filed in its place.
            original.state = "done"
            action, folder = RESUMED, original.folder
            reason = f"inbound #{original.id} again, never filed: filed in its place now"
        else:
            action = DUPLICATE
            folder = "" if not original.folder else app.config.folders.ignored
            reason = f"same content as inbound #{original.id}"
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
        session.flush()
        return row, msg
    decision = classify(session, msg, app, over_limit(raw, msg, app.config.limits))
    row = Inbound(
        **base,
        action=str(decision.action),
        rules=[m.as_dict() for m in decision.matches],
        folder=_folder_name(app, FOLDER_OF[decision.action]),
    )
    session.add(row)
    session.flush()
    handle(session, app, msg, decision, row)
    return row, msg


def handle_batch(app: App, source: Source, uidvalidity: str, batch: list[RawMessage]
                 ) -> list[Outcome]:
    """Classify and handle a batch in one transaction; return what is left to do after it."""
    outcomes: list[Outcome] = []
    with app.transaction() as session:
        for raw in batch:
            key = (source.mailbox, uidvalidity, raw.uid)
            existing = session.scalar(
                select(Inbound).where(
                    Inbound.mailbox == key[0], Inbound.uidvalidity == key[1], Inbound.uid == key[2]
                )
            )
            if existing is not None:
                if existing.state == "done":
                    continue  # left in the inbox on purpose, already decided
                # Committed by an earlier run that stopped before filing it: finish now.
                message = None if existing.action == QUARANTINE else _reparse(app, raw)
                outcomes.append(_outcome(session, raw.uid, existing, message))
                continue
            now = app.clock()
            row_base: dict[str, object] = {
                "mailbox": source.mailbox,
                "uidvalidity": uidvalidity,
                "uid": raw.uid,
                "received_at": raw.internal_date or now,
                "processed_at": now,
                "state": "committed",
            }
            try:
                with session.begin_nested():
                    row, msg = _handle_one(session, app, raw, row_base)
            except (OperationalError, InterfaceError):
                raise  # the database itself failed: the whole batch is tried again later
            except Exception as exc:  # any failure of one message must not stop the batch
                reason = f"{type(exc).__name__}: {exc}"[:2000]
                log.warning("uid %s quarantined: %s", raw.uid, type(exc).__name__)
                with session.begin_nested():
                    row = _quarantine(session, app, raw, row_base, reason)
                msg = None
            outcomes.append(_outcome(session, raw.uid, row, msg))
    return outcomes


def _reparse(app: App, raw: RawMessage) -> InboundMessage | None:
    try:
        return parse_message(raw.data, app.rulebook.undeclared_charsets)
    except MessageError:
        return None


def _outcome(session: Session, uid: str, row: Inbound, msg: InboundMessage | None) -> Outcome:
    dossier, absorb = _dossier_plan(session, row) if row.action != DUPLICATE else (None, [])
    return Outcome(uid=uid, row_id=row.id, action=row.action, folder=row.folder, message=msg,
                   received_at=row.received_at or row.processed_at, dossier=dossier,
                   absorb=absorb)


def finish_batch(app: App, source: Source, outcomes: list[Outcome]) -> None:
    """After commit: write dossiers, file messages, and record that they are done."""
    by_folder: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.dossier is not None:
            try:
                app.dossiers.absorb(outcome.dossier, outcome.absorb)
                if outcome.message is not None:
                    # Named from what the row says, so that a second attempt after a
                    # crash rewrites the same files instead of adding copies.
                    app.dossiers.store_message(
                        outcome.dossier, outcome.message.raw, outcome.message.content_hash,
                        outcome.received_at or app.clock(), outcome.message.attachments,
                    )
            except OSError as exc:
                # Not filed, so the next run writes the dossier again.
                log.error("dossier %s not written: %s", outcome.dossier, exc)
                continue
        by_folder[outcome.folder].append(outcome)
    for folder, group in by_folder.items():
        if folder:
            source.file([o.uid for o in group], folder)
        for o in group:
            o.finished = True
    done = [o.row_id for o in outcomes if o.finished]
    if done:
        with app.transaction() as session:
            for row in session.scalars(select(Inbound).where(Inbound.id.in_(done))):
                row.state = "done"


def settle_interrupted(app: App, source: Source, uidvalidity: str) -> int:
    """Rows an earlier run committed but did not mark done: done if already filed.

    A crash between moving a message and recording it leaves the row ``committed`` while
    the message is no longer in the inbox (its dossier was written before the move).
    Messages still in the inbox are finished by the normal fetch instead.
    """
    with app.sessions() as session:
        rows = session.execute(
            select(Inbound.id, Inbound.uid).where(
                Inbound.mailbox == source.mailbox, Inbound.uidvalidity == uidvalidity,
                Inbound.state == "committed")
        ).all()
    if not rows:
        return 0
    still_there = source.present([uid for _, uid in rows])
    gone = [row_id for row_id, uid in rows if uid not in still_there]
    if gone:
        with app.transaction() as session:
            for row in session.scalars(select(Inbound).where(Inbound.id.in_(gone))):
                row.state = "done"
    return len(gone)


def _watermark(session: Session, mailbox: str) -> MailboxState | None:
    return session.get(MailboxState, mailbox)


def process_mailbox(app: App, source: Source, sink: Sink | None = None,
                    progress: Callable[[int], None] | None = None) -> RunSummary:
    """Handle everything waiting in ``source``; send the outbox after each batch."""
    summary = RunSummary()
    uidvalidity = source.uidvalidity()
    settle_interrupted(app, source, uidvalidity)
    after = 0
    if source.ordered:
        with app.sessions() as session:
            state = _watermark(session, source.mailbox)
            if state is not None and state.uidvalidity == uidvalidity:
                after = state.last_uid
            elif state is not None:
                log.warning("UIDVALIDITY of %s changed: every message is checked again",
                            source.mailbox)
    for batch in source.fetch(after, app.config.bot.batch_size,
                              app.config.limits.max_message_bytes):
        outcomes = handle_batch(app, source, uidvalidity, batch)
        finish_batch(app, source, outcomes)
        for outcome in outcomes:
            summary.add(outcome)
        if progress is not None:
            progress(len(batch))
        if source.ordered and batch and all(o.finished for o in outcomes):
            highest = max(int(r.uid) for r in batch)
            with app.transaction() as session:
                state = _watermark(session, source.mailbox)
                if state is None:
                    session.add(MailboxState(mailbox=source.mailbox, uidvalidity=uidvalidity,
                                             last_uid=highest))
                elif state.uidvalidity != uidvalidity:
                    state.uidvalidity, state.last_uid = uidvalidity, highest
                else:
                    state.last_uid = max(state.last_uid, highest)
        if sink is not None:
            _add_report(summary.sent, send_pending(app, sink))
    if sink is not None:
        _add_report(summary.sent, send_pending(app, sink))
    record_setting(app, "last_poll", app.clock().isoformat(timespec="seconds"))
    return summary


def _add_report(total: SendReport, part: SendReport) -> None:
    total.sent += part.sent
    total.deferred += part.deferred
    total.refused += part.refused
