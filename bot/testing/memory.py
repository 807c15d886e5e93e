"""An in-memory mailbox and mail server: the pipeline without any server.

Like httpx's ``MockTransport``: the same interfaces as the IMAP source and the SMTP sink
(:class:`~bot.intake.sources.base.Source`, :class:`~bot.outbound.sinks.Sink`), held in
dictionaries, so that intake and director scenarios run in milliseconds. What only a
real server can show (IMAP behaviour, TLS, crashes, bounces) stays with the real ones.
"""

from __future__ import annotations

import datetime as dt
import email
import email.header
import email.policy
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

from bot.errors import DeliveryRefused, SourceError
from bot.intake.sources.base import RawMessage

INBOX = "INBOX"


class MemorySource:
    """Folders of messages, with increasing UIDs, as an IMAP server with MOVE and UIDPLUS
    keeps them; filing moves a message, so it is always in exactly one folder."""

    ordered = True

    def __init__(self, name: str = "memory", uidvalidity: str = "1") -> None:
        self.mailbox = f"memory:{name}"
        self.folders: dict[str, dict[str, bytes]] = {INBOX: {}}
        self._dates: dict[str, dt.datetime | None] = {}
        self._uidvalidity = uidvalidity
        self._next = 1
        self._arrived = threading.Event()
        #: Folders that refuse to be created, as a server may: ``file`` raises for them.
        self.refused: set[str] = set()

    def deliver(self, raw: bytes, when: dt.datetime | None = None) -> str:
        """Put ``raw`` in the inbox, as an MTA would; its UID."""
        uid = str(self._next)
        self._next += 1
        self.folders[INBOX][uid] = raw
        self._dates[uid] = when
        self._arrived.set()
        return uid

    def folder(self, name: str) -> list[bytes]:
        """The messages of folder ``name``, oldest first."""
        return list(self.folders.get(name, {}).values())

    # --- Source ----------------------------------------------------------------------------

    def can_idle(self) -> bool:
        return True

    def uidvalidity(self) -> str:
        return self._uidvalidity

    def fetch(self, after_uid: int, batch_size: int, max_bytes: int
              ) -> Iterator[list[RawMessage]]:
        # What is listed now needs no wake-up any more (an IMAP source's wait looks only
        # above what it fetched): cleared first, so that a later arrival still wakes.
        self._arrived.clear()
        waiting = sorted((int(uid), raw) for uid, raw in self.folders[INBOX].items()
                         if int(uid) > after_uid)
        batch: list[RawMessage] = []
        for uid, raw in waiting:
            over = len(raw) > max_bytes
            data = raw[:raw.find(b"\r\n\r\n") + 4] if over and b"\r\n\r\n" in raw else raw
            batch.append(RawMessage(str(uid), data, self._dates.get(str(uid)), size=len(raw),
                                    headers_only=over))
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def file(self, uids: list[str], folder: str, again: Collection[str] = ()) -> None:
        if folder in self.refused:
            raise SourceError(f"folder {folder!r} cannot be created")
        target = self.folders.setdefault(folder, {})
        for uid in uids:
            raw = self.folders[INBOX].pop(uid, None)
            if raw is not None:
                target[uid] = raw

    def present(self, uids: list[str]) -> set[str]:
        return {uid for uid in uids if uid in self.folders[INBOX]}

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        deadline = time.monotonic() + timeout
        # In slices, as the IMAP source idles: a stop request is noticed soon.
        while not (stop is not None and stop.is_set()):
            left = deadline - time.monotonic()
            if left <= 0 or self._arrived.wait(min(left, 0.05)):
                break
        self._arrived.clear()

    def close(self) -> None:
        """Nothing to release."""


def plain_text(message: EmailMessage) -> str:
    """A message's plain text as a reader's client shows it: decoded, a flowed part
    (RFC 3676) joined again, non-breaking spaces as spaces."""
    from bot.core.text import NBSP, unflow

    body = message.get_body(("plain",))
    if body is None:
        return ""
    text = str(body.get_content())
    if str(body.get_param("format", "")).lower() == "flowed":
        text = unflow(text, delsp=str(body.get_param("delsp", "")).lower() == "yes")
    # A non-breaking space reads as a space: the words are what a test looks for (the
    # typography has its own test, on the part as written).
    return text.replace(NBSP, " ")


@dataclass
class Sent:
    """One email the sink accepted."""

    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        """The plain-text part as a reader's client shows it (:func:`plain_text`)."""
        return plain_text(self.message)

    @property
    def html(self) -> str:
        """The HTML part, decoded, non-breaking spaces as spaces (as :func:`plain_text`)."""
        body = self.message.get_body(("html",))
        return str(body.get_content()).replace("\u00a0", " ") if body is not None else ""

    @property
    def subject(self) -> str:
        return str(email.header.make_header(email.header.decode_header(
            self.message["Subject"] or "")))


@dataclass
class MemorySink:
    """A mail server that keeps what it accepts; it refuses the addresses of ``refuse``
    for good (5xx), as a server refusing a recipient does."""

    sent: list[Sent] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    @contextmanager
    def connect(self) -> Iterator[MemorySink]:
        yield self

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> None:
        refused = [r for r in recipients if r in self.refuse]
        if refused:
            raise DeliveryRefused(f"550 5.1.1 <{refused[0]}>: utilisateur inconnu")
        self.sent.append(Sent(envelope_from, tuple(recipients), raw))

    def to(self, address: str) -> list[Sent]:
        """What was sent to ``address``, in order."""
        return [s for s in self.sent if address in s.recipients]
