"""Small text helpers: accent- and case-insensitive comparison (the rules), and figures
as French writes them."""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Callable

_NON_WORD = re.compile(r"[^0-9a-z@.+-]+")


def strip_accents(text: str) -> str:
    """``"Réclamation"`` -> ``"Reclamation"`` (compatibility decomposition, marks dropped)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@functools.lru_cache(maxsize=1024)
def fold(text: str) -> str:
    """Lower-case, accent-free text with every run of punctuation or space made one space.

    Used wherever a person may type a word in many ways: subject tags, form labels,
    choice values. ``fold("Action(s) de formation  concernée(s) :")`` and
    ``fold("action(s) de formation concernee(s)")`` are equal. Cached: the same labels
    and choices are folded for every form that arrives (and a small cache, because lines
    of complainants' text pass through it too).
    """
    return _NON_WORD.sub(" ", strip_accents(text).casefold()).strip()


def number_fr(value: object) -> str:
    """A figure as French writes it (``12,5``, one decimal); ``—`` for none. The Jinja
    filter ``nombre``."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.1f}".replace(".", ",")
    return str(value)


def unflow(text: str, delsp: bool = False) -> str:
    """The text of a ``format=flowed`` part (RFC 3676), its soft line breaks removed.

    A line ending in a space is soft: it joins the next one of the same quote depth
    (without that space when ``delsp``, the DelSp=Yes of Apple Mail); space-stuffing is
    undone; the signature separator ``-- `` stays a line of its own. Quoted lines keep
    their ``>`` marks, one run per paragraph, so the quote is still seen as one.
    """
    out: list[str] = []
    paragraph: list[str] = []
    depth_of_paragraph = 0

    def close() -> None:
        if paragraph:
            prefix = ">" * depth_of_paragraph + (" " if depth_of_paragraph else "")
            out.append(prefix + "".join(paragraph))
            paragraph.clear()

    for line in text.replace("\r\n", "\n").split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing (section 4.4)
        if paragraph and depth != depth_of_paragraph:
            close()  # a change of depth ends a paragraph, flowed or not (section 4.5)
        depth_of_paragraph = depth
        soft = content.endswith(" ") and content != "-- "
        if soft:
            paragraph.append(content[:-1] if delsp else content)
        else:
            paragraph.append(content)
            close()
    close()
    return "\n".join(out)


_LIST_ITEM = re.compile(r"^\s*([-*•–—·▪◦o]\s|\d{1,3}[.)]\s|[a-zA-Z][.)]\s)")


NBSP = "\u00a0"
# French typography (Imprimerie nationale): a non-breaking space before the colon, the
# semicolon, the marks of exclamation and question and the closing guillemet, after the
# opening one; inside a phone number, between a number and its unit; none of them ever
# begins a line.
_BEFORE_MARK = re.compile(r"(?<=[^\s\u00a0]) +(?=[:;!?»](?:[\s\u00a0<]|$|[.,)]))")
_AFTER_GUILLEMET = re.compile(r"(?<=«) +")
_PHONE = re.compile(r"\b0[1-9](?: \d\d){4}\b")
_UNIT = re.compile(r"(?<=\d) (?=(?:%|€|h\b|j\b|Mo\b|ko\b|jours?\b|heures?\b))")


def _typeset(text: str, keep: Callable[[int], bool] = lambda _: False) -> str:
    # Every space becomes a non-breaking one, one for one: lengths, and so the positions
    # ``keep`` is asked about, never change.
    def space(match: re.Match[str]) -> str:
        return match.group(0) if keep(match.start()) else match.group(0).replace(" ", NBSP)

    text = _BEFORE_MARK.sub(space, text)
    text = _AFTER_GUILLEMET.sub(space, text)
    text = _PHONE.sub(space, text)
    return _HOUR_MINUTES.sub(space, _UNIT.sub(space, text))


def typographie(text: str) -> str:
    """``text`` with the non-breaking spaces French typography puts where a line must not
    break («Objet\u00a0: …», «\u00a0»…», «01\u00a023\u00a045\u00a067\u00a089», «10\u00a0%»)."""
    return _typeset(text)


_HOUR_MINUTES = re.compile(r"(?<=\d\u00a0h) (?=\d\d\b)")
_TAG = re.compile(r"<[^>]*>")


def typographie_html(html: str) -> str:
    """:func:`typographie` on the text of an HTML document, never inside its tags (the
    text on either side of a tag is read as one: «<b>Objet</b> : …»)."""
    starts: list[int] = []
    ends: list[int] = []
    for tag in _TAG.finditer(html):
        starts.append(tag.start())
        ends.append(tag.end())

    def in_tag(position: int) -> bool:
        index = bisect.bisect_right(starts, position) - 1
        return index >= 0 and position < ends[index]

    # Substitutions keep lengths (a space for a space), so positions stay those of html.
    return _typeset(html, in_tag)


#: Where the bot's own plain text is wrapped (RFC 3676 advises 72, never more than 78).
FLOWED_WIDTH = 72


def flow(text: str, width: int = FLOWED_WIDTH) -> str:
    """The bot's plain text written as ``format=flowed`` (RFC 3676, DelSp=No): each line
    longer than ``width`` is cut at spaces into lines ending in a space (soft breaks,
    which a reader's client joins again to fit its screen); every other line ends
    without one (hard breaks). Lines that begin with a space, ``>`` or ``From `` are
    space-stuffed; the signature separator ``-- `` stays as it is. A word longer than
    the width is left whole."""
    out: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line == "-- ":
            out.append(line)
            continue
        line = line.rstrip(" ")
        pieces: list[str] = []
        while len(line) > width:
            cut = line.rfind(" ", 1, width + 1)
            if cut <= 0:
                cut = line.find(" ", width)
                if cut < 0:
                    break
            pieces.append(line[:cut + 1])  # the space stays: the break is soft
            line = line[cut + 1:]
        pieces.append(line)
        out += [f" {p}" if p.startswith((" ", ">", "From ")) else p for p in pieces]
    return "\n".join(out)


def reflow(text: str) -> str:
    """The sender's paragraphs, without the line breaks her client added.

    A client that wraps plain text at a fixed width (72 to 80 columns, without
    ``format=flowed``) breaks a line where the next word would not fit. Such a break is
    undone; a break she made (a short line: a greeting, a signature she typed, the items
    of a list, the lines of an address) is kept, as are blank lines between paragraphs.
    Text whose longest line is far from such a width (HTML turned into text, a flowed
    part already joined) is left as it is.
    """
    lines = text.split("\n")
    width = max((len(line.rstrip()) for line in lines), default=0)
    if not 60 <= width <= 100:
        return text
    out: list[str] = []
    began = ""  # the line the last output line began as
    for line in lines:
        previous = out[-1] if out else ""
        first_word = line.strip().split(" ", 1)[0] if line.strip() else ""
        wrapped = (
            previous.strip() and first_word and not _LIST_ITEM.match(line)
            and not line.startswith(">") and not previous.startswith(">")
            # An indented line goes on an item of a list; elsewhere it was meant so.
            and (not line.startswith((" ", "\t")) or bool(_LIST_ITEM.match(began)))
            and len(previous.rstrip()) + 1 + len(first_word) > width - 2
        )
        if wrapped:
            out[-1] = f"{previous.rstrip()} {line.strip()}"
        else:
            out.append(line)
            began = line
    return "\n".join(out)


#: Characters that are not seen but change what is: bidi embeddings, overrides and
#: isolates (U+202A–202E, U+2066–2069), marks (LRM, RLM, ALM), zero-width characters and
#: the word joiner, the byte order mark. «Facture \u202egnp.exe\u202c» shows as
#: «Facture exe.png».
_INVISIBLE = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def visible(text: str) -> str:
    """``text`` without the invisible characters that change how it reads (names,
    subjects, file names: nothing a person needs is lost)."""
    return _INVISIBLE.sub("", text) if not text.isascii() else text
