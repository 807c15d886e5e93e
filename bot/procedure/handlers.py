"""Handle: act on a classified message (register, reply, notify), inside its transaction.

Handlers never send anything themselves: they put rendered emails in the outbox, which is
committed together with the change. They never touch the disk either: the dossier files
are written after commit by the pipeline, from what the database then says.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bot.core.clock import PARIS, local
from bot.core.states import Action, ComplaintStatus, ContactStatus, EmailKind, TicketStatus
from bot.intake.classify import WEB_FORM_HEADER, Decision
from bot.intake.commandline import CommandError
from bot.intake.forwarded import Letter, Original
from bot.outbound.compose import Answered, Email
from bot.outbound.outbox import enqueue
from bot.procedure import commands
from bot.rulebook.form import REPEATED, Validation, validate
from bot.store.db import append_row, message_origin, next_in_sequence
from bot.store.models import Complaint, Contact, Event, Inbound, Outbox, Ticket

if TYPE_CHECKING:
    from bot.app import App
    from bot.intake.message import InboundMessage

log = logging.getLogger(__name__)

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: references are read aloud


def new_reference(prefix: str) -> str:
    """An unguessable reference such as ``CT-7K3M9QXA`` (40 random bits)."""
    return f"{prefix}-{''.join(secrets.choice(_ALPHABET) for _ in range(8))}"


def _event(session: Session, row: Inbound, kind: str, detail: dict[str, object] | None = None,
           *, complaint: Complaint | None = None, contact: Contact | None = None,
           ticket: Ticket | None = None) -> None:
    append_row(
        session, Event,
        at=row.processed_at,
        kind=kind,
        origin=message_origin(session, row),
        detail=detail or {},
        complaint_id=complaint,
        contact_id=contact,
        ticket_id=ticket,
    )


def director_context(app: App, complaint: Complaint) -> dict[str, object]:
    """What every email to the director about a complaint needs: its command tag."""
    return {"complaint": complaint, "tag": app.tokens.tag(complaint.number,
                                                                complaint.key_generation)}


def _directors(app: App) -> list[str]:
    return list(app.config.organisation.director_addresses)


def _her_subject(app: App, msg: InboundMessage) -> str:
    """The subject of the email a person wrote, that our answer keeps in front of its
    own; none for what a form plugin or the web page wrote."""
    if msg.from_address in app.config.organisation.form_senders or msg.has_header(
            WEB_FORM_HEADER):
        return ""
    return msg.subject


def _reply_address(msg: InboundMessage) -> str:
    return msg.reply_to or msg.from_address


def _form_link(app: App, reference: str) -> str:
    """The form, linked to the first contact: signed when reclambot serves the form, so
    that nobody can attach a form to someone else's contact."""
    url = app.config.form_link()
    link = f"{url}{'&' if '?' in url else '?'}ref={reference}"
    if app.config.web.public_url:
        link += f"&sig={app.tokens.sign('ref', reference)}"
    return link


def follow_up_link(app: App, number: str) -> str:
    """The complainant's follow-up page (``reclambot serve``), or "" without one."""
    public = app.config.web.public_url
    return f"{public}/suivi/{app.tokens.follow_up(number)}" if public else ""


# --- The register ---------------------------------------------------------------------------


# Built once: building a statement costs about as much as running it on SQLite.
_CONTACT_BY_REFERENCE = select(Contact).where(Contact.reference == bindparam("reference"))
# Ids only, on the connection: most submissions have no contact to follow, and an ORM
# query costs three times as much as the statement to find that out.
_OPEN_CONTACTS_BY_ADDRESS = select(Contact.id).where(Contact.sender_email == bindparam("address"),
                                                    Contact.status == ContactStatus.OPEN)


def _find_contact(session: Session, values: dict[str, str], email: str, *,
                  signed: bool = False, sender: str = "") -> Contact | None:
    """The initial contact a submission follows: by its reference, else by the same address.

    A reference links only when it came signed (the served form's link, ``signed``) or
    when the contact was opened by the same address (the form's, or the ``sender``'s):
    a reference anybody can type in a form, or in a value that looks like its line, never
    brings someone else's first contact, date and messages into a complaint.

    A batch is flushed once, at its end (see :func:`bot.pipeline.handle_batch`), so the
    contacts its earlier messages created are not in the database yet, and those they
    converted still say ``open`` there: the session's objects are looked at, not only the
    rows. Flushing instead would cost one flush per submission.
    """
    reference = values.get("reference", "")
    pending = [obj for obj in session.new if isinstance(obj, Contact)]
    with session.no_autoflush:
        if reference:
            contact = next((c for c in pending if c.reference == reference), None)
            if contact is None:
                contact = session.scalar(_CONTACT_BY_REFERENCE, {"reference": reference})
            if contact is not None and (signed or contact.sender_email.lower() in {
                    email.lower(), sender.lower()} - {""}):
                return contact
        # Loaded as the session's objects, with this batch's changes on them.
        found = session.connection().execute(_OPEN_CONTACTS_BY_ADDRESS, {"address": email})
        candidates = [c for (contact_id,) in found
                      if (c := session.get(Contact, contact_id)) is not None
                      and c.status == ContactStatus.OPEN]
    candidates += [c for c in pending if c.sender_email == email and c.status == ContactStatus.OPEN]
    return max(candidates, key=lambda c: c.received_at, default=None)


def register(session: Session, app: App, msg: InboundMessage, row: Inbound,
             validation: Validation, ticket: Ticket | None, signed: bool = False,
             contact: Contact | None = None, answering: Answered | None = None
             ) -> Complaint:
    """Enter a conforming ticket in the register; acknowledge it and notify the director
    (``signed``: its reference to a first contact came signed; ``contact``: the first
    contact it follows, when the caller knows it; ``answering``: the message the
    acknowledgement answers, ``msg`` unless a forward carried the form)."""
    rules = app.rulebook
    values = validation.values
    assert validation.version is not None
    received_at = row.received_at or row.processed_at
    day = local(received_at).date()
    sequence = next_in_sequence(session, f"{rules.complaint_prefix}-{day.year}")
    number = f"{rules.complaint_prefix}-{day.year}-{sequence:04d}"
    if contact is None and ticket is not None and ticket.contact_id:
        contact = session.get(Contact, ticket.contact_id)
    if contact is None:
        contact = _find_contact(session, values, values["email"], signed=signed,
                                sender=msg.from_address)
    if contact is not None:
        initial_at = contact.received_at
        initial_mode = f"{contact.mode or rules.mode_email} (réf. {contact.reference})"
        initial_reference = contact.reference
    else:
        initial_at = ticket.received_at if ticket else received_at
        initial_mode = f"{rules.mode_form} (ticket {number})"
        initial_reference = ticket.reference if ticket else number
    acting_as = values.get("acting_as", "")
    complaint = Complaint(
        number=number,
        year=day.year,
        sequence=sequence,
        status=ComplaintStatus.OPEN,
        received_at=received_at,
        form_version=validation.version.id,
        initial_contact_at=initial_at,
        initial_mode=initial_mode,
        initial_reference=initial_reference,
        client_name=values.get("client_name", ""),
        client_email=values["email"],
        phone=values.get("phone", ""),
        organisation=values.get("organisation", ""),
        category=values.get("category", ""),
        acting_as=acting_as,
        is_consumer={"particulier": True, "professionnel": False}.get(acting_as),
        object=values.get("object", ""),
        product=values.get("product", ""),
        parties_involved=values.get("parties_involved", ""),
        training_actions=values.get("training_actions", ""),
        facts_date=values.get("facts_date", ""),
        description=values.get("description", ""),
        expected_solution=values.get("expected_solution", ""),
        documents_location=app.dossiers.relative(number),
        acknowledged_at=row.processed_at,
        acknowledge_due=rules.calendar.add_working_days(day, rules.acknowledge_working_days),
        answer_due=rules.calendar.add_working_days(day, rules.answer_working_days),
        answer_due_initial=rules.calendar.add_working_days(day, rules.answer_working_days),
        object_category=rules.object_category(values.get("object", "")),
        created_at=row.processed_at,
        updated_at=row.processed_at,
    )
    # Written with the message's row at its flush, in the order the links need.
    row.complaint = complaint
    if contact is not None:
        contact.status = ContactStatus.CONVERTED
        contact.complaint = complaint
    if ticket is not None:
        ticket.status = TicketStatus.COMPLETED
        ticket.complaint = complaint
        ticket.updated_at = row.processed_at
    _event(session, row, "registered", {"number": number, "form_version": complaint.form_version},
           complaint=complaint)
    enqueue(session, app, Email(
        EmailKind.ACKNOWLEDGEMENT, [complaint.client_email],
        context={"complaint": complaint, "follow_up": follow_up_link(app, number)},
        reference=number,
        answering=answering or msg,
        her_subject=getattr(answering, "subject", "") if answering else _her_subject(app, msg)),
        complaint=complaint)
    _event(session, row, "acknowledged", {"to": "complainant"}, complaint=complaint)
    enqueue(session, app, Email(
        EmailKind.DIRECTOR_NEW_COMPLAINT, _directors(app),
        context=director_context(app, complaint),
        reference=number,
        auto_submitted="auto-generated"),
        complaint=complaint)
    log.info("registered %s (form %s)", number, complaint.form_version)
    return complaint


def _kept(values: dict[str, str]) -> dict[str, str]:
    """A ticket's fields as it keeps them: without those given twice (which value is hers
    is not known: she is asked again) and without the list of them."""
    repeated = set(values.get(REPEATED, "").split(","))
    return {k: v for k, v in values.items() if k not in repeated and k != REPEATED}


def _problems(validation: Validation) -> list[dict[str, str]]:
    return [{"key": p.key, "field": p.field, "message": p.message} for p in validation.problems]


def _request_information(session: Session, app: App, msg: InboundMessage, row: Inbound,
                         ticket: Ticket, validation: Validation,
                         answering: Answered | None = None) -> None:
    ticket.problems = _problems(validation)
    ticket.updated_at = row.processed_at
    row.ticket = ticket
    _event(session, row, "incomplete", {"problems": ticket.problems}, ticket=ticket)
    if ticket.complainant_email:
        enqueue(session, app, Email(
            EmailKind.INFORMATION_REQUEST, [ticket.complainant_email],
            context={"ticket": ticket, "problems": validation.problems,
                         "version": validation.version},
            reference=ticket.reference,
            answering=answering or msg,
            her_subject=(getattr(answering, "subject", "") if answering
                         else _her_subject(app, msg))),
            ticket=ticket)
    else:
        # No address to ask: only a person can follow this up.
        enqueue(session, app, Email(
            EmailKind.DIRECTOR_UNREACHABLE_TICKET, _directors(app),
            context={"ticket": ticket, "problems": validation.problems},
            reference=ticket.reference,
            auto_submitted="auto-generated"),
            ticket=ticket)
    log.info("ticket %s incomplete (%d problems)", ticket.reference, len(validation.problems))


def _submit(session: Session, app: App, msg: InboundMessage, row: Inbound,
            values: dict[str, str], ticket: Ticket | None, signed: bool = False,
            forwarded: tuple[Contact, Original] | None = None) -> None:
    """Check a submission; register it, or ask for what is missing (``forwarded``: the
    form came inside a staff member's forward, from the first contact of its author)."""
    day = local(row.received_at or row.processed_at).date()
    validation = validate(values, app.rulebook, day)
    contact, original = forwarded or (None, None)
    if validation.conforming:
        register(session, app, msg, row, validation, ticket, signed, contact, original)
        return
    if ticket is None:
        email = validation.values.get("email", "")
        if "email" in {p.key for p in validation.problems}:
            email = ""
        if not email:
            # The form's own field is unusable: fall back on a real person's address
            # (a forward's author, never the staff member who passed it on).
            fallback = original.address if original else _reply_address(msg)
            if fallback not in app.config.organisation.form_senders:
                email = fallback
        if contact is None and email:
            contact = _find_contact(session, validation.values, email, signed=signed,
                                    sender=msg.from_address)
        ticket = Ticket(
            reference=new_reference(app.rulebook.ticket_prefix),
            received_at=row.received_at or row.processed_at,
            complainant_email=email,
            fields=_kept(values),
            problems=_problems(validation),
            status=TicketStatus.INCOMPLETE,
            contact_id=contact.id if contact else None,
            updated_at=row.processed_at,
        )
        row.ticket = ticket
    _request_information(session, app, msg, row, ticket, validation, original)


# --- One handler per action ------------------------------------------------------------------


def handle_submission(session: Session, app: App, msg: InboundMessage, decision: Decision,
                      row: Inbound) -> None:
    """The form, by the site's plugin, pasted in a tagged email, or sent back in reply to
    its link (then the decision's thread is that first contact)."""
    if decision.thread is not None and decision.thread.kind == "contact":
        row.contact_id = decision.thread.id
    _submit(session, app, msg, row, decision.fields, None, decision.signed_reference)


def handle_ticket_reply(session: Session, app: App, msg: InboundMessage, decision: Decision,
                        row: Inbound) -> None:
    assert decision.thread is not None
    ticket = session.get(Ticket, decision.thread.id)
    assert ticket is not None
    supplied = decision.fields
    merged = {**_kept(ticket.fields), **{k: v for k, v in supplied.items() if v}}
    ticket.fields = merged
    row.ticket_id = ticket.id
    _event(session, row, "information_supplied", {"fields": sorted(supplied)}, ticket=ticket)
    _submit(session, app, msg, row, merged, ticket)


def _forward(session: Session, app: App, msg: InboundMessage, row: Inbound, text: str, *,
             tag: str, reference: str, complaint: Complaint | None = None,
             contact: Contact | None = None, by: str = "", sender: str = "",
             subject: str | None = None) -> None:
    """The complainant wrote again: keep it as correspondence and show the director.
    ``by``: the member of staff who passed it on (``sender`` and ``subject`` are then
    those of what she passed on)."""
    _event(session, row, "correspondence",
           {"from": "staff", "by": by} if by else {"from": "complainant"},
           complaint=complaint, contact=contact)
    enqueue(session, app, Email(
        EmailKind.DIRECTOR_CORRESPONDENCE, _directors(app),
        context={"reference_kind": "complaint" if complaint else "contact", "tag": tag,
                     "sender": sender or msg.from_address, "text": text,
                     "subject": msg.subject if subject is None else subject},
        reference=reference,
        auto_submitted="auto-generated"),
        complaint=complaint, contact=contact)


def handle_contact_reply(session: Session, app: App, msg: InboundMessage, decision: Decision,
                         row: Inbound) -> None:
    assert decision.thread is not None
    contact = session.get(Contact, decision.thread.id)
    assert contact is not None
    row.contact_id = contact.id
    _forward(session, app, msg, row, decision.new_text, tag=f"[{contact.reference}]",
             reference=contact.reference, contact=contact)


def handle_complaint_reply(session: Session, app: App, msg: InboundMessage, decision: Decision,
                           row: Inbound) -> None:
    assert decision.thread is not None
    complaint = session.get(Complaint, decision.thread.id)
    assert complaint is not None
    row.complaint_id = complaint.id
    if decision.rating:
        complaint.satisfaction = decision.rating
        complaint.satisfaction_at = row.processed_at
        _event(session, row, "satisfaction", {"rating": decision.rating}, complaint=complaint)
    tag = app.tokens.tag(complaint.number, complaint.key_generation)
    _forward(session, app, msg, row, decision.new_text, tag=tag,
             reference=complaint.number, complaint=complaint)


def handle_new_contact(session: Session, app: App, msg: InboundMessage, decision: Decision,
                       row: Inbound) -> None:
    contact = Contact(
        reference=new_reference(app.rulebook.contact_prefix),
        received_at=row.received_at or row.processed_at,
        sender_email=_reply_address(msg),
        sender_name=msg.from_name,
        subject=msg.subject,
        message_id=msg.message_id,
        status=ContactStatus.OPEN,
    )
    row.contact = contact
    _event(session, row, "initial_contact", {"reference": contact.reference}, contact=contact)
    day = local(contact.received_at).date()
    enqueue(session, app, Email(
        EmailKind.FORM_LINK, [contact.sender_email],
        context={"contact": contact, "form_link": _form_link(app, contact.reference),
                     "form": app.rulebook.current_form(day)},
        reference=contact.reference,
        answering=msg,
        her_subject=_her_subject(app, msg)),
        contact=contact)
    log.info("initial contact %s answered with the form link", contact.reference)


def _transmitted_by(app: App, msg: InboundMessage, row: Inbound) -> str:
    """«transmis par <nom> (<adresse>) le <date>»: how the register says a first contact
    reached the complaints service through a member of staff."""
    who = msg.from_name or msg.from_address
    return f"transmis par {who} ({msg.from_address}) le {local(row.processed_at):%d/%m/%Y}"


def _confirm_forward(session: Session, app: App, msg: InboundMessage, reference: str,
                     **context: object) -> None:
    enqueue(session, app, Email(
        EmailKind.FORWARD_CONFIRMATION, [msg.from_address],
        context={"staff_name": msg.from_name, **context},
        reference=reference,
        answering=msg,
        # Not counted against her daily limit (she may pass on many), which stays the
        # last defence for any address a stranger names in Reply-To, hers included.
        auto_submitted="auto-generated"))


def handle_forward(session: Session, app: App, msg: InboundMessage, decision: Decision,
                   row: Inbound) -> None:
    """A member of staff passed a complaint on: its author becomes the first contact
    (form link to her, dated from her message) and the staff member is told; a thread
    the bot already follows is joined instead, and nothing goes to the author."""
    passed = decision.forwarded
    assert passed is not None  # the forward chain decides FORWARD with it only
    original = passed if isinstance(passed, Original) else None
    address = passed.address
    if decision.thread is not None:
        _forward_to_known(session, app, msg, decision, row, original)
        return
    if original is not None:
        received_at, name = original.date, original.name[:300]
        message_id, subject = original.message_id, original.subject
        mode = f"{app.rulebook.mode_email}, {_transmitted_by(app, msg, row)}"
        how = original.how
    else:
        assert isinstance(passed, Letter)
        noon = dt.datetime.combine(passed.day, dt.time(12), tzinfo=PARIS)
        received_at, name, message_id, subject = (
            noon.astimezone(dt.UTC).replace(tzinfo=None), "", "", msg.subject)
        mode = f"{passed.mode}, {_transmitted_by(app, msg, row)}"
        how = passed.mode
    contact = Contact(
        reference=new_reference(app.rulebook.contact_prefix),
        received_at=received_at,
        sender_email=address,
        sender_name=name,
        subject=subject,
        message_id=message_id,
        status=ContactStatus.OPEN,
        mode=mode[:200],
        opened_at=row.processed_at,
    )
    row.contact = contact
    _event(session, row, "initial_contact", {"reference": contact.reference,
                                              "forwarded_by": msg.from_address}, contact=contact)
    if original is not None and decision.fields:
        # The author had filled in the form already: her submission, from her contact.
        session.flush()  # rare: the ticket of an incomplete form needs the contact's id
        _submit(session, app, msg, row, decision.fields, None, forwarded=(contact, original))
        sent = "form"
    else:
        # The form in force today, when she fills it in: her message may be older than
        # the first version (a letter of December passed on in January).
        day = local(row.processed_at).date()
        queued = enqueue(session, app, Email(
            EmailKind.FORM_LINK, [contact.sender_email],
            context={"contact": contact, "form_link": _form_link(app, contact.reference),
                     "form": app.rulebook.current_form(day),
                     "forwarded_by": msg.from_name or "", "letter": original is None},
            reference=contact.reference,
            answering=original,
            her_subject=original.subject if original else ""),
            contact=contact)
        sent = "link" if queued else "limited"
    _confirm_forward(session, app, msg, contact.reference, contact=contact,
                     sent=sent, how=how, known=None)
    log.info("first contact %s passed on by staff", contact.reference)


def _forward_to_known(session: Session, app: App, msg: InboundMessage, decision: Decision,
                      row: Inbound, original: Original | None) -> None:
    """The forward joins the thread the bot follows: kept in its dossier, shown to the
    director as correspondence; its author is not written to again."""
    assert decision.thread is not None
    thread = decision.thread
    complaint = session.get(Complaint, thread.id) if thread.kind == "complaint" else None
    contact = session.get(Contact, thread.id) if thread.kind == "contact" else None
    if complaint is not None:
        row.complaint_id = complaint.id
        tag = app.tokens.tag(complaint.number, complaint.key_generation)
    else:
        row.contact_id = thread.id
        tag = f"[{thread.reference}]"
    _forward(session, app, msg, row,
             original.text if original is not None else decision.new_text,
             tag=tag, reference=thread.reference, complaint=complaint, contact=contact,
             by=msg.from_address,
             sender=f"{thread.correspondent} (transmis par {msg.from_address})",
             subject=original.subject if original else None)
    _confirm_forward(session, app, msg, thread.reference, contact=None,
                     sent="known", how=original.how if original else "courrier",
                     known=thread)


def handle_forward_refused(session: Session, app: App, msg: InboundMessage,
                           decision: Decision, row: Inbound) -> None:
    """What staff passed on names nobody the bot may write to: only she is told why."""
    enqueue(session, app, Email(
        EmailKind.FORWARD_REFUSED, [msg.from_address],
        context={"staff_name": msg.from_name, "subject": msg.subject,
                 "reason": decision.matches[0].reason},
        reference="transmission",
        answering=msg,
        auto_submitted="auto-generated"))
    log.info("forward refused (%s)", decision.matches[0].rule)


def handle_command(session: Session, app: App, msg: InboundMessage, decision: Decision,
                   row: Inbound) -> None:
    """Run the director's commands, all or nothing, and tell her what was done or what to fix."""
    complaint = None
    if decision.thread is not None:
        complaint = session.get(Complaint, decision.thread.id)
        row.complaint_id = decision.thread.id
    done: list[str] = []
    error = decision.command_error
    if error is None:
        try:
            with session.begin_nested():
                ctx = commands.Context(session, app, msg, row, complaint, done)
                commands.execute(ctx, list(decision.commands))
        except CommandError as exc:
            error = exc
            done.clear()
    if complaint is not None:
        session.refresh(complaint)  # the savepoint may have rolled changes back
    context: dict[str, object] = {
        "tag": (app.tokens.tag(complaint.number, complaint.key_generation)
                if complaint else ""),
        "complaint": complaint,
        "done": done,
        "error": error,
        "attachments": [a.filename for a in msg.attachments] if complaint else [],
        # The commands one tap away, unless #aide already put the help in the answer.
        "commands": complaint is not None and not any(
            line.startswith(app.rulebook.commands.intro) for line in done),
        # Only #aide, #liste: nothing was done, the answer says so from its subject.
        "read_only": error is None and bool(decision.commands) and all(
            c.name in app.rulebook.commands.read_only for c in decision.commands),
    }
    if error is None and complaint is not None and msg.attachments:
        _event(session, row, "documents", {"count": len(msg.attachments)}, complaint=complaint)
    kind = EmailKind.DIRECTOR_ERROR if error else EmailKind.DIRECTOR_CONFIRMATION
    enqueue(session, app, Email(
        kind, [msg.from_address],
        context=context,
        reference=complaint.number if complaint else "commandes",
        answering=msg,
        auto_submitted="auto-replied"),
        complaint=complaint)
    log.info("director commands on %s: %s", complaint.number if complaint else "-",
             "refused" if error else f"{len(done)} done")


def handle_alert(session: Session, app: App, msg: InboundMessage, decision: Decision,
                 row: Inbound) -> None:
    """Someone tried to act on the register without the right: only the director is told."""
    enqueue(session, app, Email(
        EmailKind.DIRECTOR_ALERT, _directors(app),
        context={"sender": msg.from_address, "subject": msg.subject,
                     "reasons": [m.reason for m in decision.matches],
                     "received_at": row.received_at or row.processed_at},
        reference="alerte",
        auto_submitted="auto-generated"))
    log.warning("refused command email (%s)", decision.matches[-1].rule)


def handle_bounce(session: Session, app: App, msg: InboundMessage, decision: Decision,
                  row: Inbound) -> None:
    """An email of ours bounced: the complainant could not be reached; the director is told once."""
    for outbox_id in decision.bounced:
        sent = session.get(Outbox, outbox_id)
        if sent is None:
            continue
        sent.bounced_at = sent.bounced_at or row.processed_at
        if sent.to_address in app.config.organisation.director_addresses:
            continue  # never write to the director about her own mailbox: that could loop
        complaint = session.get(Complaint, sent.complaint_id) if sent.complaint_id else None
        contact = session.get(Contact, sent.contact_id) if sent.contact_id else None
        ticket = session.get(Ticket, sent.ticket_id) if sent.ticket_id else None
        if complaint is not None:
            reference, same = complaint.number, Event.complaint_id == complaint.id
            ticket = contact = None
        elif ticket is not None:
            reference, same = ticket.reference, Event.ticket_id == ticket.id
            contact = None
        elif contact is not None:
            reference, same = contact.reference, Event.contact_id == contact.id
        else:
            continue
        row.complaint_id = row.complaint_id or (complaint.id if complaint else None)
        if session.scalar(select(Event.id).where(Event.kind == "unreachable", same)):
            continue  # the director already knows
        if complaint is not None:
            complaint.unreachable_at = row.processed_at
        _event(session, row, "unreachable", {"address": sent.to_address, "kind": sent.kind},
               complaint=complaint, contact=contact, ticket=ticket)
        enqueue(session, app, Email(
            EmailKind.DIRECTOR_UNREACHABLE, _directors(app),
            context={"sent": sent, "reference_of": reference,
                         "commands": complaint is not None,
                         "tag": app.tokens.tag(complaint.number, complaint.key_generation)
                         if complaint else
                         f"[{reference}]"},
            reference=reference or "envoi",
            auto_submitted="auto-generated"),
            complaint=complaint)


def handle_too_large(session: Session, app: App, msg: InboundMessage, decision: Decision,
                     row: Inbound) -> None:
    """Over a size limit: kept on the server in quarantine; the sender gets a polite answer."""
    address = _reply_address(msg)
    if address and address not in app.config.organisation.form_senders:
        enqueue(session, app, Email(
            EmailKind.TOO_LARGE, [address],
            context={"subject": msg.subject, "limits": app.config.limits},
            reference="taille",
            answering=msg,
            her_subject=_her_subject(app, msg)))


def handle_nothing(session: Session, app: App, msg: InboundMessage, decision: Decision,
                   row: Inbound) -> None:
    """Robots, the director's mail and untagged mail: the decision is the whole action."""


Handler = Callable[[Session, "App", "InboundMessage", Decision, Inbound], None]


@dataclass(frozen=True)
class Route:
    """What follows a decision: the handler that acts, and the folder the message ends in
    (a key of ``[folders]``, or "" to stay in the inbox)."""

    handler: Handler
    folder: str


#: The one table from each action to its handler and its folder.
ROUTES: dict[Action, Route] = {
    Action.ROBOT: Route(handle_nothing, "ignored"),
    Action.BOUNCE: Route(handle_bounce, "ignored"),
    Action.TOO_LARGE: Route(handle_too_large, "quarantine"),
    Action.DIRECTOR: Route(handle_nothing, ""),
    Action.COMMAND: Route(handle_command, "processed"),
    Action.ALERT: Route(handle_alert, "ignored"),
    Action.LEAVE: Route(handle_nothing, ""),
    Action.SUBMISSION: Route(handle_submission, "processed"),
    Action.TICKET_REPLY: Route(handle_ticket_reply, "processed"),
    Action.CONTACT_REPLY: Route(handle_contact_reply, "processed"),
    Action.COMPLAINT_REPLY: Route(handle_complaint_reply, "processed"),
    Action.NEW_CONTACT: Route(handle_new_contact, "processed"),
    Action.FORWARD: Route(handle_forward, "processed"),
    Action.FORWARD_REFUSED: Route(handle_forward_refused, "processed"),
}


def handle(session: Session, app: App, msg: InboundMessage, decision: Decision,
           row: Inbound) -> None:
    """Run the handler of ``decision.action``."""
    ROUTES[decision.action].handler(session, app, msg, decision, row)

