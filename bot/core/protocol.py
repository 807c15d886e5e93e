"""The marks the bot leaves on its own emails, written and recognised in one place: the
``X-Reclambot`` header and the Message-ID format. The bottom of the house: it imports
nothing from ``bot``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

#: Marks every email the bot writes, so that one coming back is recognised as ours.
OWN_HEADER = "X-Reclambot"

#: A Message-ID the bot wrote (see :func:`new_message_id`), as bytes in a raw message.
OUR_MESSAGE_ID = re.compile(rb"<[0-9a-f]{32}\.reclambot@[^<>\s]+>")


class LinePattern:
    """A bytes pattern that must match at the start of a line, found quickly in a raw
    message.

    ``re.MULTILINE``'s ``^`` is tried at every byte of the subject: over a message with a
    100 KB attachment that cost a millisecond per search. Here the pattern is looked for
    right after a newline, a literal the regex engine finds with a fast scan, and once at
    the starting position (a line start: the message's or its body's beginning). Write
    case-insensitive parts as ``(?i:…)``.
    """

    def __init__(self, pattern: bytes) -> None:
        self._here = re.compile(pattern)
        self._after_newline = re.compile(rb"\n(?:" + pattern + rb")")

    def finditer(self, data: bytes, pos: int = 0) -> Iterator[tuple[int, re.Match[bytes]]]:
        """(line start, match) of each line from ``pos`` (a line start) on that matches."""
        first = self._here.match(data, pos)
        if first is not None:
            yield pos, first
        for found in self._after_newline.finditer(data, pos):
            yield found.start() + 1, found

    def search(self, data: bytes, pos: int = 0) -> bool:
        """Whether a line from ``pos`` (a line start) on matches."""
        return next(self.finditer(data, pos), None) is not None


#: A line that carries the bot's header, quoted or not ("> X-Reclambot: …").
OWN_HEADER_LINE = LinePattern(rb"[ \t>]*(?i:" + OWN_HEADER.encode() + rb"):")


def new_message_id(domain: str) -> str:
    """A fresh Message-ID of the bot's, at the bot address's ``domain``."""
    return f"<{uuid.uuid4().hex}.reclambot@{domain}>"
