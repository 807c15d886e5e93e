"""A mailbox export (mbox file or Maildir folder) read as a source, for ``reclambot import``.

Read-only: an export is evidence, so nothing is moved in it. A message's arrival time is
its Date header (an export keeps no server arrival time).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import mailbox
import threading
from collections.abc import Collection, Iterator
from pathlib import Path

from bot.errors import SourceError
from bot.intake.message import raw_headers, split_head
from bot.intake.sources.base import RawMessage


class ArchiveSource:
    """Every message of an mbox file or a Maildir folder, in file order."""

    ordered = False

    def can_idle(self) -> bool:
        return False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mailbox = f"import:{path.resolve()}"
        try:
            self.box: mailbox.Mailbox = (mailbox.Maildir(path, create=False) if path.is_dir()
                                         else mailbox.mbox(path, create=False))
        except (OSError, mailbox.Error) as exc:
            raise SourceError(f"cannot read {path}: {exc}") from exc

    def __len__(self) -> int:
        return len(self.box)

    def uidvalidity(self) -> str:
        return "1"

    def fetch(self, after_uid: int, batch_size: int, max_bytes: int
              ) -> Iterator[list[RawMessage]]:
        batch: list[RawMessage] = []
        for key in self.box.iterkeys():
            data = self.box.get_bytes(key)
            # A stable identity across runs, whatever the mailbox library's keys are.
            uid = hashlib.sha256(data).hexdigest()[:32]
            date = raw_headers(split_head(data)[0]).get("date", [""])[0]
            moment = None
            try:
                parsed = email.utils.parsedate_to_datetime(date) if date else None
                if parsed is not None and parsed.tzinfo is not None:
                    moment = parsed.astimezone(dt.UTC).replace(tzinfo=None)
            except (TypeError, ValueError, IndexError):
                moment = None
            batch.append(RawMessage(uid=uid, data=data, internal_date=moment, size=len(data),
                                    headers_only=len(data) > max_bytes))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def file(self, uids: list[str], folder: str, again: Collection[str] = ()) -> None:
        """Nothing moves in an export."""

    def present(self, uids: list[str]) -> set[str]:
        return set()

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        pass

    def close(self) -> None:
        self.box.close()
