"""Small text helpers: accent- and case-insensitive comparison (the rules), and figures
as French writes them."""

from __future__ import annotations

import functools
import re
import unicodedata

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
