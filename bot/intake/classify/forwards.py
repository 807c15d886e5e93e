"""Rules for what a member of staff passes on: a forwarded complaint, or a letter.

A trainer, the secretariat or the director forwards a complaint she received (the tag
in the subject, or ``#transmettre`` as her first line): the person who wrote it becomes
the first contact. Only staff (``[organisation] staff_addresses`` and the director's
addresses) can make the bot write to a third party; what they pass on must name a
person who is none of them, no robot, and no one the bot already follows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.core.clock import local
from bot.core.text import fold
from bot.intake.classify.chain import Context, Goto, Thread
from bot.intake.classify.director import _token
from bot.intake.classify.robots import ROBOT_RULES, forwarded, subject_links
from bot.intake.classify.threads import _final
from bot.intake.forwarded import (
    NO_ORIGINAL,
    Letter,
    Original,
    bare_message,
    read_letter,
    read_original,
    transmit_command,
)
from bot.rulebook.form import extract_fields, valid_email
from bot.store.models import Contact, Inbound

if TYPE_CHECKING:
    from bot.intake.message import InboundMessage


def subject_tag(msg: InboundMessage, ctx: Context) -> str | None:
    # A word that begins with the tag: "RÉCLAMATION:", "Réclamations", "RECLAMATION-2".
    words = f" {fold(msg.subject)}"
    for tag in ctx.app.rulebook.subject_tags:
        if f" {tag}" in words:
            return f"l'objet porte l'étiquette {tag.upper()}"
    return None


def _line(msg: InboundMessage, ctx: Context) -> str | None:
    """Her ``#transmettre`` line, when her message begins with one."""
    return ctx.once("transmit_line", lambda: transmit_command(
        ctx.reading(msg).text, ctx.app.rulebook.commands.forward))


def _original(msg: InboundMessage, ctx: Context) -> Original | str:
    return ctx.once("original", lambda: read_original(
        msg, ctx.app.rulebook.undeclared_charsets, ctx.app.clock()))


def _letter(msg: InboundMessage, ctx: Context) -> Letter | str | None:
    def read() -> Letter | str | None:
        line = _line(msg, ctx)
        if line is None:
            return None
        return read_letter(line, local(ctx.app.clock()).date(), "courrier")

    return ctx.once("letter", read)


def _staff(ctx: Context) -> frozenset[str]:
    return ctx.app.config.organisation.staff


def staff_forward(msg: InboundMessage, ctx: Context) -> str | None:
    """A member of staff passes a complaint on: ``#transmettre`` first, or the tag in the
    subject of a forward. A tagged message of hers that forwards nothing is her own."""
    if msg.from_address not in _staff(ctx) or _token(msg, ctx) is not None:
        return None  # not staff, or a reply to a notification: the director's commands
    who = msg.from_name or msg.from_address
    if _line(msg, ctx) is not None:
        return f"#transmettre en première ligne, de {who} (équipe)"
    if subject_tag(msg, ctx) is None:
        return None
    # A forward by its subject («TR:», «Fwd:»), or by what it carries (a message enclosed
    # or inline, readable or not: an unreadable one gets her a refusal naming why).
    if (forwarded(msg.subject.strip().casefold(), ctx.app.rulebook.robots.forward_prefixes)
            or _original(msg, ctx) != NO_ORIGINAL):
        return f"transfert étiqueté RÉCLAMATION, de {who} (équipe)"
    return None


def transmitted_letter(msg: InboundMessage, ctx: Context) -> str | None:
    """``#transmettre <adresse> …``: a letter or a note, scanned, for that address."""
    letter = _letter(msg, ctx)
    if letter is None:
        return None
    if isinstance(letter, str):
        return f"#transmettre illisible : {letter}"
    ctx.forwarded = letter
    return (f"courrier transmis pour {letter.address}, daté du {letter.day:%d/%m/%Y} "
            f"({letter.mode})")


def letter_refused(msg: InboundMessage, ctx: Context) -> str | None:
    letter = _letter(msg, ctx)
    if isinstance(letter, str):
        return letter
    if not msg.attachments:
        return ("aucune pièce jointe : joignez le courrier ou la note (scan ou photo), "
                "qui rejoint le dossier")
    return _not_a_person(letter.address if letter else "", ctx)


def _base(address: str) -> str:
    """The mailbox an address reaches: without its ``+tag`` (sub-address), lower case."""
    local, _, domain = address.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _not_a_person(address: str, ctx: Context) -> str | None:
    org = ctx.app.config.organisation
    base = _base(address)
    if base == _base(org.bot_address):
        return "l'auteur est la boîte des réclamations elle-même"
    if base in {_base(a) for a in _staff(ctx)}:
        return (f"l'auteur, {address}, est de l'équipe : une réclamation de l'équipe s'écrit "
                "directement à la boîte des réclamations")
    if base in {_base(a) for a in org.form_senders}:
        return f"l'auteur, {address}, est l'adresse d'envoi du formulaire du site"
    return None


def unreadable_original(msg: InboundMessage, ctx: Context) -> str | None:
    """Nothing forwarded can be read, or its author or date cannot: what is missing."""
    original = _original(msg, ctx)
    if isinstance(original, str):
        return original
    ctx.forwarded = original
    return None


def original_not_a_person(msg: InboundMessage, ctx: Context) -> str | None:
    """The forwarded message was written by the bot, staff or the form's sender."""
    original = _original(msg, ctx)
    assert isinstance(original, Original)  # reached after unreadable_original
    return _not_a_person(original.address, ctx)


def original_from_robot(msg: InboundMessage, ctx: Context) -> str | None:
    """What was passed on is a machine's: the robot rules, its subject's too, run on it
    alone (a letter's address is read as a sender's)."""
    passed = ctx.forwarded
    if isinstance(passed, Original):
        inner_msg = passed.message
    elif isinstance(passed, Letter):
        inner_msg = bare_message(passed.address, "", "", "", None)
    else:
        return None
    inner = Context(ctx.session, ctx.app)  # its own memo: nothing of the forward's
    rules = [*ROBOT_RULES, *(link.rule for link in subject_links(ctx.app.rulebook, Goto("")))]
    for rule in rules:
        reason = rule(inner_msg, inner)
        if reason is not None:
            return f"ce qui est transmis vient d'un robot : {reason}"
    return None


def _known(ctx: Context, address: str, message_id: str) -> tuple[Thread, str] | None:
    """The thread the bot follows for this message (its Message-ID) or this author (an
    open first contact): only ever one whose correspondent is that author, so that a
    reused Message-ID never files someone's words in another person's dossier."""
    found = _known_by_id(ctx, message_id) if message_id else None
    if found is not None and _base(found[0].correspondent) == _base(address):
        return found
    session = ctx.session
    contact = session.scalar(select(Contact).where(Contact.sender_email == address,
                                                   Contact.status == "open")
                             .order_by(Contact.id.desc()))
    if contact is not None:
        return (Thread("contact", contact.id, contact.reference, contact.sender_email),
                "un premier contact ouvert de la même adresse")
    return None


def _known_by_id(ctx: Context, message_id: str) -> tuple[Thread, str] | None:
    session = ctx.session
    if message_id:
        contact = session.scalar(select(Contact).where(Contact.message_id == message_id))
        if contact is not None:
            return _final(session, Thread("contact", contact.id, contact.reference,
                                          contact.sender_email)), "son Message-ID"
        row = session.scalar(select(Inbound).where(Inbound.message_id == message_id,
                                                   Inbound.contact_id.is_not(None)))
        if row is not None and row.contact_id is not None:
            contact = session.get(Contact, row.contact_id)
            if contact is not None:
                return _final(session, Thread("contact", contact.id, contact.reference,
                                              contact.sender_email)), "son Message-ID"
    return None


def known_original(msg: InboundMessage, ctx: Context) -> str | None:
    """The bot already follows this message or its author: the forward joins that
    thread, and no second form link is sent."""
    original = _original(msg, ctx)
    letter = _letter(msg, ctx)
    if isinstance(letter, Letter):
        found = _known(ctx, letter.address, "")
    elif isinstance(original, Original):
        found = _known(ctx, original.address, original.message_id)
    else:
        return None
    if found is None:
        return None
    ctx.thread, how = found
    return f"déjà suivi ({how}) : {ctx.thread.kind} {ctx.thread.reference}"


def forwarded_form(msg: InboundMessage, ctx: Context) -> str | None:
    """The forwarded message is the form, filled in by its author: a submission of hers."""
    original = _original(msg, ctx)
    assert isinstance(original, Original)
    fields = extract_fields(original.message.text, original.message.html, ctx.app.rulebook)
    if not fields.get("form_version"):
        return None
    given = fields.get("email", "")
    if given and (valid_email(given) or given) != original.address:
        # A form naming someone else's address is not its author's submission: she gets
        # the form link instead, and nobody else is written to on its strength.
        return None
    ctx.fields = fields
    return f"le message transféré est le formulaire rempli (version {fields['form_version']})"
