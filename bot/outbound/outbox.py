"""Transactional outbox: emails are rendered and stored with the change that causes them,
then handed to the sink (the bytes are :mod:`bot.outbound.compose`'s, the daily limit of
automatic answers :mod:`bot.outbound.autoreply`'s). A crash before commit sends
nothing; a crash after commit sends later. Each row has its fixed Message-ID, so a resend
after a crash between the SMTP acceptance and the bookkeeping is recognisable as the same
email.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Executable, Row, bindparam, or_, select, update
from sqlalchemy.orm import Session

from bot.core.protocol import new_message_id
from bot.core.states import EmailKind, OutboxStatus
from bot.errors import DeliveryRefused, StoreError, TransientError
from bot.outbound.addresses import deliverable
from bot.outbound.autoreply import over_daily_limit
from bot.outbound.compose import Email, compose, reply_subject
from bot.store.db import append_row
from bot.store.dossier import DossierWrites
from bot.store.models import Complaint, Contact, Event, Outbox, Ticket

if TYPE_CHECKING:
    from bot.app import App
    from bot.outbound.sinks import Sink

log = logging.getLogger(__name__)

BACKOFF_SECONDS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600)


@dataclass
class SendReport:
    """What one pass over the outbox did."""

    sent: int = 0
    deferred: int = 0
    refused: int = 0


def enqueue(session: Session, app: App, email: Email, *, complaint: Complaint | None = None,
            contact: Contact | None = None, ticket: Ticket | None = None) -> str | None:
    """Render ``email`` and add it to the outbox inside the caller's transaction, linked to
    the register entry it is about.

    Returns the email's Message-ID. An automatic answer (``auto-replied``) to an address
    that already got the rules' daily maximum is not queued (``None``): the last defence
    against a robot no rule recognised (:mod:`bot.outbound.autoreply`).
    """
    now = app.clock()
    # The envelope and the header carry each address as the mail system can: ASCII
    # where an A-label makes it so (bot.outbound.addresses).
    if not all(address.isascii() for address in email.to):
        email = replace(email, to=[deliverable(address) for address in email.to])
    to_address = email.to[0].lower() if email.to else ""
    limit = over_daily_limit(session, app, email, to_address, now)
    if limit is not None:
        append_row(session, Event, at=now, kind="auto_reply_limited", origin="",
                   detail={"kind": email.kind, "limit": limit},
                   complaint_id=complaint, contact_id=contact, ticket_id=ticket)
        return None
    if email.answering is None and to_address:
        email = _threaded(session, email, to_address, complaint, ticket, contact)
    rendered = app.renderer.render(email.kind, reference=email.reference, **email.context)
    if email.her_subject:
        rendered = replace(rendered, subject=reply_subject(email.her_subject, rendered.subject))
    org = app.config.organisation
    message_id = new_message_id(org.bot_address.rpartition("@")[2])
    raw = compose(email, rendered, sender=(org.name, org.bot_address), message_id=message_id,
                  now=now)
    append_row(
        session, Outbox,
        message_id=message_id,
        kind=email.kind,
        envelope_from=org.bot_address,
        recipients=list(email.to),
        to_address=to_address,
        automatic=email.automatic,
        subject=rendered.subject,
        raw=raw,
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        complaint_id=complaint,
        contact_id=contact,
        ticket_id=ticket,
    )
    return message_id


@dataclass(frozen=True)
class _Earlier:
    """An email of ours this one follows in its reader's conversation."""

    message_id: str
    references: tuple[str, ...] = ()


_LAST_TO = (select(Outbox.message_id).where(Outbox.to_address == bindparam("address"))
            .order_by(Outbox.id.desc()).limit(1))


def _threaded(session: Session, email: Email, to_address: str, complaint: Complaint | None,
              ticket: Ticket | None, contact: Contact | None) -> Email:
    """An email about a register entry that answers no message (a response, a reminder,
    the mediation information) follows the last one we sent its reader about it: her
    mail client shows one conversation, not one per email."""
    for column, row in ((Outbox.complaint_id, complaint), (Outbox.ticket_id, ticket),
                        (Outbox.contact_id, contact)):
        if row is None or row.id is None:
            continue
        earlier = session.connection().execute(
            _LAST_TO.where(column == row.id), {"address": to_address}).scalar()
        if earlier:
            return replace(email, answering=_Earlier(earlier))
    return email


_TICKET_LINKS = select(Ticket.id, Ticket.reference, Ticket.complaint_id).where(
    Ticket.id.in_(bindparam("ids", expanding=True)))
_CONTACT_LINKS = select(Contact.id, Contact.reference, Contact.complaint_id).where(
    Contact.id.in_(bindparam("ids", expanding=True)))
_COMPLAINT_NUMBERS = select(Complaint.id, Complaint.number).where(
    Complaint.id.in_(bindparam("ids", expanding=True)))


class _Links(Protocol):
    complaint_id: int | None
    ticket_id: int | None
    contact_id: int | None


def _by_id(connection: Connection, statement: Executable, ids: set[int]
           ) -> dict[int, Row[Any]]:
    """The rows of ``statement`` for ``ids``, by their first column (no query for none)."""
    if not ids:
        return {}
    return {row[0]: row for row in connection.execute(statement, {"ids": sorted(ids)})}


def dossier_references(connection: Connection, rows: Mapping[int, _Links]
                       ) -> dict[int, str | None]:
    """The dossier each email of ``rows`` belongs to (by key): its complaint's, once its
    contact or ticket entered one; ``None`` for an email of no dossier.

    Three plain column queries at most, whatever the number of rows: a send pass asks once
    for all its emails (a query per email cost a tenth of its bookkeeping), and loading a
    complaint would also load its failures and actions.
    """
    unlinked = [r for r in rows.values() if r.complaint_id is None]
    tickets = _by_id(connection, _TICKET_LINKS,
                     {r.ticket_id for r in unlinked if r.ticket_id is not None})
    contacts = _by_id(connection, _CONTACT_LINKS,
                      {r.contact_id for r in unlinked if r.contact_id is not None})
    found: dict[int, str | int | None] = {}  # a reference, or a complaint to look up
    for key, row in rows.items():
        complaint_id = row.complaint_id
        reference: str | None = None
        for entries, linked in ((tickets, row.ticket_id), (contacts, row.contact_id)):
            if complaint_id is None and linked is not None:
                entry = entries.get(linked)
                if entry is not None and entry.complaint_id is None:
                    reference = str(entry.reference)
                    break
                complaint_id = entry.complaint_id if entry is not None else None
        found[key] = reference if reference is not None else complaint_id
    numbers = _by_id(connection, _COMPLAINT_NUMBERS,
                     {value for value in found.values() if isinstance(value, int)})
    return {key: value if not isinstance(value, int)
            else _number(numbers.get(value)) for key, value in found.items()}


def _number(row: Row[Any] | None) -> str | None:
    return str(row.number) if row is not None and row.number is not None else None


def dossier_reference(connection: Connection, row: _Links) -> str | None:
    """The dossier one email belongs to (:func:`dossier_references` for a single row)."""
    return dossier_references(connection, {0: row})[0]


def _smtp_code(error: str) -> str:
    """The reply code of an SMTP error, for logs that must not carry addresses."""
    codes = re.findall(r"\b[245]\d\d\b", error)
    return f"SMTP {codes[0]}" if codes else error.split(":", 1)[0]


#: The claimant of ``reclambot run``: one process at a time holds its lock.
RUNNER = "run"
#: A claim by another sender (the web form's) older than this is a dead process's.
STALE_CLAIM = dt.timedelta(minutes=10)


def recover_interrupted(app: App) -> int:
    """Rows left in ``sending`` by a process that died: sent again, with the same Message-ID.

    Called by the runner once it holds its lock, so no other runner is alive: its claims
    are reset at once. Another sender's (``reclambot serve``) may still be sending: its
    claims are reset only once stale. Whether the server accepted such an email before the
    crash cannot be known; sending it again with its fixed Message-ID lets receivers
    recognise the copy. The row is marked, so that the outbox shows it.
    """
    dead = or_(Outbox.claimed_by.is_(None), Outbox.claimed_by == RUNNER,
               Outbox.claimed_at < app.clock() - STALE_CLAIM)
    with app.transaction() as session:
        result = session.execute(
            update(Outbox).where(Outbox.status == OutboxStatus.SENDING, dead)
            .values(status=OutboxStatus.PENDING, interrupted=True)
        )
        return result.rowcount or 0  # type: ignore[attr-defined]


def _report_refusal(session: Session, app: App, row: Outbox, error: str) -> None:
    """Tell the director once that an email was refused (never about her own mail)."""
    if row.to_address in app.config.organisation.director_addresses:
        return
    reference = dossier_reference(session.connection(), row)
    complaint = session.get(Complaint, row.complaint_id) if row.complaint_id else None
    tag = (app.tokens.tag(complaint.number, complaint.key_generation) if complaint
           else f"[{reference or 'envoi'}]")
    enqueue(session, app, Email(
        EmailKind.DIRECTOR_DELIVERY_FAILURE, list(app.config.organisation.director_addresses),
        context={"row": row, "error": error, "reference_of": reference, "tag": tag,
                 "commands": complaint is not None},
        reference=reference or "envoi", auto_submitted="auto-generated"), complaint=complaint)


# Only a row still pending is taken, so two senders never both send it; the columns the
# send needs come back with the claim (one statement instead of a SELECT and an UPDATE).
_CLAIM = (update(Outbox).where(Outbox.id == bindparam("row_id"),
                               Outbox.status == OutboxStatus.PENDING)
          .values(status=OutboxStatus.SENDING, attempts=Outbox.attempts + 1,
                  claimed_by=bindparam("claimant"), claimed_at=bindparam("now"))
          .returning(Outbox.kind, Outbox.envelope_from, Outbox.recipients, Outbox.raw))
_SENT = (update(Outbox).where(Outbox.id == bindparam("row_id"))
         .values(status=OutboxStatus.SENT, sent_at=bindparam("sent_at")))


def not_sent(session: Session, app: App, row_id: int, outcome: str, error: str,
             now: dt.datetime, report: SendReport) -> None:
    """Book a deferral (retried later, with backoff) or a refusal (told to the director)."""
    row = session.get(Outbox, row_id)
    assert row is not None
    row.last_error = error
    if outcome == "deferred":
        row.status = OutboxStatus.PENDING
        delay = BACKOFF_SECONDS[min(row.attempts, len(BACKOFF_SECONDS)) - 1]
        row.next_attempt_at = now + dt.timedelta(seconds=delay)
        report.deferred += 1
        # The server's text may quote the recipient: it stays in the row.
        log.warning("outbox %s (%s) deferred, attempt %s: %s", row.id, row.kind,
                    row.attempts, _smtp_code(error))
        return
    row.status = OutboxStatus.FAILED
    report.refused += 1
    log.error("outbox %s (%s) refused permanently: %s", row.id, row.kind, _smtp_code(error))
    _report_refusal(session, app, row, error)


@dataclass
class _Attempt:
    """One email handed to the sink, whose outcome is yet to be booked."""

    row_id: int
    claimed: Any  # the row's columns, as _CLAIM read them
    outcome: str  # sent, deferred or failed
    error: str = ""


def _book(connection: Connection, app: App, attempt: _Attempt, now: dt.datetime,
          report: SendReport) -> dt.datetime | None:
    """Record what became of ``attempt``; if it was sent, when."""
    if attempt.outcome != "sent":
        # Seldom: the ORM, for the backoff and the director's notice, inside the same
        # transaction (the session joins it and leaves committing to it).
        with Session(bind=connection, expire_on_commit=False) as session:
            not_sent(session, app, attempt.row_id, attempt.outcome, attempt.error, now,
                     report)
            session.flush()
        return None
    sent_at = app.clock()
    connection.execute(_SENT, {"row_id": attempt.row_id, "sent_at": sent_at})
    report.sent += 1
    return sent_at


def keep_sent_copy(app: App, kind: str, row_id: int, raw: bytes, reference: str,
                   sent_at: dt.datetime) -> None:
    """After the commit: a copy of the sent email in its dossier."""
    try:
        app.dossiers.store_sent(reference, sent_at, kind, row_id, raw)
    except (OSError, StoreError) as exc:
        # The email is sent and its row keeps the full copy (``outbox.raw``, in the
        # audit file and GDPR exports): a dossier that cannot be written must not stop
        # the emails after it.
        log.error("copy of %s (%s) not kept in dossier %s: %s", kind, row_id, reference, exc)


def send_pending(app: App, sink: Sink, limit: int = 500, claimant: str = RUNNER,
                 copies: DossierWrites | None = None) -> SendReport:
    """Send every due email over one sink connection; bookkeeping committed per email.

    ``claimant`` names the sender in each row it takes (:func:`recover_interrupted`);
    ``copies`` writes the dossier copies of the sent emails (by its thread, while the
    next ones are sent; waited for before returning), else they are written here.

    Each row goes ``pending`` → ``sending`` (committed) → handed to the sink → ``sent``
    (committed): a crash leaves at most the one row being sent in ``sending``. The outcome
    of one email and the claim of the next are committed together, one transaction per
    email instead of two (the bookkeeping cost more than the SMTP exchange), which keeps
    that window to one row.
    """
    report = SendReport()
    now = app.clock()
    with app.sessions() as session:
        due = {row.id: row for row in session.execute(
            select(Outbox.id, Outbox.complaint_id, Outbox.ticket_id, Outbox.contact_id)
            .where(Outbox.status == OutboxStatus.PENDING, Outbox.next_attempt_at <= now)
            .order_by(Outbox.id)
            .limit(limit)
        )}
        if not due:
            return report
        # Read with the pass's list: the copy of an email goes to the dossier its entry was
        # in when the pass began (a pass lasts seconds; a complaint that absorbs a contact
        # meanwhile takes that contact's dossier as it then is).
        references = dossier_references(session.connection(), due)
    writes = copies if copies is not None else DossierWrites(app.dossiers)
    try:
        _send_due(app, sink, references, now, claimant, writes, report)
    finally:
        if copies is None:
            writes.close()
        else:
            copies.wait()
    return report


def _send_due(app: App, sink: Sink, due: Mapping[int, str | None], now: dt.datetime,
              claimant: str, writes: DossierWrites, report: SendReport) -> None:
    """Send the rows ``due`` (their ids, in order, with their dossiers)."""
    # One database connection for the pass, and Core statements on it: a session per
    # email cost more than the SMTP exchange.
    with sink.connect() as connection, app.engine.connect() as database:
        done: _Attempt | None = None  # handed to the sink, not booked yet
        for row_id in [*due, None]:
            if row_id is None and done is None:
                break  # nothing left to book
            with database.begin():
                sent_at = _book(database, app, done, now, report) if done else None
                claimed = None
                if row_id is not None:
                    claimed = database.execute(_CLAIM, {"row_id": row_id, "claimant": claimant,
                                                        "now": now}).first()
            if done is not None and sent_at is not None:
                reference = due[done.row_id]
                log.info("sent %s (%s) for %s", done.claimed.kind, done.row_id,
                         reference or "-")
                if reference is not None:
                    writes.submit(keep_sent_copy, app, done.claimed.kind, done.row_id,
                                  done.claimed.raw, reference, sent_at)
            done = None
            if claimed is None or row_id is None:
                continue  # another pass sent it meanwhile, or the last one is booked
            attempt = _Attempt(row_id, claimed, "sent")
            try:
                connection.send(claimed.envelope_from, list(claimed.recipients), claimed.raw)
            except TransientError as exc:
                attempt.outcome, attempt.error = "deferred", str(exc)[:2000]
            except DeliveryRefused as exc:
                attempt.outcome, attempt.error = "failed", str(exc)[:2000]
            done = attempt
