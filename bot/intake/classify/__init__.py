"""Classify: the chain decides what a message is; the handlers (``bot.procedure.handlers``)
then act on what the decision carries.

The chains below are the whole order of the rules, read top to bottom: robots first, so
that no machine is ever answered; the official form's own sender next; then the
director, the threads of the register, and the subject tag. Each rule is a function of
``(message, context)`` that returns its reason when it matches (``chain.py``); every rule
that ran is recorded on the message's ``inbound`` row, matched or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bot.core.states import Action
from bot.intake.classify.chain import (
    Chain,
    Context,
    Decide,
    Decision,
    Goto,
    Link,
    Match,
    Thread,
    run,
)
from bot.intake.classify.director import (
    authentication,
    command_tag,
    commands_without_token,
    foreign_token,
    from_director,
    invalid_token,
    read_only_commands,
    valid_token,
)
from bot.intake.classify.forwards import (
    forwarded_form,
    known_original,
    letter_refused,
    original_from_robot,
    original_not_a_person,
    staff_forward,
    subject_tag,
    transmitted_letter,
    unreadable_original,
)
from bot.intake.classify.robots import (
    ROBOT_RULES,
    bounce,
    delay_report,
    own_message,
    quotes_own_email,
    subject_links,
)
from bot.intake.classify.threads import (
    complaint_thread,
    contact_thread,
    filled_form_in_reply,
    satisfaction_rating,
    stranger_to_thread,
    thread_found,
    ticket_thread,
)
from bot.rulebook.form import extract_fields

if TYPE_CHECKING:
    from bot.app import App
    from bot.intake.message import InboundMessage
    from bot.rulebook import Rulebook

__all__ = ["Action", "Context", "Decision", "Match", "Thread", "chains", "classify",
           "classify_web_form"]


def from_form(msg: InboundMessage, ctx: Context) -> str | None:
    """Sent by the website's form plugin: a submission, whatever its words look like."""
    if msg.from_address in ctx.app.config.organisation.form_senders:
        return f"envoyé par le formulaire du site ({msg.from_address})"
    return None


def size_limit(msg: InboundMessage, ctx: Context) -> str | None:
    """Over one of ``[limits]`` (worked out by the pipeline from the raw message)."""
    return ctx.over_limit


def form_fields(msg: InboundMessage, ctx: Context) -> str | None:
    """The form's fields, read from its HTML table or its text: always there to read."""
    ctx.fields = extract_fields(msg.text, msg.html, ctx.app.rulebook)
    filled = len([value for value in ctx.fields.values() if value])
    version = ctx.fields.get("form_version") or "absente"
    return f"{filled} champ(s) du formulaire lu(s), version {version}"


def filled_form(msg: InboundMessage, ctx: Context) -> str | None:
    """A tagged email whose body is the form, filled in (pasted, or sent by a plugin
    from an address not listed in ``form_senders``)."""
    fields = extract_fields(msg.text, msg.html, ctx.app.rulebook)
    if not fields.get("form_version"):
        return None
    ctx.fields = fields
    return f"le corps est le formulaire rempli (version {fields['form_version']})"


#: Set by the web form (:mod:`bot.web`) on the message it writes of a submission.
WEB_FORM_HEADER = "X-Reclambot-Web-Form"


def web_form(msg: InboundMessage, ctx: Context) -> str | None:
    """The official form, submitted on reclambot's own page: already checked, conforming."""
    client = msg.header(WEB_FORM_HEADER).split(";", 1)[0].strip()
    if not client:
        return None
    if ctx.given_fields is not None:
        # The fields the page validated, as they were: the message is their record only.
        ctx.fields = dict(ctx.given_fields)
        ctx.signed_reference = bool(ctx.fields.get("reference"))
    else:
        ctx.fields = extract_fields(msg.text, "", ctx.app.rulebook)
    return (f"formulaire en ligne de reclambot (version {ctx.fields.get('form_version', '?')})"
            f", envoyé depuis {client}")


NO_TAG = Decide(Action.LEAVE, "no_tag", "pas d'étiquette RÉCLAMATION dans l'objet : laissé "
                                        "non lu pour une personne")
NO_COMMAND = Decide(Action.DIRECTOR, "no_command", "pas de commande : le courriel de la "
                                                   "direction, laissé pour elle")


def build_chains(rulebook: Rulebook) -> dict[str, Chain]:
    """The chains, with one link per subject rule of ``rulebook``."""
    robots = tuple(Link(rule, Goto("report")) for rule in ROBOT_RULES)
    table = (
        Chain("start", (
            Link(own_message, Action.ROBOT),
            Link(from_form, Goto("form")),
        ), otherwise=Goto("robots")),
        Chain("robots", robots + subject_links(rulebook, Goto("report")),
              otherwise=Goto("quoting"), every=True),
        # A staff member's forward of the bot's own email, or of a complainant's reply
        # quoting it, is hers to pass on: the forward chain says what it may become.
        Chain("quoting", (
            Link(staff_forward, Goto("staff")),
            Link(quotes_own_email, Goto("report")),
        ), otherwise=Goto("people")),
        Chain("staff", (
            Link(size_limit, Action.TOO_LARGE),
        ), otherwise=Goto("forward")),
        # Only a robot's message is read as a delivery report.
        Chain("report", (
            Link(bounce, Action.BOUNCE),
            Link(delay_report, Action.ROBOT),
        ), otherwise=Action.ROBOT),
        Chain("form", (
            Link(size_limit, Action.TOO_LARGE),
            Link(form_fields, Action.SUBMISSION),
        ), otherwise=Action.SUBMISSION),
        Chain("people", (
            Link(size_limit, Action.TOO_LARGE),
            Link(from_director, Goto("director")),
            Link(foreign_token, Action.ALERT),
            Link(thread_found, Goto("thread")),
        ), otherwise=Goto("tag")),
        Chain("director", (
            Link(command_tag, Goto("tagged command")),
            Link(commands_without_token, Action.ALERT),
            Link(read_only_commands, Goto("read-only command")),
        ), otherwise=NO_COMMAND),
        Chain("tagged command", (
            Link(invalid_token, Action.ALERT),
            Link(authentication, Action.ALERT),
            Link(valid_token, Action.COMMAND),
        ), otherwise=Action.ALERT),
        # What staff pass on: refused with the reason unless it names a person the bot
        # may write to; a thread the bot already follows is joined, never opened twice.
        Chain("forward", (
            Link(authentication, Action.ALERT),
            Link(transmitted_letter, Goto("letter")),
            Link(unreadable_original, Action.FORWARD_REFUSED),
            Link(original_not_a_person, Action.FORWARD_REFUSED),
            Link(original_from_robot, Action.FORWARD_REFUSED),
            Link(known_original, Action.FORWARD),
            Link(forwarded_form, Action.FORWARD),
        ), otherwise=Action.FORWARD),
        Chain("letter", (
            Link(letter_refused, Action.FORWARD_REFUSED),
            Link(original_from_robot, Action.FORWARD_REFUSED),
            Link(known_original, Action.FORWARD),
        ), otherwise=Action.FORWARD),
        Chain("read-only command", (
            Link(authentication, Action.ALERT),
        ), otherwise=Action.COMMAND),
        Chain("thread", (
            Link(stranger_to_thread, Goto("tag")),
            Link(complaint_thread, Goto("complaint")),
            Link(ticket_thread, Action.TICKET_REPLY),
            Link(contact_thread, Goto("contact")),
        ), otherwise=Goto("tag")),
        Chain("complaint", (
            Link(satisfaction_rating, Action.COMPLAINT_REPLY),
        ), otherwise=Action.COMPLAINT_REPLY),
        Chain("contact", (
            Link(filled_form_in_reply, Action.SUBMISSION),
        ), otherwise=Action.CONTACT_REPLY),
        Chain("tag", (
            Link(subject_tag, Goto("tagged")),
        ), otherwise=NO_TAG),
        Chain("tagged", (
            Link(filled_form, Action.SUBMISSION),
        ), otherwise=Action.NEW_CONTACT),
    )
    return {chain.name: chain for chain in table}


#: The chain of a submission of the web form: no mail rule applies to what the
#: complainant typed (a name like "noreply" is no robot there).
WEB_CHAINS = {"web": Chain("web", (Link(web_form, Action.SUBMISSION),), otherwise=Action.LEAVE)}


# Built once per rulebook: hot path. Keyed by identity, the rulebook being unhashable.
_BUILT: dict[int, tuple[Rulebook, dict[str, Chain]]] = {}


def chains(rulebook: Rulebook) -> dict[str, Chain]:
    """The chains of ``rulebook``, built on first use."""
    built = _BUILT.get(id(rulebook))
    if built is None or built[0] is not rulebook:
        built = _BUILT[id(rulebook)] = (rulebook, build_chains(rulebook))
    return built[1]


def classify(session: Session, msg: InboundMessage, app: App,
             over_limit: str | None = None) -> Decision:
    """Run the chains on ``msg`` and return the decision with its reasons.

    ``over_limit`` says why the message exceeds ``[limits]``, when it does.
    """
    return run(chains(app.rulebook), "start", msg, Context(session, app, over_limit))


def classify_web_form(session: Session, msg: InboundMessage, app: App,
                      over_limit: str | None = None,
                      fields: dict[str, str] | None = None) -> Decision:
    """The decision on the message the web form wrote of a submission (its own chain),
    with the ``fields`` the page validated (its reference, if any, checked signed)."""
    return run(WEB_CHAINS, "web", msg, Context(session, app, over_limit, given_fields=fields))


def robot_matches(msg: InboundMessage, ctx: Context) -> tuple[Match, ...]:
    """Every robot rule that matches ``msg`` (the robots chain alone, for tests and tools)."""
    return tuple(Match(link.rule_name, reason) for link in chains(ctx.app.rulebook)["robots"].links
                 if (reason := link.rule(msg, ctx)) is not None)

