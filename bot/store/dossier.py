"""The dossier of each complaint: original messages, attachments, copies of emails sent.

Two stores keep them, chosen by ``[storage] dossiers``: a folder on disk
(:class:`Dossiers`, the default), or the register's own database (:class:`DatabaseDossiers`,
``dossiers = "database"``), which every machine of a fleet reaches and which
``reclambot dossier export REF DIR`` turns back into the folder an auditor expects.

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
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, delete, exists, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.errors import ReferenceRefused, StoreError
from bot.store.models import DossierFile


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


def checked(reference: str) -> str:
    """``reference`` if it is one; anything else never names a dossier."""
    if not _REFERENCE.match(reference):
        raise ReferenceRefused(f"not a dossier reference: {reference!r}")
    return reference


def message_files(raw: bytes, content_hash: str, received_at: dt.datetime,
                  attachments: Sequence[Document]) -> list[tuple[str, bytes]]:
    """An inbound message and its attachments as the files of a dossier (path inside it,
    content), named from what the register says, so that writing them again after a
    crash rewrites the same files."""
    short = content_hash[:8]
    files = [(f"{MESSAGES}/{_stamp(received_at)}-{short}.eml", raw)]
    files += [(f"{ATTACHMENTS}/{short}-{index:02d}-{safe_filename(item.filename)}", item.data)
              for index, item in enumerate(attachments, start=1)]
    return files


def sent_name(sent_at: dt.datetime, kind: str, row_id: int) -> str:
    """Where the copy of a sent email goes in its dossier."""
    return f"{SENT}/{_stamp(sent_at)}-{safe_filename(kind)}-{row_id}.eml"


class DossierStore(Protocol):
    """Where dossiers are kept: a folder (:class:`Dossiers`) or the register
    (:class:`DatabaseDossiers`). Paths inside a dossier are ``messages/…``,
    ``pieces-jointes/…`` and ``envois/…``, written with ``/``."""

    def relative(self, reference: str) -> str:
        """Where the supporting documents are, as written in the register."""

    def sweep(self) -> int:
        """Remove what a killed process left half-written; how many."""

    def store_message(self, reference: str, raw: bytes, content_hash: str,
                      received_at: dt.datetime, attachments: Sequence[Document]) -> None:
        """Keep an inbound message (.eml) and its attachments in the dossier."""

    def store_sent(self, reference: str, sent_at: dt.datetime, kind: str, row_id: int,
                   raw: bytes) -> None:
        """Keep a copy of an email the bot sent about this reference."""

    def absorb(self, reference: str, others: list[str]) -> None:
        """Move the files of earlier references (contact, ticket) into ``reference``'s."""

    def exists(self, reference: str, within: Session | None = None) -> bool:
        """Whether anything is kept for ``reference`` (False for a non-reference); asked
        ``within`` the caller's transaction when it holds one (a SQLite register's write
        lock would make a second connection wait for it)."""

    def names(self, reference: str) -> list[str]:
        """The paths of the dossier's files, sorted."""

    def files(self, reference: str) -> Iterator[tuple[str, bytes]]:
        """Every file of the dossier, sorted by path: (path inside the dossier, content),
        one in memory at a time."""

    def remove(self, reference: str) -> bool:
        """Erase the dossier (after the commit that erased its rows); whether it existed."""


def export_dossier(store: DossierStore, reference: str, directory: Path) -> list[Path]:
    """Write the dossier of ``reference`` as the folder ``directory/<reference>/``, as the
    folder store keeps it; the files written. Paths come from the store's own names,
    which :func:`safe_filename` made: each is checked to stay inside the folder anyway."""
    target = directory / checked(reference)
    root = target.resolve()
    written: list[Path] = []
    for name, data in store.files(reference):
        path = target / name
        if root not in path.resolve().parents:
            raise ReferenceRefused(f"not a path inside a dossier: {name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


class Dossiers:
    """The dossiers folder (``[storage] dossiers``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, reference: str) -> Path:
        """The folder of one reference; refuses anything that is not a reference."""
        return self.root / checked(reference)

    def relative(self, reference: str) -> str:
        """Where the supporting documents are, as written in the register."""
        return f"{self.root.name}/{reference}/"

    def _write(self, path: Path, data: bytes) -> Path:
        # Written beside its place, then renamed over it: a reader never sees half a file.
        # The temporary name is the file's own (one writer per dossier at a time, and a
        # leftover is swept): mkstemp's random names cost more than the write.
        tmp = path.with_name(f".tmp-{path.name}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileNotFoundError:
            # Folders are created on first need only: a mkdir on every write cost as much
            # as the write itself.
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, flags, 0o600)
        try:
            with open(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
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
    ) -> None:
        """Keep an inbound message (.eml) and its attachments in the dossier."""
        folder = self.folder(reference)
        for name, data in message_files(raw, content_hash, received_at, attachments):
            self._write(folder / name, data)

    def store_sent(self, reference: str, sent_at: dt.datetime, kind: str, row_id: int,
                   raw: bytes) -> None:
        """Keep a copy of an email the bot sent about this reference."""
        self._write(self.folder(reference) / sent_name(sent_at, kind, row_id), raw)

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

    def exists(self, reference: str, within: Session | None = None) -> bool:
        """Whether the folder of ``reference`` exists."""
        try:
            return self.folder(reference).exists()
        except ReferenceRefused:
            return False

    def names(self, reference: str) -> list[str]:
        """The paths of the folder's files (temporary files left out), sorted."""
        folder = self.folder(reference)
        if not folder.is_dir():
            return []
        return [path.relative_to(folder).as_posix() for path in sorted(folder.rglob("*"))
                if path.is_file() and not path.name.startswith(".tmp-")]

    def files(self, reference: str) -> Iterator[tuple[str, bytes]]:
        """Every file of the folder, sorted by path."""
        folder = self.folder(reference)
        for name in self.names(reference):
            yield name, (folder / name).read_bytes()

    def remove(self, reference: str) -> bool:
        """Erase the folder of ``reference``."""
        if not self.exists(reference):
            return False
        shutil.rmtree(self.folder(reference))
        return True


class DatabaseDossiers:
    """Dossiers kept in the register's database (``[storage] dossiers = "database"``), one
    row per file: every machine that reaches the register reaches them, and a backup of the
    database is a backup of the dossiers.

    Each write is its own transaction after the register's (as a folder's file is written
    after it), and replaces a file of the same name: writing again after a crash rewrites
    the same row instead of adding a second one. A database error is a :class:`StoreError`,
    so that the caller treats it as a folder's failed write (the message stays to be done).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def relative(self, reference: str) -> str:
        """Where the supporting documents are, as written in the register."""
        return f"base de données du registre : {reference} (reclambot dossier export)"

    def sweep(self) -> int:
        """Nothing: a transaction is never half-written."""
        return 0

    @contextmanager
    def _writing(self, reference: str) -> Iterator[Connection]:
        """One transaction writing the dossier of ``reference``; a database error is a
        :class:`StoreError` naming it."""
        checked(reference)
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"dossier {reference} not written: {type(exc).__name__}") from exc

    def _put(self, reference: str, files: list[tuple[str, bytes]], at: dt.datetime) -> None:
        with self._writing(reference) as conn:
            names = [name for name, _ in files]
            conn.execute(delete(DossierFile).where(DossierFile.reference == reference,
                                                   DossierFile.path.in_(names)))
            conn.execute(insert(DossierFile), [
                {"reference": reference, "path": name, "data": data, "size": len(data),
                 "written_at": at} for name, data in files])

    def store_message(self, reference: str, raw: bytes, content_hash: str,
                      received_at: dt.datetime, attachments: Sequence[Document]) -> None:
        """Keep an inbound message (.eml) and its attachments in the dossier."""
        self._put(reference, message_files(raw, content_hash, received_at, attachments),
                  received_at)

    def store_sent(self, reference: str, sent_at: dt.datetime, kind: str, row_id: int,
                   raw: bytes) -> None:
        """Keep a copy of an email the bot sent about this reference."""
        self._put(reference, [(sent_name(sent_at, kind, row_id), raw)], sent_at)

    def absorb(self, reference: str, others: list[str]) -> None:
        """Give the files of ``others`` to ``reference`` (one already there wins)."""
        checked(reference)
        if not others:
            return
        kept = DossierFile.__table__.alias("kept")
        with self._writing(reference) as conn:
            conn.execute(
                update(DossierFile)
                .where(DossierFile.reference.in_(others),
                       ~exists().where(kept.c.reference == reference,
                                       kept.c.path == DossierFile.path))
                .values(reference=reference))
            conn.execute(delete(DossierFile).where(DossierFile.reference.in_(others)))

    def exists(self, reference: str, within: Session | None = None) -> bool:
        """Whether a file is kept for ``reference``."""
        query = select(DossierFile.id).where(DossierFile.reference == reference).limit(1)
        if within is not None:
            return within.execute(query).first() is not None
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def names(self, reference: str) -> list[str]:
        """The paths of the dossier's files, sorted."""
        with self.engine.connect() as conn:
            return list(conn.scalars(select(DossierFile.path)
                                     .where(DossierFile.reference == checked(reference))
                                     .order_by(DossierFile.path)))

    def files(self, reference: str) -> Iterator[tuple[str, bytes]]:
        """Every file of the dossier, sorted by path, read one at a time."""
        for name in self.names(reference):
            # One file in memory at a time: a dossier may hold 40 MiB attachments.
            with self.engine.connect() as conn:
                data = conn.execute(select(DossierFile.data).where(
                    DossierFile.reference == reference, DossierFile.path == name)).scalar()
            if data is not None:
                yield name, data

    def remove(self, reference: str) -> bool:
        """Erase every file of ``reference``."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(DossierFile).where(
                DossierFile.reference == reference)).rowcount)


class DossierWrites:
    """Dossier writes handed to one thread of their own, in the order they are asked.

    Creating folders and files is the filesystem's slowest work (on some disks a
    millisecond each, more than the rest of a message), and it waits for the disk, not
    for Python: done by a thread, it runs while the pipeline sends the batch's emails.
    Whoever depends on a write waits for its :class:`~concurrent.futures.Future` (a
    message is filed only once its dossier is written); :meth:`close` waits for all.
    The database store writes in its own transactions, which a second connection would
    only queue behind the pipeline's: its writes run at once, in the caller's thread, as
    every store's do with ``background=False`` (for a caller that waits for them at once).
    """

    def __init__(self, store: DossierStore, background: bool = True) -> None:
        self._pool = (ThreadPoolExecutor(1, thread_name_prefix="dossiers")
                      if background and isinstance(store, Dossiers) else None)

    def submit(self, write: Callable[..., None], *args: Any) -> Future[None]:
        """Run ``write(*args)``, in the writer thread if there is one; its future."""
        if self._pool is not None:
            return self._pool.submit(write, *args)
        done: Future[None] = Future()
        try:
            write(*args)
        except Exception as exc:  # kept for the caller, as the thread's would be
            done.set_exception(exc)
        else:
            done.set_result(None)
        return done

    def wait(self) -> None:
        """Wait for every write asked so far (one thread: the last one asked ends last)."""
        if self._pool is not None:
            self._pool.submit(_nothing).result()

    def close(self) -> None:
        """Wait for every write asked so far, and stop the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _nothing() -> None:
    """A write that writes nothing: what :meth:`DossierWrites.wait` waits for."""
