"""The last defence against a robot no rule recognised: at most so many automatic
answers to one address a day (``rules/procedure.toml``); the director is never limited."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from bot.outbound.compose import Email
from bot.store.db import held_count, rewind_with_savepoints
from bot.store.models import Outbox

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

# Built once: building a statement costs about as much as running it on SQLite.
_RECENT_AUTOMATIC = select(func.count(Outbox.id)).where(
    Outbox.to_address == bindparam("address"),
    Outbox.automatic.is_(True),
    Outbox.created_at > bindparam("since"),
)
_RECENT_AUTOMATIC_BY_ADDRESS = (
    select(Outbox.to_address, func.count(Outbox.id))
    .where(Outbox.automatic.is_(True), Outbox.created_at > bindparam("since"))
    .group_by(Outbox.to_address)
)
#: A transaction's counts by address, once read all at once (``Session.info``).
_COUNTS = "autoreply.counts"
_ALL_AT_ONCE = "autoreply.all_at_once"


def count_all_at_once(session: Session) -> None:
    """Let ``session``'s transaction read every address's count with its first automatic
    answer, in one query, instead of one query per answer: for a backlog's batch, whose
    answers go to a hundred addresses (the query per answer cost a fifteenth of a message).

    Exact all the same: every automatic email of the transaction is counted as it is
    queued, and one a rolled-back SAVEPOINT took back (a message gone to quarantine, a
    refused command email) is no longer counted. What another process queues for the
    same address meanwhile is seen at the next transaction (the web form's
    acknowledgement, at most).
    """
    session.info[_ALL_AT_ONCE] = True


class _Counts(dict[str, int]):
    """The transaction's counts by address, rewound with its SAVEPOINTs."""

    def mark(self) -> object:
        return dict(self)

    def rewind(self, mark: object) -> None:
        assert isinstance(mark, dict)
        self.clear()
        self.update(mark)


def over_daily_limit(session: Session, app: App, email: Email, to_address: str,
                     now: dt.datetime) -> int | None:
    """The daily limit, if ``email`` (an automatic answer) would go over it; else
    ``None``, and the email counts towards the limit (its caller queues it)."""
    if not email.automatic or to_address in app.config.organisation.director_addresses:
        return None
    limit = app.rulebook.auto_replies_per_address_per_day
    since = now - dt.timedelta(days=1)
    counts: dict[str, int] | None = session.info.get(_COUNTS)
    if counts is None and session.info.get(_ALL_AT_ONCE):
        # The first automatic answer of the transaction: none of its own is written or
        # held yet, so what the register holds is the whole count.
        counts = session.info[_COUNTS] = _Counts(
            (address, count) for address, count in session.connection().execute(
                _RECENT_AUTOMATIC_BY_ADDRESS, {"since": since}))
        rewind_with_savepoints(session, counts)
    if counts is not None:
        recent = counts.get(to_address, 0)
    else:
        # Rows written (on the connection: an ORM query would flush this message's other
        # rows early, and write the ones a batch holds back), plus those held back.
        recent = session.connection().execute(
            _RECENT_AUTOMATIC, {"address": to_address, "since": since}
        ).scalar_one() + held_count(session, Outbox, to_address=to_address, automatic=True)
    if recent >= limit:
        log.warning("automatic %s not sent: %d automatic emails to this address in 24 h",
                    email.kind, recent)
        return limit
    if counts is not None:
        counts[to_address] = recent + 1
    return None
