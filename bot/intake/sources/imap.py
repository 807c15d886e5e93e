"""The watched IMAP folder, through imapclient.

Messages are fetched with ``BODY.PEEK[]`` so that those the bot leaves for humans stay
unread; handled ones are moved into the bot's folders, whose UTF-7 names imapclient
encodes. Folder names are mapped onto the account's personal namespace, learned at login
(:mod:`bot.intake.sources.folders`). What the server lacks, the bot does without, as a careful
client does:

- no ``MOVE``: ``UID COPY``, then the original is flagged ``\\Deleted`` and removed with
  ``UID EXPUNGE`` (UIDPLUS), which touches no other message;
- no ``UIDPLUS`` either: never a bare ``EXPUNGE``, which would also remove what someone
  else marked deleted; the original stays flagged ``\\Deleted \\Seen`` and every search
  skips deleted messages;
- no ``IDLE``: polling every ``[bot] poll_interval`` seconds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import socket
import ssl
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from bot.config import FoldersConfig, ImapConfig
from bot.core.stop import waking
from bot.errors import SourceError
from bot.intake.sources.base import RawMessage
from bot.intake.sources.folders import INBOX, Namespace, parse_namespace

log = logging.getLogger(__name__)
# Seconds between our own looks while idling: short just after entering IDLE, when mail
# that arrived as IDLE began may go unannounced, then every few seconds.
IDLE_RECHECKS = (0.25, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Pace:
    """How often an idling source looks for itself (``rechecks``, the last one repeated)
    and for a stop request (``stop_every``), in seconds."""

    rechecks: tuple[float, ...] = IDLE_RECHECKS
    stop_every: float = 1.0


#: One organisation alone: quick looks, for the quickest acknowledgement.
ALONE = Pace()
#: Among hundreds in one process: each look costs four round trips and wakes a thread,
#: times the organisations; IDLE (with the NOOP before it) does the announcing, and the
#: looks only catch what a server failed to announce. A fleet's stop request
#: (:class:`~bot.core.stop.Stop`) wakes an idling connection itself. Measured with a
#: thousand organisations: looks every 30 s and a stop looked for every 5 s cost 9 % of a
#: core while idle, and each wake-up took the interpreter from a busy pass; every 60 s,
#: 0 to 2 % (docs/hosting.md has the acknowledgements under load).
IN_A_FLEET = Pace(rechecks=(2.0, 60.0), stop_every=60.0)


def _errors() -> tuple[type[BaseException], ...]:
    from imapclient.exceptions import IMAPClientError

    return (IMAPClientError, OSError, socket.timeout, ssl.SSLError, EOFError)


def _existing_spelling(spellings: list[str], existing: set[str]) -> str | None:
    """The first of ``spellings`` the server lists, or ``None``."""
    return next((name for name in spellings if name in existing), None)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class ImapSource:
    """One IMAP folder (``[imap] folder``) on one account."""

    ordered = True
    #: Messages larger than this (bytes) are fetched in pieces of ``PIECE`` bytes.
    PIECEWISE_ABOVE = 8 << 20
    PIECE = 4 << 20

    def __init__(self, server: ImapConfig, folders: FoldersConfig | None = None,
                 pace: Pace = ALONE) -> None:
        self.server = server
        self.pace = pace
        self.folders = folders or FoldersConfig()
        # The folder as the config writes it: the identity stays the same on any server.
        self.mailbox = f"imap://{server.username}@{server.host}:{server.port}/{server.folder}"
        self._client: Any = None
        self._uidvalidity = ""
        self._known_folders: dict[str, str] = {}  # config name -> server name, existing
        self._highest = 0  # highest UID fetched: anything above it is new
        #: Learned at login: the personal namespace, and the watched folder's server name.
        self.namespace = Namespace()
        self.watched = server.folder
        #: No MOVE and no UIDPLUS: filed originals stay, flagged deleted, and are skipped.
        self.leaves_deleted = False

    def _connect(self) -> Any:
        from imapclient import IMAPClient

        server = self.server
        if server.security == "none":
            log.warning("IMAP to %s without TLS: the password travels in clear", server.host)
        client = None
        try:
            context = server.tls_context()
            client = IMAPClient(
                server.host,
                port=server.port,
                ssl=server.security == "ssl",
                ssl_context=context,
                timeout=server.timeout,
            )
            client.normalise_times = False  # aware datetimes, not the machine's local time
            if server.security == "starttls":
                client.starttls(context)
            self._login(client)
            self.namespace = self._learn_namespace(client)
            self._check_names()
            self.leaves_deleted = not (client.has_capability("MOVE")
                                       or client.has_capability("UIDPLUS"))
            self.watched = self._watched_name(client)
            selected = client.select_folder(self.watched)
        except BaseException as exc:
            if client is not None:
                with contextlib.suppress(Exception):  # failed half-way: just let it go
                    client.shutdown()
            if isinstance(exc, _errors()):
                raise SourceError(
                    f"IMAP {server.host}:{server.port} ({server.username}): {exc}"
                ) from exc
            raise
        self._uidvalidity = str(selected.get(b"UIDVALIDITY", ""))
        return client

    @staticmethod
    def _learn_namespace(client: Any) -> Namespace:
        """The personal namespace: NAMESPACE (RFC 2342), else the root of ``LIST "" ""``."""
        from imapclient.exceptions import IMAPClientError

        if client.has_capability("NAMESPACE"):
            try:
                found = parse_namespace(client.namespace().personal)
            except IMAPClientError:
                found = None  # announced but refused: fall back to LIST
            if found is not None:
                return found
        for _flags, delimiter, _name in client.list_folders("", ""):
            return Namespace(prefix="", delimiter=_text(delimiter) if delimiter else None,
                             learned_from="LIST")
        return Namespace()

    def folder_keys(self) -> dict[str, str]:
        """Each folder the bot files into, by its config key."""
        return {f"folders.{key}": getattr(self.folders, key)
                for key in ("processed", "ignored", "quarantine")}

    def _check_names(self) -> None:
        """Every configured name must map onto this server: a config error otherwise."""
        self.namespace.server_name(self.server.folder, "imap.folder")
        for key, name in self.folder_keys().items():
            self.namespace.server_name(name, key)

    def _key_of(self, name: str) -> str:
        keys = {name: key for key, name in self.folder_keys().items()}
        return keys.get(name, "folders")

    def _existing(self, client: Any) -> set[str]:
        return {_text(name) for _flags, _delimiter, name
                in self._call("LIST", client.list_folders)}

    def _watched_name(self, client: Any) -> str:
        """The watched folder's server name: INBOX, or the first spelling that exists."""
        spellings = self.namespace.spellings(self.server.folder, "imap.folder")
        if spellings[0] == INBOX:
            return INBOX
        return _existing_spelling(spellings, self._existing(client)) or spellings[0]

    def capabilities(self) -> set[str]:
        """The server's capabilities after login, as upper-case names."""
        return {_text(c).upper() for c in self._call("CAPABILITY", self.client.capabilities)}

    def existing_folders(self) -> set[str]:
        """Every folder the account lists, by its server name."""
        return self._existing(self.client)

    def open_folder(self, name: str) -> None:
        """Ask the server about folder ``name`` (STATUS): it exists and can be used."""
        self._call(f"STATUS {name}", self.client.folder_status, name, ["MESSAGES"])

    def server_names(self) -> dict[str, str]:
        """Config key -> the server name of each folder the bot files into, as it would be
        used now: an existing spelling, or the one the bot would create."""
        existing = self._existing(self.client)
        names = {}
        for key, name in self.folder_keys().items():
            spellings = self.namespace.spellings(name, key)
            names[key] = _existing_spelling(spellings, existing) or spellings[0]
        return names

    def _login(self, client: Any) -> None:
        server = self.server
        if server.oauth2 is None:
            client.login(server.username, server.password.reveal())
            return
        from imapclient.exceptions import LoginError

        from bot.config.oauth2 import AccessTokens

        tokens = AccessTokens(server.oauth2)
        try:
            client.oauth2_login(server.username, tokens.get())
        except LoginError:
            # Revoked or expired early: one new token, then the refusal stands.
            client.oauth2_login(server.username, tokens.get(renew=True))

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _call(self, what: str, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except _errors() as exc:
            self._drop()
            raise SourceError(f"IMAP {what} failed: {exc}") from exc

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to close
                client.shutdown()

    def can_idle(self) -> bool:
        return bool(self._call("CAPABILITY", self.client.has_capability, "IDLE"))

    def uidvalidity(self) -> str:
        _ = self.client
        return self._uidvalidity

    def _criteria(self, uids: str) -> list[str]:
        # Without UIDPLUS the originals of filed messages stay, flagged deleted: skip them.
        return ["UID", uids, "UNDELETED"] if self.leaves_deleted else ["UID", uids]

    def fetch(self, after_uid: int, batch_size: int, max_bytes: int
              ) -> Iterator[list[RawMessage]]:
        client = self.client
        uidvalidity = self._uidvalidity
        uids = sorted(
            uid for uid in self._call("SEARCH", client.search,
                                      self._criteria(f"{after_uid + 1}:*"))
            if uid > after_uid  # "n:*" always matches the highest UID, even below n
        )
        self._highest = max([after_uid, *uids])
        for start in range(0, len(uids), batch_size):
            # A connection dropped meanwhile (by a failed filing) is opened again; the
            # UIDs listed still mean the same messages only under the same UIDVALIDITY.
            client = self.client
            if self._uidvalidity != uidvalidity:
                raise SourceError(f"IMAP UIDVALIDITY of {self.watched} changed during a pass")
            # Built in a method of its own, so that no local here still holds the previous
            # batch while the next one downloads: one batch in memory, not two.
            yield self._fetch_batch(client, uids[start : start + batch_size], max_bytes)

    def _fetch_batch(self, client: Any, chunk: list[int], max_bytes: int) -> list[RawMessage]:
        sizes = self._call("FETCH", client.fetch, chunk, ["RFC822.SIZE"])
        big = [u for u in chunk if sizes.get(u, {}).get(b"RFC822.SIZE", 0) > max_bytes]
        small = [u for u in chunk if u not in big]
        large = [u for u in small
                 if sizes.get(u, {}).get(b"RFC822.SIZE", 0) > self.PIECEWISE_ABOVE]
        whole = [u for u in small if u not in large]
        response = {}
        if whole:
            response.update(self._call(
                "FETCH", client.fetch, whole, ["BODY.PEEK[]", "INTERNALDATE"]))
        for uid in large:
            response[uid] = self._fetch_in_pieces(client, uid)
        if big:
            # Never download an oversized message: its header is enough to answer.
            response.update(self._call(
                "FETCH", client.fetch, big, ["BODY.PEEK[HEADER]", "INTERNALDATE"]))
        batch = []
        for uid in chunk:
            data = response.get(uid) or {}
            body = data.get(b"BODY[]", data.get(b"BODY[HEADER]"))
            if body is None:
                continue  # expunged meanwhile
            moment = data.get(b"INTERNALDATE")
            if isinstance(moment, dt.datetime) and moment.tzinfo is not None:
                moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
            batch.append(RawMessage(
                uid=str(uid), data=body, internal_date=moment,
                size=sizes.get(uid, {}).get(b"RFC822.SIZE", len(body)),
                headers_only=uid in big))
        return batch

    def _fetch_in_pieces(self, client: Any, uid: int) -> dict[bytes, Any]:
        """A large message in partial fetches: one FETCH of it whole costs three copies."""
        pieces: list[bytes] = []
        offset = 0
        moment = None
        while True:
            items = [f"BODY.PEEK[]<{offset}.{self.PIECE}>"]
            if not offset:
                items.append("INTERNALDATE")
            data = self._call("FETCH", client.fetch, [uid], items).get(uid)
            if data is None:
                return {}  # expunged meanwhile
            moment = data.get(b"INTERNALDATE", moment)
            piece = data.get(f"BODY[]<{offset}>".encode()) or b""
            if piece:
                pieces.append(piece)
                offset += len(piece)
            if len(piece) < self.PIECE:
                break
        return {b"BODY[]": b"".join(pieces), b"INTERNALDATE": moment}

    def present(self, uids: list[str]) -> set[str]:
        if not uids:
            return set()
        found = self._call("SEARCH", self.client.search,
                           self._criteria(",".join(str(int(u)) for u in uids)))
        return {str(u) for u in found}

    def _new_uids(self, client: Any) -> list[int]:
        # NOOP first: a server (Dovecot) adds what arrived to the session's view only when
        # a command ends, so a SEARCH alone misses a message that came during the last
        # IDLE, and IDLE does not announce it again (it was announced with that SEARCH).
        self._call("NOOP", client.noop)
        found = self._call("SEARCH", client.search, self._criteria(f"{self._highest + 1}:*"))
        return [uid for uid in found if uid > self._highest]

    def ensure_folder(self, folder: str) -> str:
        """The server name of ``folder`` (written ``A/B``), created when it exists under
        none of its spellings; idempotent, also against a concurrent run."""
        if folder in self._known_folders:
            return self._known_folders[folder]
        client = self.client
        spellings = self.namespace.spellings(folder, self._key_of(folder))
        name = _existing_spelling(spellings, self._existing(client))
        if name is None:
            name = spellings[0]
            try:
                client.create_folder(name)
            except _errors() as exc:
                # Created by a concurrent run between LIST and CREATE: fine if it now exists.
                if name not in self._existing(self.client):
                    raise SourceError(f"IMAP cannot create folder {name}: {exc}") from exc
            try:
                self.client.subscribe_folder(name)
            except _errors():
                log.debug("could not subscribe to %s", name)
        self._known_folders[folder] = name
        return name

    def file(self, uids: list[str], folder: str, again: Collection[str] = ()) -> None:
        if not uids:
            return
        target = self.ensure_folder(folder)
        client = self.client
        numbers = [int(u) for u in uids]
        if client.has_capability("MOVE"):
            self._call("MOVE", client.move, numbers, target)  # atomic: one place, always
            return
        # COPY first, so that a crash leaves the message in two places, never in none;
        # a message an interrupted pass may have copied is looked for there first.
        copied = self._copied_already(client, [int(u) for u in again if u in uids], target)
        to_copy = [n for n in numbers if n not in copied]
        if to_copy:
            self._call("COPY", client.copy, to_copy, target)
        if client.has_capability("UIDPLUS"):
            self._call("STORE", client.add_flags, numbers, [b"\\Deleted"])
            self._call("EXPUNGE", client.uid_expunge, numbers)
        else:
            self._call("STORE", client.add_flags, numbers, [b"\\Deleted", b"\\Seen"])

    def _copied_already(self, client: Any, uids: list[int], target: str) -> set[int]:
        """Which of ``uids`` already have a copy in ``target``: the same Message-ID, size
        and arrival time (COPY keeps the bytes and the INTERNALDATE)."""
        if not uids:
            return set()
        items = ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]", "RFC822.SIZE", "INTERNALDATE"]
        data = self._call("FETCH", client.fetch, uids, items)
        wanted: dict[int, tuple[str, int, object]] = {}
        for uid, item in data.items():
            header = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER")), b"")
            message_id = _text(header).partition(":")[2].strip()
            if message_id:
                wanted[uid] = (message_id, item.get(b"RFC822.SIZE", 0),
                               item.get(b"INTERNALDATE"))
        found: set[int] = set()
        if not wanted:
            return found
        try:
            self._call("EXAMINE", client.select_folder, target, True)
            for uid, (message_id, size, moment) in wanted.items():
                matches = self._call("SEARCH", client.search,
                                     ["HEADER", "Message-ID", message_id])
                if not matches:
                    continue
                seen = self._call("FETCH", client.fetch, matches, items[1:])
                if any(v.get(b"RFC822.SIZE") == size and v.get(b"INTERNALDATE") == moment
                       for v in seen.values()):
                    found.add(uid)
        finally:
            if self._client is not None:
                selected = self._call("SELECT", client.select_folder, self.watched)
                if str(selected.get(b"UIDVALIDITY", "")) != self._uidvalidity:
                    self._drop()
                    raise SourceError(f"IMAP UIDVALIDITY of {self.watched} changed")
        return found

    def recent_headers(self, name: str, folders: list[str], count: int) -> list[bytes]:
        """The raw ``name`` header fields of the last ``count`` messages of each of these
        folders (server names), read without marking anything read: what ``check`` looks
        at to tell which server vouches for the senders."""
        client = self.client
        item = f"BODY.PEEK[HEADER.FIELDS ({name.upper()})]"
        found: list[bytes] = []
        try:
            for folder in folders:
                self._call("EXAMINE", client.select_folder, folder, True)
                uids = self._call("SEARCH", client.search, ["ALL"])[-count:]
                if not uids:
                    continue
                fetched = self._call("FETCH", client.fetch, uids, [item])
                for data in fetched.values():
                    found += [v for k, v in data.items() if k.startswith(b"BODY[HEADER")
                              and isinstance(v, bytes)]
        finally:
            if self._client is not None:
                self._call("SELECT", client.select_folder, self.watched)
        return found

    def wait(self, timeout: float, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        client = self.client
        if not client.has_capability("IDLE"):
            stop.wait(timeout)
            return
        try:
            with waking(stop, self._interrupt):
                self._idle(client, timeout, stop)
        except SourceError:
            if not stop.is_set():
                raise
            # The connection was cut to wake us for a stop: nothing failed.

    def _interrupt(self) -> None:
        """Wake the thread idling on the connection (from another thread): cut it."""
        client = self._client
        if client is not None:
            # The plain socket's shutdown, even under TLS: the reading thread then sees
            # the end of the stream, and the TLS object it uses is left alone.
            socket.socket.shutdown(client.socket(), socket.SHUT_RDWR)

    def _idle(self, client: Any, timeout: float, stop: threading.Event) -> None:
        # Mail that arrived while we were busy is not announced by IDLE (the server told
        # it with the reply to an earlier command): look for it first.
        if self._new_uids(client):
            return
        deadline = time.monotonic() + timeout
        slices = iter(self.pace.rechecks)
        while not stop.is_set() and time.monotonic() < deadline:
            # IDLE in slices: new mail wakes us at once, a stop request within
            # ``stop_every`` (at once for a Stop), and now and then we look ourselves,
            # because a server does not always announce what arrived as IDLE began.
            recheck = min(deadline, time.monotonic() + next(slices, self.pace.rechecks[-1]))
            self._call("IDLE", client.idle)
            try:
                while not stop.is_set() and (left := recheck - time.monotonic()) > 0:
                    if self._call("IDLE", client.idle_check, min(self.pace.stop_every, left)):
                        return
            finally:
                if self._client is not None:
                    self._call("IDLE DONE", client.idle_done)
            if self._new_uids(client):
                return

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except _errors():
                pass
