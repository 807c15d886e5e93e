"""The last defence against a robot no rule recognised: at most so many automatic
answers to one address a day (``rules/procedure.toml``); the director is never limited."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from bot.outbound.compose import Email
from bot.store.db import held_count
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


def over_daily_limit(session: Session, app: App, email: Email, to_address: str,
                     now: dt.datetime) -> int | None:
    """The daily limit, if ``email`` (an automatic answer) would go over it; else ``None``."""
    if not email.automatic or to_address in app.config.organisation.director_addresses:
        return None
    limit = app.rulebook.auto_replies_per_address_per_day
    # Rows written (on the connection: an ORM query would flush this message's other rows
    # early, and write the ones a batch holds back), plus those held back.
    recent = session.connection().execute(
        _RECENT_AUTOMATIC, {"address": to_address, "since": now - dt.timedelta(days=1)}
    ).scalar_one() + held_count(session, Outbox, to_address=to_address, automatic=True)
    if recent < limit:
        return None
    log.warning("automatic %s not sent: %d automatic emails to this address in 24 h",
                email.kind, recent)
    return limit
