"""Rules that find the register entry a message answers, and what the answer brings:
the fields a ticket lacked, a form sent in reply to its link, a satisfaction rating."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.text import fold
from bot.intake.classify.chain import Context, Thread
from bot.rulebook.form import extract_fields
from bot.store.models import Complaint, Contact, Outbox, Ticket

if TYPE_CHECKING:
    from bot.intake.message import InboundMessage
    from bot.rulebook import Rulebook


def _references_pattern(rules: Rulebook) -> re.Pattern[str]:
    return re.compile(
        rf"\b({re.escape(rules.complaint_prefix)}-\d{{4}}-\d{{4,}}"
        rf"|(?:{re.escape(rules.contact_prefix)}|{re.escape(rules.ticket_prefix)})-[A-Z0-9]{{8}})\b"
    )


def _final(session: Session, thread: Thread) -> Thread:
    """A contact or ticket that entered the register answers for its complaint."""
    if thread.kind in ("contact", "ticket"):
        row: Contact | Ticket | None = (session.get(Contact, thread.id) if thread.kind == "contact"
                                         else session.get(Ticket, thread.id))
        if row is not None and row.complaint_id is not None:
            complaint = session.get(Complaint, row.complaint_id)
            if complaint is not None:
                return Thread("complaint", complaint.id, complaint.number, complaint.client_email)
    return thread


def _by_reference(session: Session, reference: str) -> Thread | None:
    complaint = session.scalar(select(Complaint).where(Complaint.number == reference))
    if complaint is not None:
        return Thread("complaint", complaint.id, complaint.number, complaint.client_email)
    ticket = session.scalar(select(Ticket).where(Ticket.reference == reference))
    if ticket is not None:
        return Thread("ticket", ticket.id, ticket.reference, ticket.complainant_email)
    contact = session.scalar(select(Contact).where(Contact.reference == reference))
    if contact is not None:
        return Thread("contact", contact.id, contact.reference, contact.sender_email)
    return None


def _by_message_id(session: Session, message_ids: tuple[str, ...]) -> Thread | None:
    if not message_ids:
        return None
    row = session.scalar(
        select(Outbox).where(Outbox.message_id.in_(message_ids)).order_by(Outbox.id.desc())
    )
    if row is None:
        return None
    complaint = session.get(Complaint, row.complaint_id) if row.complaint_id else None
    if complaint is not None:
        return _by_reference(session, complaint.number)
    pending: Ticket | Contact | None = (session.get(Ticket, row.ticket_id) if row.ticket_id
                                        else None)
    if pending is None and row.contact_id:
        pending = session.get(Contact, row.contact_id)
    return _by_reference(session, pending.reference) if pending is not None else None


def _candidate(msg: InboundMessage, ctx: Context) -> tuple[Thread, str] | None:
    """The entry the message points at (subject reference, else threading headers), and how."""

    def find() -> tuple[Thread, str] | None:
        for reference in _references_pattern(ctx.app.rulebook).findall(msg.subject):
            found = _by_reference(ctx.session, reference)
            if found is not None:
                return _final(ctx.session, found), f"référence {reference} dans l'objet"
        found = _by_message_id(ctx.session, msg.thread_ids())
        if found is not None:
            return (_final(ctx.session, found),
                    "In-Reply-To/References d'un courriel envoyé par le bot")
        return None

    return ctx.once("thread", find)


def thread_found(msg: InboundMessage, ctx: Context) -> str | None:
    """The message points at a complaint, ticket or contact of the register."""
    candidate = _candidate(msg, ctx)
    if candidate is None:
        return None
    thread, how = candidate
    return f"{how} : {thread.kind} {thread.reference}"


def stranger_to_thread(msg: InboundMessage, ctx: Context) -> str | None:
    """The entry pointed at is someone else's: nobody joins another person's thread."""
    candidate = _candidate(msg, ctx)
    assert candidate is not None  # reached through thread_found only
    thread, how = candidate
    if thread.correspondent in (msg.from_address, msg.reply_to):
        return None
    return (f"{how} désigne {thread.reference}, mais l'expéditeur n'en est pas le "
            "correspondant")


def _thread_of_kind(msg: InboundMessage, ctx: Context, kind: str) -> Thread | None:
    candidate = _candidate(msg, ctx)
    if candidate is None or candidate[0].kind != kind:
        return None
    ctx.thread = candidate[0]
    return candidate[0]


def complaint_thread(msg: InboundMessage, ctx: Context) -> str | None:
    thread = _thread_of_kind(msg, ctx, "complaint")
    if thread is not None:
        ctx.reading(msg)
    return f"le réclamant écrit sur la réclamation {thread.reference}" if thread else None


def ticket_thread(msg: InboundMessage, ctx: Context) -> str | None:
    """A reply to an information request: the fields it supplies are read from its new text."""
    thread = _thread_of_kind(msg, ctx, "ticket")
    if thread is None:
        return None
    ctx.fields = extract_fields(ctx.reading(msg).text, "", ctx.app.rulebook)
    return (f"complément du ticket {thread.reference} : "
            f"{len([v for v in ctx.fields.values() if v])} champ(s) lu(s)")


def contact_thread(msg: InboundMessage, ctx: Context) -> str | None:
    thread = _thread_of_kind(msg, ctx, "contact")
    if thread is not None:
        ctx.reading(msg)
    return f"réponse au premier contact {thread.reference}" if thread else None


def filled_form_in_reply(msg: InboundMessage, ctx: Context) -> str | None:
    """The reply to the form-link email is the form itself, filled in."""
    assert ctx.thread is not None  # reached through contact_thread only
    reading = ctx.reading(msg)
    fields = extract_fields(reading.text, reading.html, ctx.app.rulebook)
    if not fields.get("form_version"):
        return None
    fields.setdefault("reference", ctx.thread.reference)
    ctx.fields = fields
    return f"la réponse est le formulaire rempli (version {fields['form_version']})"


_RATING = re.compile(r"(?<![\d/])([1-5])\s*(?:/\s*5|sur\s*5)?(?![\d/])")


def rating_in(text: str, negatives: tuple[str, ...]) -> str:
    """A rating stated in a reply: ``"1"``..``"5"``, ``satisfait``, ``pas satisfait``, or ``""``."""
    words = f" {fold(text)} "
    if any(negative in words for negative in negatives):
        return "pas satisfait"
    match = _RATING.search(text)
    if match:
        return match.group(1)
    if " satisfait" in words or " satisfaite" in words:
        return "satisfait"
    return ""


def satisfaction_rating(msg: InboundMessage, ctx: Context) -> str | None:
    """The answer to the satisfaction survey, while one is awaited."""
    assert ctx.thread is not None  # reached through complaint_thread only
    complaint = ctx.session.get(Complaint, ctx.thread.id)
    if complaint is None or complaint.satisfaction_asked_at is None or complaint.satisfaction:
        return None
    rating = rating_in(ctx.reading(msg).text, ctx.app.rulebook.satisfaction_negatives)
    if not rating:
        return None
    ctx.rating = rating
    return f"réponse à l'enquête de satisfaction : « {rating} »"
