"""The dossier of each complaint on disk: original messages, attachments, copies of emails sent.

Layout, one folder per reference (``REC-2026-0001``, or a contact's or pending ticket's
reference until it enters the register, when its files are absorbed)::

    dossiers/REC-2026-0001/messages/20261125-101500-1a2b3c4d.eml
    dossiers/REC-2026-0001/pieces-jointes/1a2b3c4d-01-facture.pdf
    dossiers/REC-2026-0001/envois/20261125-101501-acknowledgement-42.eml

Every write is atomic (temporary file, then rename) and named deterministically, so that
doing it again after a crash rewrites the same file instead of adding a second one.
Attachment names from emails are reduced to a safe base name: they never choose a path.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bot.errors import ReferenceRefused


class Document(Protocol):
    """A file to keep in a dossier: an attachment of an inbound message."""

    @property
    def filename(self) -> str:
        """The sender's name for it: untrusted, reduced to a safe base name."""

    @property
    def data(self) -> bytes: ...


MESSAGES = "messages"
ATTACHMENTS = "pieces-jointes"
SENT = "envois"
_REFERENCE = re.compile(r"^[A-Z]{1,8}-[A-Z0-9-]{4,24}$")
_UNSAFE = re.compile(r"[^\w.\- ]+")


def safe_filename(name: str, fallback: str = "piece-jointe") -> str:
    """A base name that cannot escape its folder or hide: no separators, no leading dot."""
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    name = _UNSAFE.sub("_", name).strip(" ._")
    if not name:
        name = fallback
    stem, dot, ext = name.rpartition(".")
    if dot and len(ext) <= 10:
        return f"{stem[:100].rstrip(' ._') or fallback}.{ext}"
    return name[:110]


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y%m%d-%H%M%S")


class Dossiers:
    """The dossiers folder (``[storage] dossiers``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, reference: str) -> Path:
        """The folder of one reference; refuses anything that is not a reference."""
        if not _REFERENCE.match(reference):
            raise ReferenceRefused(f"not a dossier reference: {reference!r}")
        return self.root / reference

    def relative(self, reference: str) -> str:
        """Where the supporting documents are, as written in the register."""
        return f"{self.root.name}/{reference}/"

    def _write(self, path: Path, data: bytes) -> Path:
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except FileNotFoundError:
            # Folders are created on first need only: a mkdir on every write cost as much
            # as the write itself.
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def sweep(self) -> int:
        """Remove temporary files a killed process left behind (only one bot runs at a time)."""
        removed = 0
        if self.root.is_dir():
            for path in self.root.glob("*/*/.tmp-*"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def store_message(
        self,
        reference: str,
        raw: bytes,
        content_hash: str,
        received_at: dt.datetime,
        attachments: Sequence[Document],
    ) -> list[Path]:
        """Keep an inbound message (.eml) and its attachments in the dossier."""
        folder = self.folder(reference)
        short = content_hash[:8]
        written = [self._write(folder / MESSAGES / f"{_stamp(received_at)}-{short}.eml", raw)]
        for index, item in enumerate(attachments, start=1):
            name = f"{short}-{index:02d}-{safe_filename(item.filename)}"
            written.append(self._write(folder / ATTACHMENTS / name, item.data))
        return written

    def store_sent(self, reference: str, sent_at: dt.datetime, kind: str, row_id: int,
                   raw: bytes) -> Path:
        """Keep a copy of an email the bot sent about this reference."""
        name = f"{_stamp(sent_at)}-{safe_filename(kind)}-{row_id}.eml"
        return self._write(self.folder(reference) / SENT / name, raw)

    def absorb(self, reference: str, others: list[str]) -> None:
        """Move the files of earlier references (contact, ticket) into ``reference``'s folder."""
        target = self.folder(reference)
        for other in others:
            source = self.folder(other)
            if not source.is_dir():
                continue
            for path in sorted(source.rglob("*")):
                if path.is_file() and not path.name.startswith(".tmp-"):
                    destination = target / path.relative_to(source)
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    if destination.exists():
                        path.unlink()
                    else:
                        os.replace(path, destination)
            shutil.rmtree(source, ignore_errors=True)
