"""Sinks: where rendered emails leave the bot (SMTP server, or a local Maildir for the demo).

A sink opens one connection for a whole pass over the outbox (``with sink.connect() as c``)
and sends each email with ``c.send(envelope_from, recipients, raw)``. A temporary failure
raises :class:`~bot.errors.TransientError`, a permanent refusal
:class:`~bot.errors.DeliveryRefused`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.config import Config


class Connection(Protocol):
    """An open sink."""

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> None:
        """Hand one email over."""


class Sink(Protocol):
    """Something that can open a :class:`Connection`."""

    def connect(self) -> AbstractContextManager[Connection]:
        """Open one connection for a pass over the outbox."""


def make_sink(config: Config) -> Sink:
    """The sink the configuration asks for (``[bot] sink``)."""
    if config.bot.sink == "maildir":
        from bot.outbound.sinks.maildir import MaildirSink

        assert config.maildir is not None
        return MaildirSink(config.maildir.outbox)
    from bot.outbound.sinks.smtp import SmtpSink

    assert config.smtp is not None
    return SmtpSink(config.smtp)
