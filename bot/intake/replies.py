"""The reader of replies: what the sender wrote now, without what her client added.

A reply carries, besides the sender's new text, what her mail client put under or around
it: the quoted message (in a structure of its own in HTML, ``>`` lines in text), the
line that introduces it («Le … a écrit :», «De : … Envoyé : …»), the signature of the
phone or the application («Envoyé de mon iPhone»), the sender's ``-- `` signature block
and the legal notices below it. The director's commands, a complainant's completed
fields and a satisfaction rating are read from the new text only.

The reading, in order:

1. **Which part.** The HTML one, where there is one: it is what she typed in, and the
   text part her client derives from it wraps her lines, drops her non-breaking spaces,
   runs lines together (Yahoo) or writes lists its own way (Word). Else the text part,
   a ``format=flowed`` one already joined at parsing (RFC 3676).
2. **HTML by its structure.** The elements the clients wrap their quote in
   (``rules/replies.toml``, ``[[html]]``) are taken out of the tree; then inscriptis lays
   the rest out as text (:mod:`bot.intake.htmltext`).
3. **Lines.** ``>`` lines go; the clients' introductions, separators and header blocks
   (``[[lines]]``) end the new text, unless a ``>`` quote follows them, when only they
   and the quote go (a reply written under the quote, or between its lines); a ``-- ``
   line ends it; then quotequail looks for introductions in other languages.
4. **The end.** The clients' signatures (``[[signatures]]``) and the rules they draw
   are taken off the end; blank lines are made single.

Every rule that took something out is reported (:attr:`Reading.cuts`), with its reason,
for the message's row.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.intake import htmltext

if TYPE_CHECKING:
    from bot.intake.message import InboundMessage
    from bot.rulebook.replies import HtmlRule, LineRule, ReplyRules

log = logging.getLogger(__name__)

#: Where an element of the quote was taken out of the HTML: read as a ``>`` quote is.
_GONE = "\ue001"
#: A line introducing a quote may be wrapped by the client over this many lines.
_WRAPPED_LINES = 3
#: A header block («De : » then «Envoyé : ») is looked for over this many lines.
_HEADER_SPAN = 3
#: Invisible characters some clients put at the start of a line (Outlook for Mac's byte
#: order mark before its introduction, Apple Mail's before the quote).
_INVISIBLE = "\ufeff\u200b\u200e\u200f\u2060"


def _bare(line: str) -> str:
    return line.strip().strip(_INVISIBLE).strip()


@dataclass(frozen=True)
class Cut:
    """A rule of ``rules/replies.toml`` (or a library) that took something out."""

    rule: str
    reason: str


@dataclass(frozen=True)
class Reading:
    """The sender's new text, the part it was read from, and what was taken out."""

    text: str
    source: str  # "text" or "html"
    cuts: tuple[Cut, ...] = ()
    #: The HTML part without what was taken out of it ("" when the text part was read).
    html: str = ""


QUOTED = Cut("quoted-lines", "les lignes citées (« > »)")
SEPARATOR = Cut("signature-separator", "la signature sous « -- » et ce qui la suit")
QUOTEQUAIL = Cut("quotequail", "l'introduction d'un message cité (quotequail)")


def read_reply(msg: InboundMessage, rules: ReplyRules) -> Reading:
    """The new text of ``msg``."""
    cuts: list[Cut] = []
    if msg.html:
        laid_out, html = _html(msg.html, rules, cuts)
        text = _lines(laid_out, rules, cuts)
        if text or not msg.text.strip() or msg.text_from_html:
            return Reading(text, "html", tuple(dict.fromkeys(cuts)), html)
        cuts.clear()  # an HTML part with nothing of hers in it: her text part, then
    text = _lines(msg.text, rules, cuts)
    return Reading(text, "text", tuple(dict.fromkeys(cuts)))


def new_text(text: str, rules: ReplyRules | None = None) -> str:
    """The new text of a plain ``text`` (a reply's text part, given alone), read with
    ``rules`` (the shipped ones by default)."""
    from bot.rulebook.replies import shipped_reply_rules

    return _lines(text, rules or shipped_reply_rules(), [])


# --- HTML -----------------------------------------------------------------------------


def _html(html: str, rules: ReplyRules, cuts: list[Cut]) -> tuple[str, str]:
    """The text of ``html`` without the clients' quotes, and the HTML it was read from."""
    tree = htmltext.parse(html)
    if tree is None:
        return "", ""
    found = [(element, rule) for element in tree.iter()
             if isinstance(element.tag, str)
             and (rule := _html_rule(element, rules.html)) is not None]
    rest = next(((e, r) for e, r in found if r.cut == "rest"), None)
    if rest is not None:
        _cut_from(rest[0])
        cuts.append(Cut(rest[1].name, rest[1].reason))
    for element, rule in found:
        if rule.cut == "element" and _attached(element, tree):
            _replace_with_mark(element)
            cuts.append(Cut(rule.name, rule.reason))
    kept = htmltext.tree_html(tree).replace(_GONE, "")
    return htmltext.tree_text(tree, htmltext.is_word(html)), kept


def _html_rule(element: Any, rules: tuple[HtmlRule, ...]) -> HtmlRule | None:
    tag = element.tag.lower()
    attributes = {str(k).lower(): str(v) for k, v in element.attrib.items()}
    return next((rule for rule in rules if rule.matches(tag, attributes)), None)


def _attached(element: Any, root: Any) -> bool:
    """Whether ``element`` is still in the tree of ``root`` (not in a part taken out)."""
    return bool(element.getroottree().getroot() is root.getroottree().getroot())


def _cut_from(element: Any) -> None:
    """Take ``element`` and everything after it in the document out of the tree."""
    node = element
    while node.getparent() is not None:
        parent = node.getparent()
        for sibling in list(node.itersiblings()):
            parent.remove(sibling)
        if node is not element:
            node.tail = None
        node = parent
    parent = element.getparent()
    if parent is not None:
        element.tail = None
        parent.remove(element)


def _replace_with_mark(element: Any) -> None:
    """Put a line of :data:`_GONE` where ``element`` was: what the sender wrote around it
    is kept, and the line that introduced it is recognised as the introduction of a quote."""
    from lxml.html import Element

    parent = element.getparent()
    if parent is None:
        return  # the document itself (a client that marks its <body>): nothing to cut
    mark = Element("div")
    mark.text = _GONE
    mark.tail = element.tail
    parent.replace(element, mark)


# --- Lines ----------------------------------------------------------------------------


def _quoted(line: str) -> bool:
    return _bare(line).startswith((">", _GONE))


def _line_rule(lines: list[str], at: int, rules: tuple[LineRule, ...]
               ) -> tuple[LineRule, int] | None:
    """The rule whose introduction starts at line ``at``, and the line where it ends."""
    for rule in rules:
        for extra in range(_WRAPPED_LINES):
            if at + extra >= len(lines) or (extra and not lines[at + extra].strip()):
                break
            joined = " ".join(_bare(line) for line in lines[at:at + extra + 1])
            if not rule.pattern.match(joined):
                continue
            if rule.followed_by is None or any(
                    rule.followed_by.match(_bare(line))
                    for line in lines[at + extra + 1:at + extra + 1 + _HEADER_SPAN]):
                return rule, at + extra
    return None


def _next_text(lines: list[str], after: int) -> int:
    """The first line after ``after`` that is not blank (``len(lines)`` if none)."""
    index = after + 1
    while index < len(lines) and not lines[index].strip():
        index += 1
    return index


def _lines(text: str, rules: ReplyRules, cuts: list[Cut]) -> str:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept = list(_kept_lines(lines, rules, cuts))
    kept = _quotequail(kept, cuts)
    kept = _without_signatures(kept, rules, cuts)
    return _tidy(kept)


def _kept_lines(lines: list[str], rules: ReplyRules, cuts: list[Cut]) -> Iterator[str]:
    index = 0
    while index < len(lines):
        line = lines[index]
        if _quoted(line):
            if _bare(line) != _GONE:
                cuts.append(QUOTED)
            index += 1
            continue
        if rules.signature_separator.match(line.rstrip(" \t")) or line == "-- ":
            cuts.append(SEPARATOR)
            return
        found = _line_rule(lines, index, rules.lines)
        if found is not None:
            rule, end = found
            cuts.append(Cut(rule.name, rule.reason))
            following = _next_text(lines, end)
            if following < len(lines) and _quoted(lines[following]):
                # Only the introduction and its quote: what is written below it stays.
                index = following
                while index < len(lines) and (_quoted(lines[index]) or not lines[index].strip()):
                    index += 1
                continue
            return
        yield line
        index += 1


def _quotequail(lines: list[str], cuts: list[Cut]) -> list[str]:
    """What quotequail finds (reply and forward introductions in many languages) that
    the rules did not."""
    import quotequail

    if not lines:
        return lines
    try:
        parts = quotequail.quote("\n".join(lines), limit=len(lines) + 1, quote_intro_line=True)
    except Exception as exc:  # a library's regexes must never cost us the message
        log.warning("quotequail failed (%s); the text is kept whole", type(exc).__name__)
        return lines
    if len(parts) < 2 or not parts[0][0]:
        return lines
    cuts.append(QUOTEQUAIL)
    return parts[0][1].split("\n")


def _without_signatures(lines: list[str], rules: ReplyRules, cuts: list[Cut]) -> list[str]:
    """``lines`` without the clients' signatures and rules at their end."""
    lines = list(lines)
    while lines:
        last = lines[-1].strip()
        if not last or rules.trailing_rules.match(last):
            lines.pop()
            continue
        rule = next((r for r in rules.signatures if r.pattern.match(last)), None)
        if rule is None:
            break
        cuts.append(Cut(rule.name, rule.reason))
        lines.pop()
    return lines


_BLANKS = re.compile(r"\n{3,}")


def _tidy(lines: list[str]) -> str:
    text = "\n".join(line.rstrip() for line in lines)
    return _BLANKS.sub("\n\n", text).strip("\n")
