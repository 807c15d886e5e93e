"""Large attachments, decoded straight from the raw message instead of through mail-parser.

mail-parser, and the standard library's feed parser under it, hold a base64 part several
times over while parsing (lines, joined text, encoded and decoded payloads): a 30 MB
attachment cost some 300 MB. So before parsing, every base64 leaf part larger than
:data:`LARGE_PART` is cut out of the message and replaced by a short placeholder; the
parser sees a small message, and the real content is decoded afterwards from the raw bytes
in one step (its only copy is the decoded data).
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import itertools
import re
from dataclasses import dataclass

#: Parts whose encoded body is larger than this (bytes) are lifted out before parsing.
LARGE_PART = 1 << 20

_BOUNDARY_PARAM = re.compile(rb'(?i)\bboundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))')
#: A MIME delimiter line (RFC 2046 boundary characters); group 1 is the boundary.
DELIMITER_LINE = re.compile(rb"^--([0-9A-Za-z'()+_,./:=?-]{1,70}?)(?:--)?[ \t]*\r?$", re.M)
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_MARKER = b"reclambot:lifted:"


@dataclass(frozen=True)
class Lifted:
    """Where the base64 body of one lifted part lies in the raw message."""

    start: int
    end: int

    def decode(self, raw: bytes) -> bytes:
        # Non-strict a2b_base64 skips the line breaks, and reads the raw bytes in place.
        return binascii.a2b_base64(memoryview(raw)[self.start:self.end])


def lift(raw: bytes, threshold: int = LARGE_PART) -> tuple[bytes, list[Lifted]]:
    """``raw`` with its large base64 parts replaced by placeholders, and where they were.

    A message with no such part is returned as it is (and nothing is copied).
    """
    if len(raw) <= threshold:
        return raw, []
    boundaries = {a or b for a, b in _BOUNDARY_PARAM.findall(raw)}
    if not boundaries:
        return raw, []
    delimiters = [m for m in DELIMITER_LINE.finditer(raw) if m.group(1) in boundaries]
    pieces: list[bytes] = []
    lifted: list[Lifted] = []
    done = 0
    for here, following in itertools.pairwise(delimiters):
        start, end = here.end(), following.start()
        if raw[start:start + 1] == b"\n":  # the delimiter line's own line break
            start += 1
        if end - start <= threshold:
            continue
        blank = _BLANK_LINE.search(raw, start, min(end, start + 65536))
        if blank is None:
            continue
        headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
            raw[start:blank.end()])
        encoding = str(headers.get("Content-Transfer-Encoding", "")).strip().lower()
        if headers.get_content_maintype() == "multipart" or encoding != "base64":
            continue
        placeholder = base64.b64encode(_MARKER + str(len(lifted)).encode()) + b"\r\n"
        pieces += [raw[done:blank.end()], placeholder]
        lifted.append(Lifted(blank.end(), end))
        done = end
    if not lifted:
        return raw, []
    pieces.append(raw[done:])
    return b"".join(pieces), lifted


def restore(data: bytes, raw: bytes, lifted: list[Lifted]) -> bytes:
    """The real content of an attachment that may be one of the placeholders."""
    if lifted and data.startswith(_MARKER):
        index = data[len(_MARKER):]
        if index.isdigit() and int(index) < len(lifted):
            return lifted[int(index)].decode(raw)
    return data
