"""The next deadline of a complaint, and working-day arithmetic on the register."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from bot.core.clock import local
from bot.core.states import ComplaintStatus

if TYPE_CHECKING:
    from bot.rulebook import Rulebook
    from bot.store.models import Complaint

ANSWER = "réponse"
CLOSURE = "clôture"


def next_deadline(complaint: Complaint, rules: Rulebook) -> tuple[str, dt.date] | None:
    """What the organisation owes next on this complaint, and by when."""
    if complaint.status == ComplaintStatus.OPEN and complaint.answer_due is not None:
        return ANSWER, complaint.answer_due
    if complaint.status == ComplaintStatus.ANSWERED and complaint.response_date is not None:
        return CLOSURE, rules.calendar.add_working_days(complaint.response_date,
                                                       rules.time.closure_working_days)
    return None


def received_day(complaint: Complaint) -> dt.date:
    """The Paris calendar day the conforming ticket was received."""
    return local(complaint.received_at).date()
