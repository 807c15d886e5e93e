"""Sources: where inbound messages come from (an IMAP folder, or a local Maildir for the demo).

A source lists the messages waiting in its folder in batches, files handled ones into other
folders (a move: nothing is ever deleted), and can wait until something new arrives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Config
    from bot.intake.sources.base import Source
    from bot.intake.sources.imap import Pace


def make_source(config: Config, pace: Pace | None = None) -> Source:
    """The source the configuration asks for (``[bot] source``); ``pace``: how often an
    IMAP source idling looks for itself (:data:`~bot.intake.sources.imap.ALONE`)."""
    if config.bot.source == "maildir":
        from bot.intake.sources.maildir import MaildirSource

        assert config.maildir is not None
        return MaildirSource(config.maildir.inbox)
    from bot.intake.sources.imap import ALONE, ImapSource

    assert config.imap is not None
    return ImapSource(config.imap, config.folders, pace or ALONE)
