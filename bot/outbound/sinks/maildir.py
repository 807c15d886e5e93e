"""A Maildir as the outbox: each sent email becomes one file, to open with any mail reader."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bot.errors import SinkError


class MaildirConnection:
    """Appends to the Maildir; the envelope is recorded in ``X-Envelope-*`` headers."""

    def __init__(self, box: mailbox.Maildir) -> None:
        self.box = box

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> None:
        envelope = (
            f"X-Envelope-From: <{envelope_from}>\r\n"
            f"X-Envelope-To: {', '.join(recipients)}\r\n"
        ).encode("ascii", "replace")
        try:
            self.box.add(envelope + raw)
        except OSError as exc:
            raise SinkError(f"cannot write to Maildir {self.box._path}: {exc}") from exc


class MaildirSink:
    """Sink writing into the Maildir at ``path`` (created when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def connect(self) -> Iterator[MaildirConnection]:
        try:
            box = mailbox.Maildir(self.path, create=True)
        except OSError as exc:
            raise SinkError(f"cannot open Maildir {self.path}: {exc}") from exc
        yield MaildirConnection(box)
