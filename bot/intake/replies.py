"""Reply stripping: the new text of a reply, without the quoted history under it.

mail-parser-reply knows the French and English headers of the usual clients ("Le … a
écrit :", "On … wrote:", Outlook's "De : … Envoyé : …" block); ``>`` lines are dropped too.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
LANGUAGES = ["fr", "en"]


def new_text(text: str) -> str:
    """The part of ``text`` the sender wrote now."""
    if not text.strip():
        return ""
    from mailparser_reply import EmailReplyParser

    try:
        latest = EmailReplyParser(languages=LANGUAGES).parse_reply(text=text) or ""
    except Exception as exc:  # the library's regexes must never cost us the message
        log.warning("reply parser failed (%s); keeping the whole text", type(exc).__name__)
        latest = text
    lines = [line for line in latest.splitlines() if not line.lstrip().startswith(">")]
    return "\n".join(lines).strip()
