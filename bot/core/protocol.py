"""The marks the bot leaves on its own emails, written and recognised in one place: the
``X-Reclambot`` header and the Message-ID format. The bottom of the house: it imports
nothing from ``bot``."""

from __future__ import annotations

import re
import uuid

#: Marks every email the bot writes, so that one coming back is recognised as ours.
OWN_HEADER = "X-Reclambot"

#: A Message-ID the bot wrote (see :func:`new_message_id`), as bytes in a raw message.
OUR_MESSAGE_ID = re.compile(rb"<[0-9a-f]{32}\.reclambot@[^<>\s]+>")

#: A line that carries the bot's header, quoted or not ("> X-Reclambot: …").
OWN_HEADER_LINE = re.compile(rb"(?im)^[ \t>]*" + OWN_HEADER.encode() + rb":")


def new_message_id(domain: str) -> str:
    """A fresh Message-ID of the bot's, at the bot address's ``domain``."""
    return f"<{uuid.uuid4().hex}.reclambot@{domain}>"
