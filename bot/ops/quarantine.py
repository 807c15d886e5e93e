"""``reclambot quarantine list|retry``: what is in quarantine, and putting it back through.

A message goes to quarantine when it cannot be parsed, makes a handler fail, or exceeds
``[limits]``; its ``inbound`` row keeps the reason. After a fix (a rule, a form version,
a limit), ``retry`` marks those rows ``retried`` (so that the same content is no longer
taken for a copy of a handled message), moves the messages back into the watched folder
and runs one pass: each is handled once, as if it had just arrived. The rows are marked
before the move, so a crash in between leaves the message in quarantine, listed and
retried again at will; after the move, the message is in the inbox, handled by any pass.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from sqlalchemy import select

from bot.app import App
from bot.core.states import QUARANTINED, InboundState
from bot.errors import ReclambotError
from bot.intake.message import content_hash, header_hash
from bot.intake.sources.base import Source
from bot.store.models import Event, Inbound

#: Actions whose message is filed into the quarantine folder.
QUARANTINE_ACTIONS = QUARANTINED


@dataclass(frozen=True)
class Quarantined:
    """One message in the quarantine folder, and why it is there."""

    uid: str
    received_at: dt.datetime | None
    sender: str
    subject: str
    reason: str
    row_ids: tuple[int, ...]

    def line(self) -> str:
        when = f"{self.received_at:%Y-%m-%d %H:%M}" if self.received_at else "?"
        return (f"{self.uid:>6}  {when}  {self.sender[:40]:<40}  {self.subject[:40]:<40}  "
                f"{self.reason[:100]}")


def quarantine_source(app: App) -> Source:
    """The quarantine folder, opened as a source of its own."""
    config = app.config
    if config.bot.source == "maildir":
        from bot.intake.sources.maildir import MaildirSource, folder_dir

        assert config.maildir is not None
        inbox = config.maildir.inbox
        return MaildirSource(folder_dir(inbox, config.folders.quarantine), home=inbox)
    from bot.intake.sources.imap import ImapSource

    assert config.imap is not None
    return ImapSource(dataclasses.replace(config.imap, folder=config.folders.quarantine),
                      config.folders)


def _header(data: bytes, name: str) -> str:
    try:
        value = BytesHeaderParser(policy=default_policy).parsebytes(data).get(name, "")
        return " ".join(str(value).split())
    except Exception:  # an unreadable header is exactly what quarantine holds
        return "(illisible)"


def list_quarantine(app: App, source: Source) -> list[Quarantined]:
    """Every message of the quarantine folder, with the reason its rows recorded.

    A row records the content hash of what the pipeline fetched: the whole message, or
    only its header when it was over ``max_message_bytes`` (which may have changed since),
    so both are looked for.
    """
    found: list[Quarantined] = []
    limits = app.config.limits
    for batch in source.fetch(0, app.config.bot.batch_size, limits.max_message_bytes):
        hashes = {raw.uid: {content_hash(raw.data), header_hash(raw.data)} for raw in batch}
        with app.sessions() as session:
            rows = session.scalars(
                select(Inbound).where(Inbound.content_hash.in_(set().union(*hashes.values())),
                                      Inbound.action.in_(QUARANTINE_ACTIONS),
                                      Inbound.state != InboundState.RETRIED)
                .order_by(Inbound.id)).all()
            for raw in batch:
                mine = [row for row in rows if row.content_hash in hashes[raw.uid]]
                reason = (mine[-1].rules[0]["reason"] if mine and mine[-1].rules
                          else mine[-1].error if mine else "placé là par une personne")
                found.append(Quarantined(
                    uid=raw.uid, received_at=raw.internal_date,
                    sender=_header(raw.data, "From"), subject=_header(raw.data, "Subject"),
                    reason=reason, row_ids=tuple(r.id for r in mine)))
    return found


def retry(app: App, source: Source, uids: Iterable[str] | None) -> list[Quarantined]:
    """Put ``uids`` of the quarantine folder (every message when ``None``) back into the
    watched folder, after marking their rows; returns what was moved.

    The caller runs a pass afterwards (under the process lock) to handle them.
    """
    listed = {item.uid: item for item in list_quarantine(app, source)}
    if uids is None:
        chosen = list(listed.values())
    else:
        wanted = list(dict.fromkeys(uids))
        unknown = [uid for uid in wanted if uid not in listed]
        if unknown:
            raise ReclambotError(f"quarantine retry: not in quarantine: {', '.join(unknown)} "
                                 "(see reclambot quarantine list)")
        chosen = [listed[uid] for uid in wanted]
    if not chosen:
        return []
    with app.transaction() as session:
        now = app.clock()
        for item in chosen:
            for row in session.scalars(select(Inbound).where(Inbound.id.in_(item.row_ids))):
                row.state = InboundState.RETRIED
            session.add(Event(at=now, kind="quarantine_retry", origin="reclambot quarantine",
                              detail={"uid": item.uid, "inbound": list(item.row_ids),
                                      "reason": item.reason[:300]}))
    source.file([item.uid for item in chosen], app.config.watched_folder)
    return chosen
