"""What every source is: the messages it hands over (:class:`RawMessage`) and the
operations the pipeline asks of it (:class:`Source`)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RawMessage:
    """One message as fetched: its identity in the mailbox, and its bytes untouched."""

    uid: str
    data: bytes
    internal_date: dt.datetime | None = None
    #: Size on the server; when over ``[limits] max_message_bytes`` only the header is fetched.
    size: int = 0
    headers_only: bool = False


class Source(Protocol):
    """A mailbox folder the bot watches."""

    #: Stable identity of the watched folder, stored with every message seen in it.
    mailbox: str
    #: Whether UIDs are increasing integers, so that a watermark can skip what is done.
    ordered: bool

    def can_idle(self) -> bool:
        """Whether :meth:`wait` is woken by the server (IMAP IDLE); else the bot polls."""

    def uidvalidity(self) -> str:
        """The folder's UIDVALIDITY: when it changes, every UID means something else."""

    def fetch(self, after_uid: int, batch_size: int, max_bytes: int
              ) -> Iterator[list[RawMessage]]:
        """Messages waiting in the folder (with UID above ``after_uid`` when ordered);
        only the header of those larger than ``max_bytes``."""

    def file(self, uids: list[str], folder: str, again: Collection[str] = ()) -> None:
        """Move messages to ``folder``, created when missing.

        ``again``: those of ``uids`` that an earlier, interrupted pass may have copied
        there already, so that a server without MOVE does not get a second copy.
        """

    def present(self, uids: list[str]) -> set[str]:
        """Which of ``uids`` are still in the watched folder."""

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        """Return when something may have arrived, after ``timeout`` s, or once ``stop`` is set.

        A source that :meth:`can_idle` returns at once when mail came while the bot was
        busy (the watcher relies on it instead of a whole pass to look again)."""

    def close(self) -> None:
        """Release the connection."""
