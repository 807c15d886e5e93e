"""Parse: raw bytes in, one normalised :class:`InboundMessage` out, parsed exactly once.

mail-parser does the MIME walk (encoded words, charsets, attachments, defects); this module
only reduces its result to what the rules and handlers need, so no other module touches
raw MIME. HTML-only messages get a text version laid out by its structure
(:mod:`bot.intake.htmltext`); ``format=flowed`` text is joined (RFC 3676).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.errors
import email.header
import email.utils
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.text import unflow, visible
from bot.errors import MessageError
from bot.intake.htmltext import html_to_text
from bot.intake.largeparts import DELIMITER_LINE, lift, restore

# Headers added in transit: two deliveries of one message differ only there, so they are
# left out of the content hash that detects duplicates.
TRACE_HEADERS = frozenset(
    {b"received", b"return-path", b"delivered-to", b"x-original-to", b"x-delivered-to"}
)
_MSGID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class Attachment:
    """A file attached to a message. ``filename`` is untrusted: never use it as a path."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class InboundMessage:
    """A message as the rules and handlers see it."""

    raw: bytes
    content_hash: str
    message_id: str
    subject: str
    from_address: str
    from_name: str
    reply_to: str
    date: dt.datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    headers: Mapping[str, tuple[str, ...]]
    content_type: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = field(default=())
    #: ``text`` was made from the HTML part: the message has no text part of its own.
    text_from_html: bool = False
    #: What read the MIME structure: mail-parser, or the standard library's ``email``
    #: package where mail-parser raised (and why), as the message's row records.
    parser: str = "mail-parser"

    def header(self, name: str) -> str:
        """The first value of header ``name`` (decoded), or ``""``."""
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    def has_header(self, name: str) -> bool:
        """Whether header ``name`` is present at all."""
        return name.lower() in self.headers

    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this message answers: In-Reply-To first, then References, newest first."""
        return tuple(dict.fromkeys((*self.in_reply_to, *reversed(self.references))))


def split_head(raw: bytes) -> tuple[bytes, int]:
    """The header block, and where the body starts (without copying the body)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[:end], end + len(separator)
    return raw, len(raw)


CHUNK = 1 << 20


def header_hash(raw: bytes) -> str:
    """The :func:`content_hash` of the message's header alone: that of an oversized
    message, of which only the header was fetched (``BODY.PEEK[HEADER]``)."""
    head, _start = split_head(raw)
    return content_hash(head + b"\r\n\r\n")


def content_hash(raw: bytes) -> str:
    """SHA-256 of the message without its trace headers (see :data:`TRACE_HEADERS`).

    Line endings are normalised (a Maildir stores LF, IMAP serves CRLF), chunk by chunk so
    that a large message is never copied whole.
    """
    head, start = split_head(raw)
    digest = hashlib.sha256()
    keep = True
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t"):
            if keep:
                digest.update(line.strip() + b" ")
            continue
        name = line.split(b":", 1)[0].strip().lower()
        keep = name not in TRACE_HEADERS
        if keep:
            digest.update(b"\n" + line.rstrip())
    digest.update(b"\n\n")
    view = memoryview(raw)
    carry = b""
    for offset in range(start, len(raw), CHUNK):
        chunk = carry + bytes(view[offset:offset + CHUNK])
        carry = b"\r" if chunk.endswith(b"\r") else b""
        digest.update((chunk[:-1] if carry else chunk).replace(b"\r\n", b"\n"))
    digest.update(carry)
    return digest.hexdigest()


DEFAULT_CHARSETS = ("utf_8", "cp1252")


def decode_bytes(data: bytes, declared: str | None = None,
                 candidates: tuple[str, ...] = DEFAULT_CHARSETS) -> str:
    """Text from bytes: the declared charset if it fits, else the best of ``candidates``.

    Never returns replacement characters for bytes that some candidate decodes: 8-bit
    French text sent without a charset is read as what it is, not as U+FFFD.
    """
    for charset in (declared, "utf_8"):
        if charset:
            try:
                return data.decode(charset)
            except (LookupError, UnicodeError):
                continue
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=list(candidates)).best()
    if best is not None:
        return str(best)
    return data.decode("latin-1")  # decodes any byte: the text is kept, if imperfectly


def decode_header_value(value: object, candidates: tuple[str, ...] = DEFAULT_CHARSETS) -> str:
    """Decode RFC 2047 encoded words and raw 8-bit bytes; never fails."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        if value.isascii() and b"=?" not in value:
            # Most fields (dates, ids, types) hold neither 8-bit bytes nor encoded words:
            # decode_header and make_header would return them unchanged, slowly.
            return " ".join(value.decode("ascii").replace("\x00", "").split())
        value = decode_bytes(value, None, candidates)
    try:
        chunks = email.header.decode_header(str(value))
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
        chunks = [(str(value), None)]
    # Each encoded word on its own: one word in a charset Python lacks, or with bytes its
    # charset cannot have, must not hide the others (a subject "RÉCLAMATION" in UTF-8
    # followed by a word in GB2312 keeps its tag).
    text = "".join(_decode_chunk(chunk, charset, candidates) for chunk, charset in chunks)
    # A header value is one line: folding and injected line breaks are collapsed; NUL
    # bytes carry nothing and no database stores them in text.
    return " ".join(text.replace("\x00", "").split())


def _decode_chunk(chunk: bytes | str, charset: str | None,
                  candidates: tuple[str, ...]) -> str:
    if isinstance(chunk, str):
        return chunk
    if charset is None or charset == "unknown-8bit":
        return decode_bytes(chunk, None, candidates) if not chunk.isascii() else chunk.decode()
    try:
        return chunk.decode(charset)
    except LookupError:
        return decode_bytes(chunk, None, candidates)  # a charset Python does not know
    except UnicodeError:
        return chunk.decode(charset, "replace")


def _header_fields(raw: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, raw value) of each header field, unfolded; garbage lines skipped."""
    head = split_head(raw)[0]
    fields: list[tuple[str, bytes]] = []
    name = None
    value = b""
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and name is not None:
            value += b" " + line.strip()
            continue
        if name is not None:
            fields.append((name, value))
        key, sep, rest = line.partition(b":")
        if not sep or not key.strip() or b" " in key.strip():
            name = None  # not a header line (mbox "From " line, garbage): skipped
            continue
        name = key.strip().decode("ascii", "replace").lower()
        value = rest.strip()
    if name is not None:
        fields.append((name, value))
    return fields


def _undecoded(value: bytes, candidates: tuple[str, ...]) -> str:
    return " ".join(decode_bytes(value, None, candidates).split())


def raw_headers(raw: bytes, candidates: tuple[str, ...] = DEFAULT_CHARSETS,
                encoded_words: bool = True) -> dict[str, list[str]]:
    """The header block, read from the bytes themselves (8-bit values decoded properly).

    With ``encoded_words=False`` RFC 2047 words stay encoded: address headers must be
    split into addresses *before* decoding, or an encoded comma or line break in a display
    name would smuggle in another address.
    """
    return _by_name(_header_fields(raw), candidates, encoded_words)


def _by_name(fields: list[tuple[str, bytes]], candidates: tuple[str, ...],
             encoded_words: bool = True) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in fields:
        text = (decode_header_value(value, candidates) if encoded_words
                else _undecoded(value, candidates))
        headers.setdefault(name, []).append(text)
    return headers


def _body_texts(message: email.message.Message, candidates: tuple[str, ...]
                ) -> tuple[list[str], list[str]]:
    """Text and HTML bodies decoded part by part with :func:`decode_bytes`."""
    texts: list[str] = []
    htmls: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_disposition() == "attachment" or part.get_filename():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        text = decode_bytes(payload, part.get_content_charset(), candidates)
        if part.get_content_subtype() == "html":
            htmls.append(text)
        elif part.get_content_subtype() == "plain":
            texts.append(_unflowed(part, text))
    return texts, htmls


def _is_flowed(part: email.message.Message) -> bool:
    return str(part.get_param("format", "")).lower() == "flowed"


def _unflowed(part: email.message.Message, text: str) -> str:
    """``text`` of a ``format=flowed`` part with its soft line breaks removed (RFC 3676):
    before anything reads it, so that no rule or person sees the client's wrapping."""
    if not _is_flowed(part):
        return text
    return unflow(text, delsp=str(part.get_param("delsp", "")).lower() == "yes")


def _flowed(message: email.message.Message) -> bool:
    """Whether a text part of ``message`` is ``format=flowed``."""
    return any(part.get_content_type() == "text/plain" and _is_flowed(part)
               for part in message.walk())


def _addresses(value: str) -> list[tuple[str, str]]:
    if not value:
        return []  # most messages have no Reply-To: the stdlib's strict parse costs 0.2 ms
    return [
        (decode_header_value(name), addr.strip().lower())
        for name, addr in email.utils.getaddresses([value])
        if addr and "@" in addr
    ]


def _html_to_text(html: str) -> str:
    return html_to_text(html).strip()


def _date(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # «31 Dec 9999 23:00 -0500» overflows once moved to UTC
    return parsed


def _attachment_bytes(item: Mapping[str, object]) -> bytes:
    payload = item.get("payload") or ""
    if item.get("binary"):
        return base64.b64decode(str(payload))
    if isinstance(payload, bytes):
        return payload
    return str(payload).encode("utf-8", "surrogateescape")




def salvage_text(raw: bytes, candidates: tuple[str, ...] = DEFAULT_CHARSETS) -> str:
    """The text of a message whose MIME structure is broken (e.g. a wrong boundary).

    The parts are read again with the boundary that the body actually uses; failing that,
    the whole body is kept as text. A body is never silently dropped.
    """
    body = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[1] if b"\n\n" in raw.replace(
        b"\r\n", b"\n") else b""
    found = DELIMITER_LINE.search(body)
    if found is not None:
        boundary = found.group(1).decode("ascii")
        rebuilt = (f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
                   .encode("ascii") + body)
        texts, htmls = _body_texts(email.message_from_bytes(rebuilt), candidates)
        if texts or htmls:
            return "\n".join(texts).strip() or _html_to_text("\n".join(htmls))
    return decode_bytes(body, None, candidates).strip()


@functools.cache
def _walker() -> Any:
    """mail-parser's parser, less the header analysis that this module does itself.

    mail-parser decodes every header, parses every address, date and ``Received`` line,
    and builds two summaries of the whole message, all eagerly: nearly half of its time,
    for results read here from the raw bytes instead (8-bit values, address smuggling).
    Its MIME walk (bodies, charsets, attachments, defects) is kept as it is. The header
    pass is skipped by letting mail-parser's own reset run on no message, so that every
    attribute it expects exists in whatever version is installed. Built on first use:
    mail-parser is imported lazily.
    """
    import mailparser

    class MimeWalk(mailparser.MailParser):
        _message: Any

        def _reset(self) -> None:
            message, self._message = self._message, None
            try:
                super()._reset()
            finally:
                self._message = message

        def _make_mail(self, complete: bool = True) -> dict[str, object]:
            return {}

    return MimeWalk


def _attachment_name(filename: str, content_type: str) -> str:
    """An enclosed message keeps its own name only if it says it is one: mail-parser
    names an unnamed part at random («zudvsjpxjs.txt»), which told an auditor nothing."""
    if content_type == "message/rfc822" and not filename.lower().endswith(".eml"):
        return "message-joint.eml"
    return filename


def parse_message(raw: bytes, candidates: tuple[str, ...] = DEFAULT_CHARSETS,
                  known_hash: str | None = None) -> InboundMessage:
    """Parse ``raw`` once into an :class:`InboundMessage`; :class:`MessageError` if impossible.

    ``candidates`` are the charsets tried for 8-bit text that declares none (or a wrong one);
    ``known_hash`` is :func:`content_hash` of ``raw``, if the caller has it already.
    """
    if not raw.strip():
        raise MessageError("empty message")
    skeleton, lifted = lift(raw)
    walker = _walker()
    parser = "mail-parser"
    try:
        parsed = walker.from_bytes(skeleton)
    except Exception as exc:  # mail-parser raises many types on broken input
        # The standard library's parser reads what mail-parser's extras trip on (a
        # SendGrid bounce's epilogue): the message is read, and the row says how.
        parsed = _StdlibWalk(skeleton, candidates)
        parser = f"email (mail-parser : {type(exc).__name__}: {str(exc)[:200]})"
    message = parsed.message
    if message is None:
        raise MessageError("unparsable message: no headers")

    fields = _header_fields(raw)
    headers = _by_name(fields, candidates)
    # Address headers are split into addresses before their words are decoded: see
    # raw_headers. Only the first of each counts.
    undecoded = {name: _undecoded(value, candidates)
                 for name, value in reversed(fields) if name in ("from", "reply-to")}

    def first(name: str) -> str:
        values = headers.get(name)
        return values[0] if values else ""

    senders = _addresses(undecoded.get("from", ""))
    if not headers:
        raise MessageError("no header at all: not an email")
    from_name, from_address = senders[0] if senders else ("", "")
    reply_tos = _addresses(undecoded.get("reply-to", ""))
    plain, htmls = parsed.text_plain, parsed.text_html
    if "CharsetDecodeDefect" in parsed.defects_categories or (
            plain and b"flowed" in raw and _flowed(message)):
        # mail-parser fell back on replacement characters, or kept a flowed text's soft
        # line breaks: decode those parts here.
        plain, htmls = _body_texts(message, candidates)
    text = "\n".join(plain).replace("\x00", "").strip()
    html = "\n".join(htmls).replace("\x00", "").strip()
    if not text and not html and not parsed.attachments:
        text = salvage_text(raw, candidates)
    from_html = not text and bool(html)
    if from_html:
        text = _html_to_text(html)
    attachments = tuple(
        Attachment(
            filename=_attachment_name(visible(decode_header_value(item.get("filename") or "")),
                                      str(item.get("mail_content_type") or "")),
            content_type=str(item.get("mail_content_type") or "application/octet-stream"),
            data=restore(_attachment_bytes(item), raw, lifted),
        )
        for item in parsed.attachments
    )
    defects = tuple(str(d) for d in parsed.defects_categories)
    return InboundMessage(
        raw=raw,
        content_hash=known_hash or content_hash(raw),
        # The register keeps 998 characters, a header line's limit (RFC 5322, 2.1.1).
        message_id=(_MSGID.findall(first("message-id")) or [first("message-id")])[0][:998],
        subject=visible(first("subject")),
        from_address=from_address,
        from_name=visible(from_name),
        reply_to=reply_tos[0][1] if reply_tos else "",
        date=_date(first("date")),
        in_reply_to=tuple(_MSGID.findall(first("in-reply-to"))),
        references=tuple(_MSGID.findall(" ".join(headers.get("references", [])))),
        headers={k: tuple(v) for k, v in headers.items()},
        content_type=message.get_content_type().lower(),
        text=text,
        html=html,
        attachments=attachments,
        defects=defects,
        text_from_html=from_html,
        parser=parser,
    )


class _StdlibWalk:
    """What :func:`parse_message` reads of mail-parser's result, made by the standard
    library's ``email`` package alone: for a message mail-parser cannot read."""

    def __init__(self, skeleton: bytes, candidates: tuple[str, ...]) -> None:
        self.message = email.message_from_bytes(skeleton)
        self.defects_categories = {type(d).__name__ for part in self.message.walk()
                                   for d in part.defects}
        self.attachments: list[dict[str, object]] = []
        for part in self.message.walk():
            if part.is_multipart():
                continue
            filename = part.get_filename()
            if filename or part.get_content_disposition() == "attachment" or (
                    part.get_content_maintype() not in ("text", "message")):
                payload = part.get_payload(decode=True)
                self.attachments.append({
                    "filename": filename or "", "mail_content_type": part.get_content_type(),
                    "payload": payload if isinstance(payload, bytes) else b""})
        self.text_plain, self.text_html = _body_texts(self.message, candidates)
