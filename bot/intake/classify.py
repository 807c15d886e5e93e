"""Classify: rules decide what a message is; handlers (``bot.procedure.handlers``) then act on it.

A rule is small and named, and explains itself: it returns a reason string when it
matches, ``None`` otherwise. The chain runs in a fixed order (robots first, so that no
machine is ever answered) and every rule that matched is stored with the message, so
that any decision can be explained to an auditor.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.protocol import OUR_MESSAGE_ID, OWN_HEADER, OWN_HEADER_LINE
from bot.core.text import fold, strip_accents
from bot.intake.authcheck import authentication_problem
from bot.intake.commandline import READ_ONLY, CommandError
from bot.intake.commandline import parse as parse_commands
from bot.intake.message import split_head
from bot.intake.replies import new_text
from bot.rulebook.form import extract_fields
from bot.store import tokens
from bot.store.models import Complaint, Contact, Outbox, Ticket

if TYPE_CHECKING:
    from bot.app import App
    from bot.intake.message import InboundMessage


class Action(StrEnum):
    """What the handlers will do with a message."""

    ROBOT = "robot"  # automatic message: filed, never answered
    BOUNCE = "bounce"  # one of our emails could not be delivered
    TOO_LARGE = "too_large"  # over a size limit: kept on the server, the sender is told
    COMMAND = "command"  # the director acts on the register
    ALERT = "alert"  # someone tried to act on the register without the right: director warned
    DIRECTOR = "director"  # the director's ordinary mail: left for her
    SUBMISSION = "submission"  # the official form, filled in
    TICKET_REPLY = "ticket_reply"  # information supplied for an incomplete ticket
    CONTACT_REPLY = "contact_reply"  # answer to the form-link email
    COMPLAINT_REPLY = "complaint_reply"  # the complainant writes about a registered complaint
    NEW_CONTACT = "new_contact"  # free-text complaint: answered with the form link
    LEAVE = "leave"  # not for the bot: left unread in the inbox for humans


#: What each action is called where people read it (the demo, the audit file).
ACTION_LABELS: dict[str, str] = {
    Action.ROBOT: "robot (jamais de réponse)",
    Action.BOUNCE: "rapport d'échec de remise",
    Action.TOO_LARGE: "trop volumineux",
    Action.COMMAND: "commandes de la direction",
    Action.ALERT: "alerte",
    Action.DIRECTOR: "courriel de la direction",
    Action.SUBMISSION: "formulaire reçu",
    Action.TICKET_REPLY: "complément d'un ticket",
    Action.CONTACT_REPLY: "réponse au lien du formulaire",
    Action.COMPLAINT_REPLY: "message sur une réclamation",
    Action.NEW_CONTACT: "premier contact",
    Action.LEAVE: "laissé aux personnes",
}


@dataclass(frozen=True)
class Match:
    """A rule that matched, and why."""

    rule: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "reason": self.reason}


@dataclass(frozen=True)
class Thread:
    """The register entry a message answers."""

    kind: str  # "complaint", "ticket" or "contact"
    id: int
    reference: str
    correspondent: str


@dataclass(frozen=True)
class Decision:
    """The action chosen, every rule that led to it, and what the rules already worked out."""

    action: Action
    matches: tuple[Match, ...]
    thread: Thread | None = None
    fields: dict[str, str] = field(default_factory=dict)
    bounced: tuple[int, ...] = ()  # outbox rows a delivery report says failed


Rule = Callable[["InboundMessage", "App"], "str | None"]


# --- Robots (RFC 3834 and common practice); the words are in rules/robots.toml --------------


def auto_submitted(msg: InboundMessage, app: App) -> str | None:
    value = msg.header("Auto-Submitted").split(";", 1)[0].strip().lower()
    if value and value not in app.rulebook.robots.auto_submitted_human_values:
        return f"Auto-Submitted: {value} (message automatique, RFC 3834)"
    return None


def return_path(msg: InboundMessage, app: App) -> str | None:
    """The envelope sender: empty for reports (RFC 5321), or a delivery system's address."""
    if not msg.has_header("Return-Path"):
        return None
    value = msg.header("Return-Path").strip()
    if value in ("<>", ""):
        return "Return-Path: <> (rapport de remise ou avis automatique)"
    local = value.strip("<>").rsplit("@", 1)[0].strip().lower()
    if local in app.rulebook.robots.robot_return_paths:
        return f"Return-Path {local}@… (l'enveloppe d'un système de messagerie)"
    return None


def robot_sender(msg: InboundMessage, app: App) -> str | None:
    if not msg.from_address:
        return "pas d'adresse From utilisable"
    local = msg.from_address.split("@", 1)[0]
    if local in app.rulebook.robots.robot_senders:
        return f"l'expéditeur {local}@… est une machine"
    return None


def precedence(msg: InboundMessage, app: App) -> str | None:
    value = msg.header("Precedence").strip().lower()
    if value in app.rulebook.robots.precedence_values:
        return f"Precedence: {value}"
    return None


def robot_headers(msg: InboundMessage, app: App) -> str | None:
    present = [h for h in app.rulebook.robots.presence_headers if msg.has_header(h)]
    return f"en-tête {present[0]} présent (liste ou expéditeur automatique)" if present else None


def delivery_report(msg: InboundMessage, app: App) -> str | None:
    if msg.content_type in app.rulebook.robots.report_content_types:
        return f"type de contenu {msg.content_type} (rapport de remise ou de lecture)"
    return None



_CONTENT_TYPE = re.compile(rb"(?im)^content-type:[ \t]*([a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+)")


def _part_types(msg: InboundMessage) -> list[tuple[int, str]]:
    """(offset, type) of every Content-Type header of the message, its own first."""
    return [(m.start(), m.group(1).decode("ascii").lower())
            for m in _CONTENT_TYPE.finditer(msg.raw)]


def _outside_enclosed(msg: InboundMessage, app: App) -> list[str]:
    """Content types of the parts that are not inside an enclosed message.

    An enclosed message (``message/rfc822``) comes after the parts that describe it in
    every report format, so a type seen before the first one is the message's own.
    """
    types = _part_types(msg)
    enclosed = app.rulebook.robots.enclosed_message_types
    first = next((offset for offset, kind in types if kind in enclosed), len(msg.raw))
    return [kind for offset, kind in types[1:] if offset < first]


def report_structure(msg: InboundMessage, app: App) -> str | None:
    """A part only reports carry, wherever it sits (but inside a forwarded message)."""
    found = [kind for kind in _outside_enclosed(msg, app)
             if kind in app.rulebook.robots.report_part_types]
    return f"une partie {found[0]} (la structure d'un rapport)" if found else None


def report_body_opening(msg: InboundMessage, app: App) -> str | None:
    """The body begins as delivery systems begin theirs."""
    lines = [" ".join(strip_accents(line).casefold().split())
             for line in msg.text.splitlines() if line.strip()][:3]
    for pattern in app.rulebook.robots.report_body_openings:
        if any(pattern.match(line) for line in lines):
            return f"le corps commence comme un rapport de remise ({pattern.pattern!r})"
    return None


def enclosed_failure(msg: InboundMessage, app: App) -> str | None:
    """An enclosed message, and the bounce detector finds a failed delivery around it.

    People forward emails too: the enclosed message alone proves nothing, flufl.bounce
    reading the report around it does. The enclosed messages are left out of what it
    reads: a person forwarding a report she received encloses the report itself.
    """
    enclosed = app.rulebook.robots.enclosed_message_types
    if not any(kind in enclosed for _offset, kind in _part_types(msg)):
        return None
    temporary, permanent = failures(msg.raw, leave_out=enclosed)
    found = sorted(permanent | temporary)
    if found:
        return (f"un message joint, et flufl.bounce y lit un échec de remise à "
                f"{', '.join(found[:3])}")
    return None


ROBOT_RULES: tuple[Rule, ...] = (
    auto_submitted,
    return_path,
    robot_sender,
    precedence,
    robot_headers,
    delivery_report,
    report_structure,
    report_body_opening,
    enclosed_failure,
)


# Prefixes of replies in the languages of rules/robots.toml; forwarding prefixes are
# data (``forward_prefixes``), since a forwarded subject turns the subject rules off.
_REPLY_PREFIXES = re.compile(
    r"^(\s*(re|aw|sv|vs|rif|r|antw|res|ref)\s*(\[\d+\]|\(\d+\))?\s*:\s*)+")


@functools.lru_cache(maxsize=64)
def _forward_prefix(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    words = "|".join(re.escape(p) for p in prefixes) or "(?!)"
    return re.compile(rf"^({words})\s*(\[\d+\]|\(\d+\))?\s*:")


@functools.lru_cache(maxsize=256)
def rule_subject(subject: str, tags: tuple[str, ...]) -> str:
    """The subject as subject rules read it: lower-case, accent-free, one space between
    words, without reply prefixes, and without the complaint tag wherever it stands (a
    report re-tagged by a person or a forwarding rule is still a report)."""
    text = " ".join(strip_accents(subject).casefold().split())
    for tag in tags:
        text = re.sub(rf"[\[(]?\b{re.escape(tag)}s?\b[\])]?\s*[:\-–—]*\s*", " ", text)
    text = " ".join(text.split())
    previous = None
    while previous != text:
        previous, text = text, _REPLY_PREFIXES.sub("", text).strip(" :-–—")
    return text


def forwarded(subject: str, prefixes: tuple[str, ...]) -> bool:
    """The subject (as :func:`rule_subject` reads it) is a person's forward: "TR: Non
    remis : …" is a report she received and sends on, not the report itself."""
    return _forward_prefix(prefixes).match(subject) is not None


def subject_rules(msg: InboundMessage, app: App) -> tuple[Match, ...]:
    """The data-driven subject rules of ``rules/robots.toml`` that match, with reasons;
    none on a forwarded subject."""
    subject = rule_subject(msg.subject, app.rulebook.subject_tags)
    if forwarded(subject, app.rulebook.robots.forward_prefixes):
        return ()
    matches = []
    for rule in app.rulebook.robots.subject_rules:
        pattern = rule.match(subject)
        if pattern is not None:
            matches.append(Match(rule.name, f"{rule.reason} (motif {pattern!r})"))
    return tuple(matches)


def robot_matches(msg: InboundMessage, app: App) -> tuple[Match, ...]:
    """Every robot rule that matches ``msg``: the named rules, then the subject rules."""
    return (*(Match(rule.__name__, reason) for rule in ROBOT_RULES
              if (reason := rule(msg, app)) is not None), *subject_rules(msg, app))


def own_message(msg: InboundMessage, app: App) -> str | None:
    if msg.has_header(OWN_HEADER):
        return f"porte {OWN_HEADER} : un courriel du bot lui-même est revenu"
    if msg.from_address == app.config.organisation.bot_address:
        return "envoyé depuis l'adresse du bot lui-même"
    return None




def failures(raw: bytes, leave_out: tuple[str, ...] = ()) -> tuple[set[str], set[str]]:
    """(temporary, permanent) failed addresses that flufl.bounce reads in ``raw``, with
    the parts of the ``leave_out`` content types emptied first."""
    import email as email_module

    from flufl.bounce import all_failures

    try:
        parsed = email_module.message_from_bytes(raw)
        for part in parsed.walk():
            if part.get_content_type() in leave_out:
                part.set_payload([])
        temporary, permanent = all_failures(parsed)
    except Exception:  # a detector choking on odd input: then it is no usable report
        return set(), set()
    return ({a.decode("utf-8", "replace") for a in temporary},
            {a.decode("utf-8", "replace") for a in permanent})


def quotes_own_email(session: Session, msg: InboundMessage, app: App) -> str | None:
    """The body quotes one of the bot's emails (its Message-ID or its X-Reclambot header),
    and the sender is nobody the bot ever wrote to: a machine sent it back."""
    body = msg.raw[split_head(msg.raw)[1]:]
    quoted = list(dict.fromkeys(m.decode("ascii") for m in OUR_MESSAGE_ID.findall(body)))
    if not quoted and not OWN_HEADER_LINE.search(body):
        return None
    sender = msg.from_address
    if sender and session.scalar(select(Outbox.id).where(Outbox.to_address == sender)
                                 .limit(1)) is not None:
        return None  # a correspondent forwarding or quoting our email: a person
    what = f"le courriel du bot {quoted[0]}" if quoted else f"un courriel portant {OWN_HEADER}"
    return (f"cite {what}, depuis {sender or 'aucune adresse'}, à qui le bot n'a jamais "
            "écrit")


def bounce(session: Session, msg: InboundMessage, app: App,
           robots: tuple[Match, ...] = ()) -> Decision | None:
    """A delivery failure report about one of our emails (DSN or a provider's own format).

    ``robots`` are the robot rules that matched: recorded after the report's own match,
    so the row tells an auditor both what the report was about and why it is a robot's.
    """
    ours = list(dict.fromkeys(m.decode("ascii") for m in OUR_MESSAGE_ID.findall(msg.raw)))
    if not ours:
        return None
    rows = session.scalars(select(Outbox).where(Outbox.message_id.in_(ours))).all()
    if not rows:
        return None
    temporary_set, permanent_set = failures(msg.raw)
    temporary = sorted(temporary_set)
    failed = sorted(permanent_set)
    if failed:
        return Decision(Action.BOUNCE, (Match("bounce", (
            f"rapport d'échec de remise à {', '.join(failed)} sur l'envoi "
            f"#{', #'.join(str(r.id) for r in rows)}")), *robots),
            bounced=tuple(r.id for r in rows))
    if temporary:
        return Decision(Action.ROBOT, (Match("delay_report", "retard de remise temporaire "
                                             "signalé sur un de nos courriels"), *robots))
    return None


# --- Complaints ------------------------------------------------------------------------------


def from_form(msg: InboundMessage, app: App) -> str | None:
    if msg.from_address in app.config.organisation.form_senders:
        return f"envoyé par le formulaire du site ({msg.from_address})"
    return None


def from_director(msg: InboundMessage, app: App) -> str | None:
    if msg.from_address in app.config.organisation.director_addresses:
        return "envoyé depuis une adresse de la direction : jamais une réclamation"
    return None


def _command_names(msg: InboundMessage) -> list[str] | None:
    """Names of the commands in the new text; ``None`` if a line is no known command."""
    try:
        return [c.name for c in parse_commands(new_text(msg.text))]
    except CommandError:
        return None


def director_decision(session: Session, msg: InboundMessage, app: App,
                      matches: tuple[Match, ...]) -> Decision:
    """A director address wrote: a command (valid token), an alert, or her own mail."""
    found = tokens.subject_pattern(app.rulebook.complaint_prefix).search(msg.subject)
    auth = authentication_problem(msg, app.config.security)
    names = _command_names(msg)
    if found is not None:
        number, token = found.groups()
        complaint = session.scalar(select(Complaint).where(Complaint.number == number))
        if complaint is None or not app.tokens.check(number, token):
            return Decision(Action.ALERT, (*matches, Match(
                "command_token", f"la clé de l'objet n'est pas valable pour {number}")))
        if auth:
            return Decision(Action.ALERT, (*matches, Match("authentication", auth)))
        thread = Thread("complaint", complaint.id, complaint.number, complaint.client_email)
        return Decision(Action.COMMAND, (*matches, Match(
            "command_token", f"clé de commande valable pour {number}")), thread=thread)
    if names is None or (names and not set(names) <= READ_ONLY):
        return Decision(Action.ALERT, (*matches, Match(
            "command_token", "des commandes sans la clé d'une réclamation dans l'objet")))
    if names:
        if auth:
            return Decision(Action.ALERT, (*matches, Match("authentication", auth)))
        return Decision(Action.COMMAND, (*matches, Match(
            "read_only_command", f"commande(s) de lecture seule {', '.join(names)}")))
    return Decision(Action.DIRECTOR, (*matches, Match(
        "no_command", "no command: the director's own mail, left for her")))


def foreign_token(msg: InboundMessage, app: App) -> str | None:
    if tokens.subject_pattern(app.rulebook.complaint_prefix).search(msg.subject):
        return (f"une clé de commande dans l'objet, mais {msg.from_address or 'l’expéditeur'} "
                "n'est pas une adresse de la direction")
    return None


def subject_tag(msg: InboundMessage, app: App) -> str | None:
    # A word that begins with the tag: "RÉCLAMATION:", "Réclamations", "RECLAMATION-2".
    words = f" {fold(msg.subject)}"
    for tag in app.rulebook.subject_tags:
        if f" {tag}" in words:
            return f"l'objet porte l'étiquette {tag.upper()}"
    return None


def _references_pattern(app: App) -> re.Pattern[str]:
    r = app.rulebook
    return re.compile(
        rf"\b({re.escape(r.complaint_prefix)}-\d{{4}}-\d{{4,}}"
        rf"|(?:{re.escape(r.contact_prefix)}|{re.escape(r.ticket_prefix)})-[A-Z0-9]{{8}})\b"
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


def find_thread(session: Session, msg: InboundMessage, app: App) -> tuple[Thread | None, Match]:
    """The register entry this message answers, by subject reference or threading headers."""
    found = None
    how = ""
    for reference in _references_pattern(app).findall(msg.subject):
        found = _by_reference(session, reference)
        if found is not None:
            how = f"référence {reference} dans l'objet"
            break
    if found is None:
        found = _by_message_id(session, msg.thread_ids())
        how = "In-Reply-To/References d'un courriel envoyé par le bot"
    if found is None:
        return None, Match("thread", "aucun fil connu")
    found = _final(session, found)
    sender = msg.from_address
    if sender != found.correspondent and msg.reply_to != found.correspondent:
        return None, Match(
            "thread", f"{how} désigne {found.reference}, mais l'expéditeur n'en est pas le "
                      "correspondant"
        )
    return found, Match("thread", f"{how} : {found.kind} {found.reference}")


def classify(session: Session, msg: InboundMessage, app: App,
             over_limit: str | None = None) -> Decision:
    """Run the rule chain on ``msg`` and return the decision with its reasons.

    ``over_limit`` says why the message exceeds ``[limits]``, when it does.
    """
    own = own_message(msg, app)
    if own:
        return Decision(Action.ROBOT, (Match("own_message", own),))
    form = from_form(msg, app)
    if not form:
        robots = robot_matches(msg, app)
        if robots:
            # Only a robot's message can be a delivery report worth reading as one.
            return bounce(session, msg, app, robots) or Decision(Action.ROBOT, robots)
        quoted = quotes_own_email(session, msg, app)
        if quoted:
            found = (Match("quotes_own_email", quoted),)
            return bounce(session, msg, app, found) or Decision(Action.ROBOT, found)
    if over_limit:
        return Decision(Action.TOO_LARGE, (Match("size_limit", over_limit),))
    if form:
        fields = extract_fields(msg.text, msg.html, app.rulebook)
        return Decision(Action.SUBMISSION, (Match("from_form", form),), fields=fields)
    director = from_director(msg, app)
    if director:
        return director_decision(session, msg, app, (Match("from_director", director),))
    foreign = foreign_token(msg, app)
    if foreign:
        return Decision(Action.ALERT, (Match("foreign_token", foreign),))
    thread, thread_match = find_thread(session, msg, app)
    if thread is not None:
        action = {
            "complaint": Action.COMPLAINT_REPLY,
            "ticket": Action.TICKET_REPLY,
            "contact": Action.CONTACT_REPLY,
        }[thread.kind]
        return Decision(action, (thread_match,), thread=thread)
    tag = subject_tag(msg, app)
    if tag:
        fields = extract_fields(msg.text, msg.html, app.rulebook)
        if fields.get("form_version"):
            reason = f"le corps est le formulaire rempli (version {fields['form_version']})"
            return Decision(
                Action.SUBMISSION, (Match("subject_tag", tag), Match("filled_form", reason)),
                fields=fields,
            )
        return Decision(Action.NEW_CONTACT, (Match("subject_tag", tag), thread_match))
    return Decision(
        Action.LEAVE,
        (thread_match,
         Match("no_tag", "pas d'étiquette RÉCLAMATION dans l'objet : laissé non lu pour "
                         "une personne")),
    )
