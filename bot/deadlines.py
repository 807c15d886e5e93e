"""The next deadline of a complaint, and working-day arithmetic on the register."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from bot.render import local
from bot.workdays import add_working_days, is_working_day

if TYPE_CHECKING:
    from bot.models import Complaint
    from bot.rulebook import Rulebook

ANSWER = "réponse"
CLOSURE = "clôture"


def next_deadline(complaint: Complaint, rules: Rulebook) -> tuple[str, dt.date] | None:
    """What the organisation owes next on this complaint, and by when."""
    if complaint.status == "open" and complaint.answer_due is not None:
        return ANSWER, complaint.answer_due
    if complaint.status == "answered" and complaint.response_date is not None:
        return CLOSURE, add_working_days(complaint.response_date, rules.time.closure_working_days)
    return None


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days after ``start`` up to ``end`` included (0 when the same day)."""
    if end <= start:
        return 0
    days = 0
    day = start
    while day < end:
        day += dt.timedelta(days=1)
        days += is_working_day(day)
    return days


def received_day(complaint: Complaint) -> dt.date:
    """The Paris calendar day the conforming ticket was received."""
    return local(complaint.received_at).date()


def first_working_day(year: int, month: int) -> dt.date:
    """The first working day of a month (when the monthly report goes out)."""
    day = dt.date(year, month, 1)
    while not is_working_day(day):
        day += dt.timedelta(days=1)
    return day
