"""HTML to text by its structure: block elements become lines, ``<br>`` a line break,
list items ``- `` lines; no Markdown, no escapes; the sender's non-breaking spaces kept.

inscriptis lays the text out as a browser would (it is built for exactly this), where
html2text writes Markdown and escapes what looks like it (``\\-`` before a typed list
item). Two things are adjusted around it:

- a non-breaking space is a character of French typography (before ``:``, inside
  ``« »``): inscriptis makes it a plain space, so it is carried through as a private
  character and put back;
- Word's HTML (Outlook on Windows) writes each line as a ``<p class=MsoNormal>`` with no
  margin in its own style sheet, which inscriptis does not read: there a paragraph is
  one line, and its empty paragraphs are the blank lines. So it is wherever a document
  writes its blank lines as empty paragraphs (Thunderbird); elsewhere a paragraph is
  set apart by a blank line, as a browser shows it. Word's lists become ``- `` lines.

The tree can be given already parsed (:func:`tree_text`), so that the reader of replies
cuts the clients' quotes out of it first.
"""

from __future__ import annotations

import functools
import re
from typing import Any

_NBSP = "\u00a0"
_CARRIER = "\ue000"  # a private-use character: no sender's text has it
_WORD = re.compile(r"(?i)(class\s*=\s*\"?Mso|urn:schemas-microsoft-com:office:word|"
                   r"<meta[^>]+content=\"?Microsoft Word)")


@functools.cache
def _config(lines: bool) -> Any:
    """inscriptis's settings: the strict profile (no indentation of blocks), lists
    written with ``- ``, links without their targets; with ``lines``, paragraphs without
    margins (one line each, as Word and Thunderbird show them)."""
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.html_properties import Display
    from inscriptis.model.config import ParserConfig
    from inscriptis.model.html_element import HtmlElement
    from inscriptis.model.tag import CustomHtmlTagHandlerMapping

    css = CSS_PROFILES["strict"].copy()
    for tag in ("ul", "ol"):
        css[tag] = HtmlElement(display=Display.block, margin_before=0, margin_after=0,
                               padding_inline=0)
    css["blockquote"] = HtmlElement(display=Display.block, margin_before=0, margin_after=0)
    if lines:
        css["p"] = HtmlElement(display=Display.block, margin_before=0, margin_after=0)

    def unordered(state: Any, _attributes: Any) -> None:
        state.li_counter.append("- ")

    def unordered_end(state: Any) -> None:
        state.li_counter.pop()

    mapping = CustomHtmlTagHandlerMapping(
        start_tag_mapping={"ul": unordered}, end_tag_mapping={"ul": unordered_end})
    return ParserConfig(css=css, display_links=False, display_images=False,
                        custom_html_tag_handler_mapping=mapping)


def _spacers(tree: Any) -> bool:
    """Whether the document writes its blank lines as empty paragraphs (``<p><br></p>``,
    ``<p>&nbsp;</p>``): its composer shows paragraphs without margins (Word, Thunderbird),
    so each paragraph is a line."""
    return any(not p.text_content().replace(_CARRIER, "").strip() for p in tree.iter("p"))


def is_word(html: str) -> bool:
    """Whether ``html`` was written by Word (Outlook for Windows)."""
    return bool(_WORD.search(html[:20000]))


def parse(html: str) -> Any:
    """The lxml tree of ``html``, non-breaking spaces carried as a private character;
    ``None`` for a document with nothing in it."""
    from lxml import etree
    from lxml.html import document_fromstring

    html = html.replace("&nbsp;", _CARRIER).replace("&#160;", _CARRIER) \
        .replace("&#xa0;", _CARRIER).replace("&#xA0;", _CARRIER).replace(_NBSP, _CARRIER)
    html = re.sub(r"^\s*<\?xml[^>]*>", "", html)  # lxml refuses a str with an encoding
    if not html.strip():
        return None
    try:
        tree = document_fromstring(html)
    except (etree.ParserError, ValueError):
        return None
    # Listed first: dropping elements while lxml walks the tree would skip some. What a
    # client never shows (a template, noscript, the hidden attribute) is nobody's text:
    # a block hidden there must not be read as the one she sees.
    hidden = [e for e in tree.iter() if isinstance(e.tag, str) and e.get("hidden") is not None]
    for element in [*tree.iter("style", "script", "head", "title", "template", "noscript"),
                    *hidden]:
        if element.getparent() is not None:
            element.drop_tree()
    return tree


_WORD_LIST = re.compile(r"(?i)mso-list\s*:\s*(?!ignore)")
_WORD_LIST_MARK = re.compile(r"(?i)mso-list\s*:\s*ignore")
_NUMBERED = re.compile(r"^(\d{1,3}|[a-zA-Z]|[ivxlcIVXLC]{1,6})[.)]$")


def _word_lists(tree: Any) -> None:
    """Word's list items as lines that begin with ``- `` (or their number).

    Word writes a list item as a paragraph whose style says ``mso-list``, its bullet as a
    run of text (a ``·`` in the Symbol font, a ``-``, a number) padded with non-breaking
    spaces in a span marked ``mso-list:Ignore``, for the clients that do not read lists.
    """
    for paragraph in list(tree.iter()):
        if not isinstance(paragraph.tag, str) or not _WORD_LIST.search(
                paragraph.get("style", "")):
            continue
        marks = [e for e in paragraph.iter() if e is not paragraph
                 and isinstance(e.tag, str) and _WORD_LIST_MARK.search(e.get("style", ""))]
        if not marks:
            continue
        bullet = marks[0].text_content().replace(_CARRIER, " ").strip()
        for mark in marks:
            if mark.getparent() is not None:
                mark.drop_tree()
        prefix = f"{bullet} " if _NUMBERED.match(bullet) else "- "
        paragraph.text = prefix + (paragraph.text or "").lstrip(" " + _CARRIER)


def tree_text(tree: Any, word: bool = False) -> str:
    """The text of a tree :func:`parse` gave."""
    from inscriptis import Inscriptis

    if tree is None:
        return ""
    if word:
        _word_lists(tree)
    text = Inscriptis(tree, _config(word or _spacers(tree))).get_text()
    lines = [line.rstrip() for line in text.replace(_CARRIER, _NBSP).split("\n")]
    # A line of nothing but non-breaking spaces is Word's and Outlook's empty paragraph.
    lines = ["" if not line.strip() else line for line in lines]
    return "\n".join(lines).strip("\n")


def tree_html(tree: Any) -> str:
    """The HTML of a tree :func:`parse` gave (after a reader cut parts out of it)."""
    from lxml.html import tostring

    if tree is None:
        return ""
    return str(tostring(tree, encoding="unicode")).replace(_CARRIER, _NBSP)


def html_to_text(html: str) -> str:
    """The text of ``html``, laid out by its structure."""
    return tree_text(parse(html), is_word(html))
