"""Compose: the bytes of the bot's emails, written directly in their one shape.

French text and HTML alternatives, threading headers that follow the message answered,
the RFC 3834 marks of an automatic answer, the bot's own header, attachments. Pure: it
reads no configuration and no database.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.core.protocol import OWN_HEADER
from bot.core.text import flow
from bot.outbound.render import Rendered

MAX_REFERENCES = 20


class Answered(Protocol):
    """The message an email answers: its threading headers are followed."""

    @property
    def message_id(self) -> str: ...

    @property
    def references(self) -> tuple[str, ...]: ...

@dataclass(frozen=True)
class Email:
    """An email the bot is to write: its kind (and so its templates), to whom, what the
    templates are given, the reference it is about, and what it answers."""

    kind: str
    to: Sequence[str]
    context: Mapping[str, Any] = field(default_factory=dict)
    reference: str = ""
    answering: Answered | None = None
    #: RFC 3834: ``auto-replied`` answers a message; ``auto-generated`` informs the director.
    auto_submitted: str = "auto-replied"
    attachments: Sequence[tuple[str, str, bytes]] = ()
    #: The subject of the person's own email this one answers: kept in front of ours
    #: («Re: <hers> – <ours>»), so that her client (Gmail threads by subject too) shows
    #: one conversation. Empty when a form plugin or the web page wrote the message.
    her_subject: str = ""

    @property
    def automatic(self) -> bool:
        """An answer to someone's message: counted against the daily limit per address."""
        return self.auto_submitted == "auto-replied"


#: Her part of a reply's subject at most: ours, with its reference, must stay readable.
HER_SUBJECT = 80
_RE = re.compile(r"^\s*((re|aw|sv|tr|fwd?|rv)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


# What in her subject could pass for a reference of the register («[Réf. CT-…]», a
# command tag): never carried into ours, where replies look for the reference.
_REFERENCE_LIKE = re.compile(r"\[[^\]]*\]|\b[A-Z]{2,4}-[A-Z0-9][A-Z0-9/-]{3,}")


def reply_subject(hers: str, ours: str) -> str:
    """«Re: <her subject> – <ours>», hers without its own reply prefixes nor anything
    that looks like a reference, shortened."""
    hers = " ".join(_REFERENCE_LIKE.sub(" ", _RE.sub("", hers)).split()).strip(" -–:")
    if not hers:
        return ours
    if len(hers) > HER_SUBJECT:
        hers = hers[:HER_SUBJECT - 1].rstrip() + "…"
    return f"Re: {hers} – {ours}"


# An encoded word carries at most this many bytes of text, so that it stays within a
# 76-character line even after "Subject: " (RFC 2047, section 2).
_WORD_BYTES = 36


def _address_header(name: str, value: str) -> bytes:
    """An address header. An address that is not ASCII (its local part has accents: the
    domain is an A-label already) is written in UTF-8 as RFC 6532 says, never as encoded
    words, which no address may be; the email then travels over SMTPUTF8 only."""
    if value.isascii():
        return f"{name}: {value}\r\n".encode("ascii")
    return f"{name}: {value}\r\n".encode()


def _header(name: str, value: str) -> bytes:
    """One header line; non-ASCII values as RFC 2047 B-encoded words, one per folded line.

    Written here rather than with ``email.header.Header``, which took a fifth of the time
    of composing an email for a subject with an accent.
    """
    if value.isascii():
        return f"{name}: {value}\r\n".encode("ascii")
    words: list[bytes] = []
    chunk = b""
    for char in value:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    folded = "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words)
    return f"{name}: {folded}\r\n".encode("ascii")


def _base64_lines(data: bytes) -> bytes:
    """``data`` in base64, lines of 76 characters ended by CRLF (RFC 2045).

    The same lines as ``base64.encodebytes``, which encodes 57 bytes per Python call.
    """
    encoded = base64.b64encode(data)
    return b"".join(encoded[i:i + 76] + b"\r\n" for i in range(0, len(encoded), 76))


def _part(content_type: str, data: bytes, extra: str = "") -> bytes:
    body = _base64_lines(data)
    return (f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n{extra}"
            "\r\n").encode("ascii") + body


def compose(email_: Email, rendered: Rendered, *, sender: tuple[str, str], message_id: str,
            now: dt.datetime) -> bytes:
    """The email as bytes: French text and HTML alternatives, threading headers, attachments.

    The bot's emails all have this one shape, so they are written directly: the stdlib
    generator takes 2 ms an email, which was a fifth of the time spent on a message.
    The tests read every kind back with the stdlib parser.
    """
    answering = email_.answering
    headers = [
        ("From", email.utils.formataddr(sender)),
        ("To", ", ".join(email_.to)),
        ("Subject", rendered.subject),
        ("Date", email.utils.format_datetime(now.replace(tzinfo=dt.UTC))),
        ("Message-ID", message_id),
    ]
    if answering is not None and answering.message_id:
        refs = [*answering.references, answering.message_id][-MAX_REFERENCES:]
        headers += [("In-Reply-To", answering.message_id), ("References", " ".join(refs))]
    # RFC 3834: automatic answers say so, and ask other robots not to answer back.
    headers += [("Auto-Submitted", email_.auto_submitted), ("X-Auto-Response-Suppress", "All"),
                (OWN_HEADER, email_.reference), ("Content-Language", "fr"), ("MIME-Version", "1.0")]
    alternative = uuid.uuid4().hex
    body = b"".join([
        f"--{alternative}\r\n".encode(),
        # Wrapped at 72 as format=flowed: short lines in any client, joined again to fit
        # a phone's screen by those that read the format (RFC 3676).
        _part('text/plain; charset="utf-8"; format=flowed; delsp=no',
              flow(rendered.text).encode("utf-8")),
        f"--{alternative}\r\n".encode(),
        _part('text/html; charset="utf-8"', rendered.html.encode("utf-8")),
        f"--{alternative}--\r\n".encode(),
    ])
    content_type = f'multipart/alternative; boundary="{alternative}"'
    if email_.attachments:
        mixed = uuid.uuid4().hex
        parts = [f"--{mixed}\r\nContent-Type: {content_type}\r\n\r\n".encode() + body]
        for filename, mimetype, data in email_.attachments:
            disposition = email.utils.encode_rfc2231(filename, "utf-8")
            parts.append(f"--{mixed}\r\n".encode() + _part(
                mimetype, data, f"Content-Disposition: attachment; filename*={disposition}\r\n"))
        body = b"".join(parts) + f"--{mixed}--\r\n".encode()
        content_type = f'multipart/mixed; boundary="{mixed}"'
    headers.append(("Content-Type", content_type))
    return b"".join(_address_header(name, value) if name == "To" else _header(name, value)
                    for name, value in headers) + b"\r\n" + body
