"""A local Maildir as the watched inbox (``reclambot demo``, imports, tests of the pipeline).

Folders are Maildir++ subfolders (``.Réclamations.Traitées``); filing is a rename, so a
message is always in exactly one place.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path

from bot.errors import SourceError
from bot.intake.sources.base import RawMessage


def folder_dir(root: Path, folder: str) -> Path:
    """The Maildir++ subfolder of ``root`` for a folder written ``A/B``."""
    return root / ("." + folder.replace("/", "."))


def ensure_maildir(path: Path) -> None:
    """Create ``path`` as an empty Maildir if needed."""
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)


def _header_block(path: Path, limit: int = 256 * 1024) -> bytes:
    """The header of a message file, without reading its body."""
    lines: list[bytes] = []
    size = 0
    with path.open("rb") as handle:
        for line in handle:
            if line in (b"\n", b"\r\n") or size > limit:
                break
            lines.append(line)
            size += len(line)
    return b"".join(lines) + b"\r\n"


class MaildirSource:
    """The Maildir at ``root``; UIDs are the Maildir file names without their flags."""

    ordered = False

    def can_idle(self) -> bool:
        return False

    def __init__(self, root: Path, home: Path | None = None) -> None:
        self.root = root
        #: For a subfolder opened as a source (quarantine): the Maildir that is ``INBOX``.
        self.home = home
        self.mailbox = f"maildir:{root.resolve()}"
        try:
            ensure_maildir(root)
        except OSError as exc:
            raise SourceError(f"cannot open Maildir {root}: {exc}") from exc

    def uidvalidity(self) -> str:
        return "1"

    def _files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for sub in ("new", "cur"):
            for path in (self.root / sub).iterdir():
                if path.is_file() and not path.name.startswith("."):
                    found[path.name.split(":", 1)[0]] = path
        return found

    def fetch(self, after_uid: int, batch_size: int, max_bytes: int
              ) -> Iterator[list[RawMessage]]:
        files = self._files()
        uids = sorted(files, key=lambda uid: (files[uid].stat().st_mtime, uid))
        for start in range(0, len(uids), batch_size):
            batch = []
            for uid in uids[start : start + batch_size]:
                path = files[uid]
                try:
                    stat = path.stat()
                    big = stat.st_size > max_bytes
                    data = _header_block(path) if big else path.read_bytes()
                except FileNotFoundError:
                    continue  # filed by someone else meanwhile
                moment = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).replace(tzinfo=None)
                batch.append(RawMessage(uid=uid, data=data, internal_date=moment,
                                        size=stat.st_size, headers_only=big))
            if batch:
                yield batch

    def file(self, uids: list[str], folder: str, again: Collection[str] = ()) -> None:
        files = self._files()
        back_home = self.home is not None and folder.upper() == "INBOX"
        target = self.home if back_home and self.home is not None else folder_dir(self.root,
                                                                                  folder)
        try:
            ensure_maildir(target)
            for uid in uids:
                path = files.get(uid)
                if path is None:
                    continue
                if back_home:
                    # A new name, as a server gives a message put back a new UID: the
                    # inbox's rows already know the old one.
                    os.replace(path, target / "new" / f"{uuid.uuid4().hex}.retry")
                else:
                    os.replace(path, target / "cur" / (path.name if ":" in path.name
                                                        else path.name + ":2,"))
        except OSError as exc:
            raise SourceError(f"cannot file into {target}: {exc}") from exc

    def present(self, uids: list[str]) -> set[str]:
        return set(uids) & set(self._files())

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        (stop or threading.Event()).wait(timeout)

    def close(self) -> None:
        pass
