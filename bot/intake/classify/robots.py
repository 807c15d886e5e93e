"""Robot rules (RFC 3834 and common practice), and delivery reports about our emails.

The words are in ``rules/robots.toml``; the ``[[subject_rules]]`` there become links of
the chain, one each (:func:`subject_links`).
"""

from __future__ import annotations

import functools
import itertools
import re
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.core.protocol import OUR_MESSAGE_ID, OWN_HEADER, OWN_HEADER_LINE, LinePattern
from bot.core.text import strip_accents
from bot.intake.classify.chain import Context, Link, Outcome, Rule
from bot.intake.message import split_head
from bot.store.models import Outbox

if TYPE_CHECKING:
    from bot.intake.message import InboundMessage
    from bot.rulebook import Rulebook, SubjectRule


def own_message(msg: InboundMessage, ctx: Context) -> str | None:
    """One of the bot's own emails came back (a loop, a forward to itself)."""
    if msg.has_header(OWN_HEADER):
        return f"porte {OWN_HEADER} : un courriel du bot lui-même est revenu"
    if msg.from_address == ctx.app.config.organisation.bot_address:
        return "envoyé depuis l'adresse du bot lui-même"
    return None


def auto_submitted(msg: InboundMessage, ctx: Context) -> str | None:
    value = msg.header("Auto-Submitted").split(";", 1)[0].strip().lower()
    if value and value not in ctx.app.rulebook.robots.auto_submitted_human_values:
        return f"Auto-Submitted: {value} (message automatique, RFC 3834)"
    return None


def return_path(msg: InboundMessage, ctx: Context) -> str | None:
    """The envelope sender: empty for reports (RFC 5321), or a delivery system's address."""
    if not msg.has_header("Return-Path"):
        return None
    value = msg.header("Return-Path").strip()
    if value in ("<>", ""):
        return "Return-Path: <> (rapport de remise ou avis automatique)"
    local = value.strip("<>").rsplit("@", 1)[0].strip().lower()
    if local in ctx.app.rulebook.robots.robot_return_paths:
        return f"Return-Path {local}@… (l'enveloppe d'un système de messagerie)"
    return None


def robot_sender(msg: InboundMessage, ctx: Context) -> str | None:
    if not msg.from_address:
        return "pas d'adresse From utilisable"
    local = msg.from_address.split("@", 1)[0]
    for sender in ctx.app.rulebook.robots.robot_senders:
        # "owner-" begins a list server's address, "-request" ends one; else the whole.
        if (local == sender or (sender.endswith("-") and local.startswith(sender))
                or (sender.startswith("-") and local.endswith(sender))):
            return f"l'expéditeur {local}@… est une machine"
    return None


def precedence(msg: InboundMessage, ctx: Context) -> str | None:
    value = msg.header("Precedence").strip().lower()
    if value in ctx.app.rulebook.robots.precedence_values:
        return f"Precedence: {value}"
    return None


def robot_headers(msg: InboundMessage, ctx: Context) -> str | None:
    present = [h for h in ctx.app.rulebook.robots.presence_headers if msg.has_header(h)]
    return f"en-tête {present[0]} présent (liste ou expéditeur automatique)" if present else None


def delivery_report(msg: InboundMessage, ctx: Context) -> str | None:
    if msg.content_type in ctx.app.rulebook.robots.report_content_types:
        return f"type de contenu {msg.content_type} (rapport de remise ou de lecture)"
    return None


_CONTENT_TYPE = LinePattern(
    rb"(?i:content-type:[ \t]*([a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+))")


def _part_types(msg: InboundMessage) -> list[tuple[int, str]]:
    """(offset, type) of every Content-Type header of the message, its own first."""
    return [(start, m.group(1).decode("ascii").lower())
            for start, m in _CONTENT_TYPE.finditer(msg.raw)]


def _outside_enclosed(msg: InboundMessage, ctx: Context) -> list[str]:
    """Content types of the parts that are not inside an enclosed message.

    An enclosed message (``message/rfc822``) comes after the parts that describe it in
    every report format, so a type seen before the first one is the message's own.
    """
    types = _part_types(msg)
    enclosed = ctx.app.rulebook.robots.enclosed_message_types
    first = next((offset for offset, kind in types if kind in enclosed), len(msg.raw))
    return [kind for offset, kind in types[1:] if offset < first]


def report_structure(msg: InboundMessage, ctx: Context) -> str | None:
    """A part only reports carry, wherever it sits (but inside a forwarded message)."""
    found = [kind for kind in _outside_enclosed(msg, ctx)
             if kind in ctx.app.rulebook.robots.report_part_types]
    return f"une partie {found[0]} (la structure d'un rapport)" if found else None


#: How much of a line the body openings are matched against (the longest is far shorter).
OPENING_CHARS = 300


def report_body_opening(msg: InboundMessage, ctx: Context) -> str | None:
    """The body begins as delivery systems begin theirs."""
    # The first three lines only, and their first OPENING_CHARS characters (every opening
    # is a short sentence): folding whole paragraphs cost more than the rule itself.
    lines = list(itertools.islice(
        (" ".join(strip_accents(line[:OPENING_CHARS]).casefold().split())
         for line in msg.text.splitlines() if line.strip()), 3))
    for pattern in ctx.app.rulebook.robots.report_body_openings:
        if any(pattern.match(line) for line in lines):
            return f"le corps commence comme un rapport de remise ({pattern.pattern!r})"
    for pattern in ctx.app.rulebook.robots.report_first_lines:
        if lines and pattern.match(lines[0]):
            return f"la première ligne du corps est celle d'une passerelle ({pattern.pattern!r})"
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


def enclosed_failure(msg: InboundMessage, ctx: Context) -> str | None:
    """An enclosed message, and the bounce detector finds a failed delivery around it.

    People forward emails too: the enclosed message alone proves nothing, flufl.bounce
    reading the report around it does. The enclosed messages are left out of what it
    reads: a person forwarding a report she received encloses the report itself.
    """
    enclosed = ctx.app.rulebook.robots.enclosed_message_types
    if not any(kind in enclosed for _offset, kind in _part_types(msg)):
        return None
    temporary, permanent = failures(msg.raw, leave_out=enclosed)
    found = sorted(permanent | temporary)
    if found:
        return (f"un message joint, et flufl.bounce y lit un échec de remise à "
                f"{', '.join(found[:3])}")
    return None


#: The named robot rules, in the order they run (the subject rules follow, from data).
ROBOT_RULES = (
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


def _robot_subject(msg: InboundMessage, ctx: Context) -> str | None:
    """The subject as subject rules read it; ``None`` for a person's forward."""
    rules = ctx.app.rulebook

    def read() -> str | None:
        subject = rule_subject(msg.subject, rules.subject_tags)
        return None if forwarded(subject, rules.robots.forward_prefixes) else subject

    return ctx.once("robot_subject", read)


def _subject_rule(rule: SubjectRule) -> Rule:
    def matches(msg: InboundMessage, ctx: Context) -> str | None:
        subject = _robot_subject(msg, ctx)
        pattern = rule.match(subject) if subject is not None else None
        return f"{rule.reason} (motif {pattern!r})" if pattern is not None else None

    matches.__doc__ = f"{rule.reason} (rules/robots.toml, [[subject_rules]] {rule.name})"
    return matches


def subject_links(rulebook: Rulebook, outcome: Outcome) -> tuple[Link, ...]:
    """One link per ``[[subject_rules]]`` entry of ``rules/robots.toml``: none matches a
    forwarded subject."""
    return tuple(Link(_subject_rule(rule), outcome, name=rule.name)
                 for rule in rulebook.robots.subject_rules)


# --- What the bot itself sent, coming back ---------------------------------------------------


def quotes_own_email(msg: InboundMessage, ctx: Context) -> str | None:
    """The body quotes one of the bot's emails (its Message-ID or its X-Reclambot header),
    and the sender is nobody the bot ever wrote to: a machine sent it back."""
    start = split_head(msg.raw)[1]  # the body, without copying it
    quoted = list(dict.fromkeys(m.decode("ascii")
                                for m in OUR_MESSAGE_ID.findall(msg.raw, start)))
    if not quoted and not OWN_HEADER_LINE.search(msg.raw, start):
        return None
    sender = msg.from_address
    if sender and ctx.session.scalar(select(Outbox.id).where(Outbox.to_address == sender)
                                     .limit(1)) is not None:
        return None  # a correspondent forwarding or quoting our email: a person
    what = f"le courriel du bot {quoted[0]}" if quoted else f"un courriel portant {OWN_HEADER}"
    return (f"cite {what}, depuis {sender or 'aucune adresse'}, à qui le bot n'a jamais "
            "écrit")


def _report(msg: InboundMessage, ctx: Context) -> tuple[list[Outbox], list[str], list[str]]:
    """Our emails a report names, and the (permanent, temporary) failures it reads."""

    def read() -> tuple[list[Outbox], list[str], list[str]]:
        ours = list(dict.fromkeys(m.decode("ascii") for m in OUR_MESSAGE_ID.findall(msg.raw)))
        rows = list(ctx.session.scalars(select(Outbox).where(Outbox.message_id.in_(ours)))
                    ) if ours else []
        if not rows:
            return [], [], []
        temporary, permanent = failures(msg.raw)
        return rows, sorted(permanent), sorted(temporary)

    return ctx.once("report", read)


def bounce(msg: InboundMessage, ctx: Context) -> str | None:
    """A delivery failure report about one of our emails (DSN or a provider's own format)."""
    rows, failed, _temporary = _report(msg, ctx)
    if not failed:
        return None
    ctx.bounced = tuple(r.id for r in rows)
    return (f"rapport d'échec de remise à {', '.join(failed)} sur l'envoi "
            f"#{', #'.join(str(r.id) for r in rows)}")


def delay_report(msg: InboundMessage, ctx: Context) -> str | None:
    """A report that one of our emails is delayed: nothing to do but file it."""
    _rows, _failed, temporary = _report(msg, ctx)
    return "retard de remise temporaire signalé sur un de nos courriels" if temporary else None
