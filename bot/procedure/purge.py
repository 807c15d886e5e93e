"""Retention (RGPD): personal data erased one year after closure; a pseudonymised row stays.

What stays of a complaint after erasure: its number, dates and timings, stakeholder
category, training action, object category, outcome, consumer status, actions taken, the
count of failures, and its events without their details — enough for the indicators and
the Qualiopi audit cycle. That row is itself deleted three years later. Each erasure is
logged (reference, date, what was erased), never the data. A legal hold (``#conserver``)
suspends the purge of one complaint.

Dossier folders are erased after the commit that erased their rows, as everywhere the
world is touched only after commit: a rollback then leaves every file in place. A crash
between the two leaves folders of purged references, which the next purge erases.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import Session

from bot.core.clock import local
from bot.core.states import ComplaintStatus, ContactStatus, TicketStatus
from bot.procedure.jobrun import JobResult, job_moment, once
from bot.store.db import compact
from bot.store.models import (
    ActionTaken,
    Complaint,
    Contact,
    Erasure,
    Event,
    Failure,
    Inbound,
    Outbox,
    Ticket,
)

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)
ERASED = "(effacé)"


#: The rows that precede a complaint (a ticket, a first contact) and hold personal data.
PENDING_MODELS: tuple[type[Ticket] | type[Contact], ...] = (Ticket, Contact)


def _pending_rows(session: Session, complaint_id: int) -> list[Ticket | Contact]:
    """The tickets and first contacts that led to the complaint ``complaint_id``."""
    return [*session.scalars(select(Ticket).where(Ticket.complaint_id == complaint_id)),
            *session.scalars(select(Contact).where(Contact.complaint_id == complaint_id))]


def years_after(day: dt.date, years: int) -> dt.date:
    """The same day ``years`` later (28 February for a 29 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def retention_start(complaint: Complaint) -> dt.date | None:
    """When the retention period starts: closure, or the end of the relationship if later."""
    if complaint.closed_at is None:
        return None
    start = local(complaint.closed_at).date()
    if complaint.relationship_ended_on and complaint.relationship_ended_on > start:
        start = complaint.relationship_ended_on
    return start


def remove_dossiers(app: App, references: list[str]) -> int:
    """Erase the dossiers of ``references`` (after the commit that erased their rows); how
    many there were."""
    return sum(app.dossiers.remove(reference) for reference in references)


def purged_references(session: Session) -> list[str]:
    """Every reference whose data were erased: their dossiers must not exist."""
    complaints = select(Complaint.id).where(Complaint.purged_at.is_not(None))
    return list(dict.fromkeys([
        *session.scalars(select(Erasure.reference)),  # complaints, tickets, contacts erased
        *session.scalars(select(Ticket.reference).where(Ticket.complaint_id.in_(complaints))),
        *session.scalars(select(Contact.reference).where(Contact.complaint_id.in_(complaints))),
    ]))


def _forget_messages(session: Session, inbound_where: ColumnElement[bool],
                     outbox_where: ColumnElement[bool]) -> tuple[int, int]:
    """Blank the copies of messages received and sent (kept as rows for the counts)."""
    inbound = session.execute(
        update(Inbound).where(inbound_where).values(sender="", subject="", message_id="")
    ).rowcount  # type: ignore[attr-defined]
    outbox = session.execute(
        update(Outbox).where(outbox_where)
        .values(raw=b"", recipients=[], to_address="", subject="", last_error="")
    ).rowcount  # type: ignore[attr-defined]
    return inbound or 0, outbox or 0


def erase_complaint(session: Session, app: App, complaint: Complaint, now: dt.datetime,
                    reason: str, dossiers: list[str]) -> Erasure:
    """Erase a complaint's personal data; keep its pseudonymised row. The references whose
    dossier folders go are added to ``dossiers``, for the caller to erase after commit."""
    what = []
    linked_tickets = session.scalars(select(Ticket).where(Ticket.complaint_id == complaint.id))
    linked_contacts = session.scalars(select(Contact).where(Contact.complaint_id == complaint.id))
    for reference in [complaint.number, *(t.reference for t in linked_tickets),
                      *(c.reference for c in linked_contacts)]:
        if app.dossiers.exists(reference, within=session):
            dossiers.append(reference)
            what.append(f"dossier {reference}")
    for name in ("client_name", "client_email", "phone", "organisation", "object", "product",
                 "parties_involved", "facts_date", "description", "expected_solution",
                 "response_text", "resolution", "requalified_reason", "extension_reason"):
        setattr(complaint, name, "")
    what.append("identité, coordonnées et textes libres")
    session.execute(update(Failure).where(Failure.complaint_id == complaint.id)
                    .values(text=ERASED, origin=""))
    session.execute(update(Event).where(Event.complaint_id == complaint.id)
                    .values(detail={}, origin=""))
    inbound, outbox = _forget_messages(
        session, Inbound.complaint_id == complaint.id, Outbox.complaint_id == complaint.id)
    what.append(f"{inbound} copie(s) de messages reçus, {outbox} de messages envoyés")
    for pending in _pending_rows(session, complaint.id):
        _blank_pending(pending)
    complaint.purged_at = now
    erasure = Erasure(at=now, reference=complaint.number, reason=reason, what=what)
    session.add(erasure)
    return erasure


def _blank_pending(row: Ticket | Contact) -> None:
    if isinstance(row, Ticket):
        row.complainant_email, row.fields, row.problems = "", {}, []
    else:
        row.sender_email, row.sender_name, row.subject, row.message_id = "", "", "", ""


def erase_pending(session: Session, app: App, row: Ticket | Contact, now: dt.datetime,
                  reason: str, dossiers: list[str]) -> Erasure:
    """Erase a ticket or contact that never entered the register: nothing of it stays
    (its dossier folder is added to ``dossiers``, erased by the caller after commit)."""
    what = []
    if app.dossiers.exists(row.reference, within=session):
        dossiers.append(row.reference)
        what.append(f"dossier {row.reference}")
    if isinstance(row, Ticket):
        conditions = (Inbound.ticket_id == row.id, Outbox.ticket_id == row.id)
    else:
        conditions = (Inbound.contact_id == row.id, Outbox.contact_id == row.id)
    inbound, outbox = _forget_messages(session, *conditions)
    session.execute(update(Event).where(
        Event.ticket_id == row.id if isinstance(row, Ticket) else Event.contact_id == row.id
    ).values(detail={}, origin=""))
    _blank_pending(row)
    row.status = TicketStatus.ERASED if isinstance(row, Ticket) else ContactStatus.ERASED
    what.append(f"coordonnées et textes ; {inbound} message(s) reçu(s), {outbox} envoyé(s)")
    erasure = Erasure(at=now, reference=row.reference, reason=reason, what=what)
    session.add(erasure)
    return erasure


def delete_pseudonymised(session: Session, complaint: Complaint, now: dt.datetime) -> None:
    """The end of the pseudonymised row, once the audit cycle no longer needs it."""
    for model in (Failure, ActionTaken, Event):
        session.execute(delete(model).where(model.complaint_id == complaint.id))
    session.execute(update(Inbound).where(Inbound.complaint_id == complaint.id)
                    .values(complaint_id=None))
    session.execute(update(Outbox).where(Outbox.complaint_id == complaint.id)
                    .values(complaint_id=None))
    for kind in PENDING_MODELS:
        session.execute(update(kind).where(kind.complaint_id == complaint.id)
                        .values(complaint_id=None))
    session.add(Erasure(at=now, reference=complaint.number, reason="fin de conservation",
                        what=["ligne pseudonymisée du registre"]))
    session.delete(complaint)


def purge(app: App, day: dt.date) -> JobResult:
    """Erase what the retention rules say has been kept long enough, as of ``day``."""
    t = app.rulebook.time
    moment = job_moment(day)

    def work(session: Session, now: dt.datetime) -> dict[str, int]:
        counts = {"erased": 0, "held": 0, "pending_erased": 0, "rows_deleted": 0}
        dossiers: list[str] = []
        for complaint in session.scalars(select(Complaint).where(
                Complaint.purged_at.is_(None),
                Complaint.status.in_((ComplaintStatus.CLOSED, ComplaintStatus.REQUALIFIED)))).all():
            start = retention_start(complaint) or local(complaint.updated_at).date()
            if years_after(start, t.personal_data_years) > day:
                continue
            if complaint.legal_hold:
                counts["held"] += 1
                continue
            erase_complaint(session, app, complaint, now, "durée de conservation", dossiers)
            counts["erased"] += 1
        for complaint in session.scalars(select(Complaint).where(
                Complaint.purged_at.is_not(None))).all():
            assert complaint.purged_at is not None
            if years_after(local(complaint.purged_at).date(), t.pseudonymised_years) <= day:
                delete_pseudonymised(session, complaint, now)
                counts["rows_deleted"] += 1
        limit = moment - dt.timedelta(days=365 * t.personal_data_years)
        for kind in PENDING_MODELS:
            stale: list[Ticket | Contact] = list(session.scalars(select(kind).where(
                kind.status.in_((ContactStatus.ABANDONED, TicketStatus.ABANDONED)))))
            for row in stale:
                last = row.updated_at if isinstance(row, Ticket) else row.received_at
                if last <= limit:
                    erase_pending(session, app, row, now, "durée de conservation", dossiers)
                    counts["pending_erased"] += 1
        return counts

    result = once(app, "purge", day, work)
    # Committed: now the folders go (this run's, and any a crash left behind).
    with app.sessions() as session:
        references = purged_references(session)
    # Outside the reading session: a dossier kept in a SQLite register is erased by a
    # transaction of its own, which must not wait for this one.
    remove_dossiers(app, references)
    if result.counts.get("erased") or result.counts.get("pending_erased"):
        compact(app.engine)
    return result
