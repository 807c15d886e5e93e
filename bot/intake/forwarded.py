"""Read what a member of staff passes on: the message she forwards, or a letter.

A complaint often reaches a trainer or the secretariat first. Forwarded to the complaints
mailbox, the message it carries is what counts (its author, its date, its text), and
the clients carry it in two ways:

- **attached**: an enclosed ``message/rfc822`` part ("forward as attachment", Outlook's
  forward of an item, a ``.eml`` file), parsed here like any message;
- **inline**: the original under a header block the client writes in the language of
  its user (Gmail «---------- Forwarded message ---------» / «Message transféré», Outlook
  «De : … Envoyé : … À : … Objet :», Apple Mail «Début du message réexpédié :»,
  Thunderbird «-------- Message transféré --------», Roundcube, Zimbra «Mail
  transféré»). quotequail finds the block and the original's text (the same library the
  reader of replies uses); the date the block writes in words («jeu. 3 déc. 2026 à
  10:12», «jeudi 3 décembre 2026 10:12») is read by dateparser, in French or English.

``#transmettre <adresse> [AAAA-MM-JJ] [mode]`` as the first line of her message records
another written channel instead: a letter or a note left at reception, scanned and
attached (:class:`Letter`).

Nothing here decides: the rules of :mod:`bot.intake.classify.forwards` do, from what
these functions read.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from dataclasses import dataclass, field

from bot.core.clock import PARIS
from bot.core.text import fold, visible
from bot.intake.htmltext import html_to_text
from bot.intake.message import InboundMessage, decode_bytes, parse_message
from bot.rulebook.form import valid_email

#: Why nothing could be read: what the refusal to the staff member names.
NO_ORIGINAL = ("aucun message transféré n'a pu être lu : ni message joint (fichier .eml), "
               "ni transfert dans le texte (« De : … Envoyé : … » ou « Message transféré »)")
NO_AUTHOR = ("le message transféré ne dit pas qui l'a écrit : sa ligne « De : » ne porte pas "
             "d'adresse e-mail")
NO_DATE = ("le message transféré n'a pas de date lisible (ligne « Date : » ou « Envoyé : » "
           "avec le jour, le mois et l'année)")
UNREADABLE_ATTACHED = "le message joint est illisible"

_ADDRESS = re.compile(r"[^\s<>\[\]()\"':;,]+@[^\s<>\[\]()\"':;,]+\.[^\s<>\[\]()\"':;,]+")
_NBSP_COLON = re.compile(r"[\u00a0\u202f]+:")
_YEAR = re.compile(r"\b(19|20)\d\d\b")
# A date line of a forward's header block, in the clients' languages («Envoyé le :» is
# Outlook for Mac's; «Sent:» Outlook's in English).
_DATE_LINE = re.compile(
    r"(?im)^[\s>*]*(?:date|envoy[ée](?:\s+le)?|sent|gesendet|enviado|inviato)\s*:\s*\**\s*(.+?)"
    r"\s*$")


@dataclass(frozen=True)
class Original:
    """The message a member of staff passed on, as her forward carries it."""

    address: str
    name: str
    #: When its author wrote it (naive UTC): the date of the initial complaint.
    date: dt.datetime
    message_id: str
    subject: str
    text: str
    #: «message joint» or «transfert dans le texte».
    how: str
    #: The original as the rules read a message: parsed when attached, else made of
    #: what the forward shows of it (its author, subject and text; no header of its own).
    message: InboundMessage = field(repr=False)

    @property
    def references(self) -> tuple[str, ...]:
        """Its own threading headers: an answer to it joins the author's thread."""
        return self.message.references


@dataclass(frozen=True)
class Letter:
    """``#transmettre <adresse> [AAAA-MM-JJ] [mode]``: a written complaint that came by
    another channel (a letter, a note left at reception), its scan attached."""

    address: str
    day: dt.date
    mode: str


def bare_message(address: str, name: str, subject: str, text: str,
                 date: dt.datetime | None) -> InboundMessage:
    """What was passed on as the rules read a message, made of what is known of it (no
    header of its own): for the robot rules, run on it alone."""
    return InboundMessage(
        raw=b"", content_hash="", message_id="", subject=subject, from_address=address,
        from_name=name, reply_to="", date=date, in_reply_to=(), references=(), headers={},
        content_type="text/plain", text=text, html="")


def transmit_command(text: str, words: frozenset[str]) -> str | None:
    """The first line of ``text`` if it is ``#transmettre…`` (any of ``words``, folded)."""
    for line in text.splitlines():
        if not line.strip():
            continue
        first = line.strip().split(maxsplit=1)[0]
        if first.startswith("#") and fold(first[1:]).replace(" ", "") in words:
            return line.strip()
        return None
    return None


def _day(value: str) -> dt.date | None:
    for pattern in ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    return None


def read_letter(line: str, today: dt.date, default_mode: str) -> Letter | str | None:
    """The letter ``#transmettre <adresse> [date] [mode]`` records; ``None`` for a bare
    ``#transmettre`` (a forward); else why the line cannot be read, in French."""
    arguments = line.split()[1:]
    if not arguments:
        return None
    address = valid_email(arguments[0].strip("<>").removeprefix("mailto:"))
    if address is None:
        return (f"« {visible(arguments[0])[:80]} » n'est pas une adresse e-mail : écrivez "
                "#transmettre suivi de l'adresse de la personne qui a écrit")
    rest = arguments[1:]
    day = today
    if rest and re.fullmatch(r"[\d./-]+", rest[0]):
        parsed = _day(rest[0])
        if parsed is None:
            return f"« {rest[0]} » n'est pas une date (AAAA-MM-JJ, par exemple {today})"
        if parsed > today:
            return f"le {parsed:%d/%m/%Y} est dans l'avenir : la date est celle du courrier"
        if parsed < EARLIEST.date():
            return f"le {parsed:%d/%m/%Y} est une date invraisemblable pour ce courrier"
        day, rest = parsed, rest[1:]
    if any("@" in word for word in rest):
        return "une seule adresse par #transmettre : un courrier a un auteur"
    mode = visible(" ".join(rest)).strip() or default_mode
    return Letter(address, day, mode[:80])


def _parsed_date(value: str) -> dt.datetime | None:
    """A date as a forward's header block writes it, in words or in figures (naive UTC);
    ``None`` unless it says its day and its year (dateparser would make «hier» of a day,
    and «2026» of today)."""
    value = visible(value).strip()
    if not _YEAR.search(value) or len(re.findall(r"\d+", value)) < 2:
        return None
    try:
        moment: dt.datetime | None = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        moment = None  # not RFC 5322's: the client wrote it in words
    if moment is None:
        import dateparser  # only for the forwards that write their dates in words

        try:
            moment = dateparser.parse(value, languages=["fr", "en", "de", "es", "it"], settings={
                "DATE_ORDER": "DMY", "TIMEZONE": str(PARIS), "RETURN_AS_TIMEZONE_AWARE": True,
                "PREFER_DATES_FROM": "past"})
        except (ValueError, OverflowError):
            moment = None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PARIS)
    try:
        return moment.astimezone(dt.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):  # year 1 or 9999 once moved to UTC
        return None


#: Before this, a date read from a forward is a client's error, not a complaint's day.
EARLIEST = dt.datetime(2000, 1, 1)


def implausible(moment: dt.datetime, now: dt.datetime | None) -> str | None:
    """Why the date of what was passed on cannot be the day it was written, if it cannot."""
    if moment < EARLIEST:
        return f"la date du message transféré ({moment:%d/%m/%Y}) est invraisemblable"
    if now is not None and moment > now + dt.timedelta(days=1):
        return f"la date du message transféré ({moment:%d/%m/%Y}) est dans l'avenir"
    return None


_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
# The address of a «De :» value is the last one in angle brackets (or Outlook's
# «[mailto:…]»), at its end: never one written in the name, which its sender chose
# («"victime@example.com" <attaquant@…>» is the attacker's).
_BRACKETED = re.compile(r"(?:<\s*(?:mailto:)?([^<>\s]+)\s*>|\[\s*mailto:([^\[\]\s]+)\s*\])\s*$")


def _author(value: str) -> tuple[str, str]:
    """The address and name of a «De :» value: «Name <a@b>», «Name [mailto:a@b]», «a@b»."""
    value = _LINE_BREAKS.sub(" ", visible(value)).strip()
    found = _BRACKETED.search(value)
    if found:
        address, name = (found.group(1) or found.group(2)), value[:found.start()]
    elif _ADDRESS.fullmatch(value.removeprefix("mailto:")):
        address, name = value.removeprefix("mailto:"), ""
    else:
        return "", ""
    name = " ".join(name.split()).strip("\"' ").strip()
    return valid_email(address.strip(".")) or "", "" if "@" in name else name[:300]


def _own_parts(msg: InboundMessage) -> tuple[list[str], list[bytes]]:
    """The staff member's own texts (text parts first, then HTML laid out as text) and the
    messages enclosed at the top of her forward: nothing from inside an enclosed message
    (mail-parser's lists mix them in), where its author could have written a fake block
    or carried a message of her own choosing."""
    import email.message
    import email.policy

    if not msg.raw:
        return [], []
    plain: list[str] = []
    html: list[str] = []
    enclosed: list[bytes] = []

    def walk(part: email.message.Message) -> None:
        kind = part.get_content_type()
        name = (part.get_filename() or "").lower()
        if kind == "message/rfc822" or (name.endswith(".eml") and not part.is_multipart()):
            payload = (part.get_payload() if kind == "message/rfc822"
                       else part.get_payload(decode=True))
            if isinstance(payload, list) and payload and isinstance(
                    payload[0], email.message.Message):
                enclosed.append(payload[0].as_bytes())
            elif isinstance(payload, bytes):
                enclosed.append(payload)
            return
        if part.is_multipart():
            for sub in part.get_payload():
                if isinstance(sub, email.message.Message):
                    walk(sub)
            return
        if kind in ("text/plain", "text/html") and part.get_content_disposition() != "attachment":
            data = part.get_payload(decode=True)
            text = decode_bytes(data if isinstance(data, bytes) else b"",
                                part.get_content_charset())
            (plain if kind == "text/plain" else html).append(text)

    walk(email.message_from_bytes(msg.raw, policy=email.policy.compat32))
    return plain + [html_to_text(h) for h in html], enclosed


def _attached(enclosed: list[bytes], candidates: tuple[str, ...], now: dt.datetime | None
              ) -> Original | str | None:
    for data in enclosed[:1]:  # the message she forwarded: the first one enclosed
        try:
            inner = parse_message(data, candidates)
        except Exception:  # whatever the parser raises (it is a stranger's MIME), unreadable
            return UNREADABLE_ATTACHED
        # Its author is its From: a Reply-To says where answers go, not who wrote it.
        address = valid_email(inner.from_address or "") or ""
        if not address:
            return NO_AUTHOR
        if inner.date is None:
            return NO_DATE
        return implausible(inner.date, now) or Original(
            address, inner.from_name[:300], inner.date, inner.message_id[:998],
            inner.subject, inner.text, "message joint", inner)
    return None


def _date_near(text: str, anchor: str) -> str:
    """The date line of the header block around ``anchor`` (the «De :» value)."""
    at = text.find(anchor) if anchor else -1
    if at < 0:
        return ""
    window = text[max(0, at - 600):at + 600]
    found = _DATE_LINE.search(window)
    return found.group(1) if found else ""


def _body_after(text: str, anchor: str) -> str:
    """The original's text: what follows the first blank line after the header block's
    «De :» value. quotequail's own cut takes «Label : value» lines at the top of the
    body for more of the block, and a filled-in form is nothing but such lines."""
    at = text.find(anchor) if anchor else -1
    if at < 0:
        return ""
    blank = re.compile(r"\n[ \t\u00a0]*\n").search(text, at)
    return text[blank.end():] if blank else ""


def _inline(texts: list[str], now: dt.datetime | None) -> Original | str | None:
    import quotequail

    problem: str | None = None
    # French typography puts a non-breaking space before the colon («De\u00a0:»): Word,
    # Outlook and Apple write it so, and quotequail knows only the plain space.
    for text in (_NBSP_COLON.sub(" :", t.replace("\r\n", "\n")) for t in texts):
        unwrapped = quotequail.unwrap(text)
        if not unwrapped or unwrapped.get("type") != "forward":
            continue
        address, name = _author(str(unwrapped.get("from", "")))
        if not address:
            problem = NO_AUTHOR
            continue
        written = str(unwrapped.get("date") or "") or _date_near(text, str(unwrapped["from"]))
        date = _parsed_date(written)
        if date is None:
            problem = NO_DATE
            continue
        if (wrong := implausible(date, now)) is not None:
            problem = wrong
            continue
        body = _body_after(text, str(unwrapped["from"])) or str(unwrapped.get("text") or "")
        body = body.strip()
        subject = visible(str(unwrapped.get("subject") or "")).strip()
        message = bare_message(address, name, subject, body, date)
        return Original(address, name, date, "", subject, body, "transfert dans le texte",
                        message)
    return problem


def read_original(msg: InboundMessage, candidates: tuple[str, ...],
                  now: dt.datetime | None = None) -> Original | str:
    """The message ``msg`` forwards, or what is missing: an inline forward in her own text
    first (the attachments then are the original's, carried along by her client), else
    the message she enclosed; ``now`` bounds its date."""
    texts, enclosed = _own_parts(msg)
    inline = _inline(texts, now)
    if isinstance(inline, Original):
        return inline
    attached = _attached(enclosed, candidates, now)
    if isinstance(attached, Original):
        return attached
    return attached or inline or NO_ORIGINAL
